package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kinema/kinema/internal/cli"
	"github.com/kinema/kinema/internal/mediatest"
)

// timelapse runs `kinema timelapse` in-process against the server.
func timelapse(t *testing.T, s *server, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cli.Run(context.Background(), append([]string{"timelapse", "--endpoint", s.URL, "--region", testRegion,
		"--access-key", testKey, "--secret-key", testSecret}, args...), &stdout, &stderr)
	return stdout.String(), stderr.String(), code
}

// videoPacketSizes lists the video packets of a file: sizes and key flags.
func videoPacketSizes(t *testing.T, path string) (sizes []int, w, h string) {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height:packet=size",
		"-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Split(line, ","); len(f) == 2 {
			w, h = f[0], f[1]
		} else if n, err := strconv.Atoi(line); err == nil {
			sizes = append(sizes, n)
		}
	}
	return sizes, w, h
}

// kinema timelapse: without --size, the key frames at or before each
// sample are copied, not re-encoded (same bytes, same pixels); with
// --size, the exact frames are scaled and encoded.
func TestTimelapse(t *testing.T) {
	s := startServer(t)
	f := newImagesFixture(t, s, "lapse")
	iso := func(ms int64) string { return f.at(ms).UTC().Format(time.RFC3339Nano) }

	t.Run("key frames copied", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "copy.mp4")
		// Samples at 0.5, 2.5, 4.5, 6.5, 8.5 s show the key frames of seconds 0, 2, 4, 6, 8.
		stdout, stderr, code := timelapse(t, s, "--stream", f.name, "--start", iso(500), "--end", iso(9000), "--every", "2s", "-o", out)
		if code != 0 {
			t.Fatalf("exit %d: %s %s", code, stdout, stderr)
		}
		if !strings.Contains(stdout, "5 frames (5 samples)") {
			t.Errorf("summary: %q", stdout)
		}
		sizes, w, h := videoPacketSizes(t, out)
		src, _, _ := videoPacketSizes(t, f.file)
		if len(sizes) != 5 || w != "320" || h != "240" {
			t.Fatalf("%d frames of %sx%s", len(sizes), w, h)
		}
		for k, n := range sizes {
			// The source file stores in decode order; its key frames are every 25th packet.
			if n != src[50*k] {
				t.Errorf("frame %d is %d bytes; the key frame at %d s is %d: re-encoded?", k, n, 2*k, src[50*k])
			}
			if p := mediatest.PSNR(mediatest.Frame(t, out, k), mediatest.Frame(t, f.file, 50*k)); p < 45 {
				t.Errorf("frame %d: PSNR %.1f dB against the key frame", k, p)
			}
		}
		mediatest.DecodeClean(t, out)
	})

	t.Run("scaled", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "scaled.mp4")
		stdout, stderr, code := timelapse(t, s, "--stream", f.name, "--start", iso(100), "--end", iso(3600), "--every", "700ms",
			"--size", "160x120", "--fps", "10", "-o", out)
		if code != 0 {
			t.Fatalf("exit %d: %s %s", code, stdout, stderr)
		}
		sizes, w, h := videoPacketSizes(t, out)
		if len(sizes) != 6 || w != "160" || h != "120" {
			t.Fatalf("%d frames of %sx%s", len(sizes), w, h)
		}
		for k := range sizes {
			ms := int64(100 + 700*k)
			if p := mediatest.PSNR(mediatest.Frame(t, out, k), mediatest.Frame(t, f.file, frameAt(ms), "scale=160:120,format=yuv420p")); p < 32 {
				t.Errorf("frame %d (+%d ms): PSNR %.1f dB", k, ms, p)
			}
		}
		mediatest.DecodeClean(t, out)
	})

	t.Run("errors", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "x.mp4")
		if _, stderr, code := timelapse(t, s, "--stream", f.name, "--start", iso(5000), "--end", iso(1000), "-o", out); code != 1 ||
			!strings.Contains(stderr, "InvalidArgumentException") {
			t.Errorf("end before start: exit %d, %s", code, stderr)
		}
		if _, stderr, code := timelapse(t, s, "--stream", f.name, "--start", iso(-60_000), "--end", iso(-50_000), "-o", out); code != 1 ||
			!strings.Contains(stderr, "ResourceNotFoundException") {
			t.Errorf("no media: exit %d, %s", code, stderr)
		}
		if _, stderr, code := timelapse(t, s, "--stream", "nope", "--start", iso(0), "--end", iso(1000), "-o", out); code != 1 ||
			!strings.Contains(stderr, "ResourceNotFoundException") {
			t.Errorf("unknown stream: exit %d, %s", code, stderr)
		}
		if _, _, code := timelapse(t, s, "--stream", f.name, "--start", "yesterday", "--end", iso(1000), "-o", out); code != 2 {
			t.Errorf("bad time: exit %d", code)
		}
	})
}

// On a terminal (a pseudo-terminal made by script(1)) kinema timelapse
// draws a progress bar that ends full.
func TestTimelapseProgressBar(t *testing.T) {
	mediatest.NeedTool(t, "script")
	s := startServer(t)
	f := newImagesFixture(t, s, "lapse-tty")
	out := filepath.Join(t.TempDir(), "tty.mp4")
	cmd := strings.Join([]string{kinemaBinary(t), "timelapse", "--endpoint", s.URL, "--region", testRegion, "--access-key", testKey,
		"--secret-key", testSecret, "--stream", f.name, "--start", f.at(0).UTC().Format(time.RFC3339), "--end",
		f.at(9000).UTC().Format(time.RFC3339), "--every", "1s", "-o", out}, " ")
	b, err := exec.Command("script", "-qefc", cmd, "/dev/null").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if !strings.Contains(string(b), "\r[########################] 10/10 frames") {
		t.Fatalf("no full progress bar in %q", b)
	}
}
