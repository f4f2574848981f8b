package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"

	"github.com/kinema/kinema/internal/mediatest"
)

// curlPutMedia posts a file to PutMedia with curl's own SigV4 signing: an
// independent client. It returns curl's output (the acks).
func curlPutMedia(t *testing.T, s *server, name, file string, startMs int64) string {
	t.Helper()
	mediatest.NeedTool(t, "curl")
	cmd := exec.Command("curl", "-sS", "--fail-with-body", "--aws-sigv4", "aws:amz:us-east-1:kinesisvideo",
		"--user", testKey+":"+testSecret,
		"-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
		"-H", "Transfer-Encoding: chunked",
		"-H", "Content-Type: application/json",
		"-H", "x-amzn-stream-name: "+name,
		"-H", "x-amzn-fragment-timecode-type: RELATIVE",
		"-H", fmt.Sprintf("x-amzn-producer-start-timestamp: %d.%d", startMs/1000, startMs%1000),
		"--data-binary", "@"+file, s.URL+"/putMedia")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("curl PutMedia: %v\n%s", err, out)
	}
	return string(out)
}

// Media made by ffmpeg (H.264 and H.265, with and without AAC) goes in with
// curl and every frame comes back out of GetMediaForFragmentList, as ffprobe
// counts them, decodable.
func TestCurlPutMediaFFmpegMedia(t *testing.T) {
	s := startServer(t)
	video := []string{"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"}
	audio := []string{"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"}
	cases := []struct {
		name string
		args []string
	}{
		{"h264", append(append([]string{}, video...), "-t", "4", "-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p")},
		{"h264-aac", append(append(append([]string{}, video...), audio...), "-t", "4", "-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac")},
		{"h265", append(append([]string{}, video...), "-t", "4", "-c:v", "libx265", "-x265-params", "keyint=25:min-keyint=25:log-level=error", "-pix_fmt", "yuv420p")},
		{"h265-aac", append(append(append([]string{}, video...), audio...), "-t", "4", "-c:v", "libx265", "-x265-params", "keyint=25:min-keyint=25:log-level=error", "-pix_fmt", "yuv420p", "-c:a", "aac")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			file := makeMedia(t, c.name+".mkv", append(c.args, "-cluster_time_limit", "1000")...)
			createStream(t, s, c.name, 1)
			start := time.Now().Add(-time.Minute).UnixMilli()
			acks := curlPutMedia(t, s, c.name, file, start)
			if strings.Contains(acks, `"ERROR"`) || !strings.Contains(acks, `"PERSISTED"`) {
				t.Fatalf("acks:\n%s", acks)
			}
			ctx := ctxT(t)
			lf, err := s.archived().ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String(c.name)})
			if err != nil {
				t.Fatal(err)
			}
			if len(lf.Fragments) < 3 || strings.Count(acks, `"PERSISTED"`) != len(lf.Fragments) {
				t.Fatalf("%d fragments listed, %d PERSISTED acks", len(lf.Fragments), strings.Count(acks, `"PERSISTED"`))
			}
			if first := lf.Fragments[0].ProducerTimestamp.UnixMilli(); first < start || first > start+100 {
				t.Fatalf("first producer timestamp %d, the stream started at %d", first, start)
			}
			served := getFragmentList(t, s, c.name, lf.Fragments)
			got, want := ffprobePackets(t, served), ffprobePacketsFile(t, file)
			if got != want {
				t.Fatalf("ffprobe: %d packets served, %d sent", got, want)
			}
			p := filepath.Join(t.TempDir(), "served.mkv")
			os.WriteFile(p, served, 0o644)
			if f := ffprobeFrames(t, p); f != 100 {
				t.Fatalf("%d video frames decode from the served MKV, want 100", f)
			}
			mkvinfo(t, p)
		})
	}
}

// mkvinfo must parse the file without errors or warnings.
func mkvinfo(t *testing.T, path string) {
	t.Helper()
	mediatest.NeedTool(t, "mkvinfo")
	out, err := exec.Command("mkvinfo", path).CombinedOutput()
	if err != nil {
		t.Fatalf("mkvinfo: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		ll := strings.ToLower(l)
		if strings.Contains(ll, "error") || strings.Contains(ll, "warning") {
			t.Fatalf("mkvinfo complains: %s", l)
		}
	}
}
