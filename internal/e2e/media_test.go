package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	avtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"

	"github.com/kinema/kinema/internal/app"
	"github.com/kinema/kinema/internal/media/mkv"
	"github.com/kinema/kinema/internal/mediatest"
)

// restart stops the server and starts a new one on the same data dir with
// the test key and the real clock.
func (s *server) restart(t *testing.T) *server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	return startServerIn(t, s.dir)
}

func (s *server) restartTLS(t *testing.T) *server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	return startServerIn(t, s.dir, func(c *app.Config) { c.TLS = true })
}

// getFragmentList fetches fragments with GetMediaForFragmentList through the SDK.
func getFragmentList(t *testing.T, s *server, name string, frags []avtypes.Fragment) []byte {
	t.Helper()
	nums := make([]string, len(frags))
	for i, f := range frags {
		nums[i] = aws.ToString(f.FragmentNumber)
	}
	return fetchFragments(t, s.archived(), name, nums)
}

// fetchFragments reads fragments by number with GetMediaForFragmentList
// from whichever node am talks to, and returns the whole MKV.
func fetchFragments(t *testing.T, am *kinesisvideoarchivedmedia.Client, name string, numbers []string) []byte {
	t.Helper()
	out, err := am.GetMediaForFragmentList(ctxT(t), &kinesisvideoarchivedmedia.GetMediaForFragmentListInput{
		StreamName: aws.String(name), Fragments: numbers,
	})
	if err != nil {
		t.Fatalf("GetMediaForFragmentList: %v", err)
	}
	defer out.Payload.Close()
	b, err := io.ReadAll(out.Payload)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// countMKV reads MKV with Kinema's reader and counts blocks and tag names.
func countMKV(t *testing.T, b []byte) (frames int, tags map[string]int) {
	t.Helper()
	tags = map[string]int{}
	r := mkv.NewReader(bytes.NewReader(b), mkv.Options{})
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("reading served MKV: %v", err)
		}
		switch ev.Type {
		case mkv.EventBlock:
			frames++
		case mkv.EventTags:
			for _, tg := range ev.Tags {
				tags[tg.Name]++
			}
		}
	}
}

// ffprobePackets counts the packets ffprobe finds in MKV bytes, failing on
// any error ffprobe reports.
func ffprobePackets(t *testing.T, b []byte) int {
	t.Helper()
	p := filepath.Join(t.TempDir(), "served.mkv")
	if d := os.Getenv("KINEMA_KEEP_MEDIA"); d != "" {
		p = filepath.Join(d, "served.mkv")
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return ffprobePacketsFile(t, p)
}

func ffprobePacketsFile(t *testing.T, path string) int {
	t.Helper()
	mediatest.NeedTool(t, "ffprobe")
	cmd := exec.Command("ffprobe", "-v", "error", "-show_entries", "packet=stream_index", "-of", "csv=p=0", path)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, errb.String())
	}
	if e := strings.TrimSpace(errb.String()); e != "" {
		t.Fatalf("ffprobe complained about %s:\n%s", path, e)
	}
	return len(strings.Fields(out.String()))
}

// ffprobeFrames counts decoded video frames of a file.
func ffprobeFrames(t *testing.T, path string) int {
	t.Helper()
	cmd := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames",
		"-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffprobe -count_frames: %v", err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(strings.Split(string(out), "\n")[0]))
	return n
}

// inBandErrors lists the error tags (code/id/fragment) served in MKV bytes.
func inBandErrors(b []byte) []string {
	var errs []string
	r := mkv.NewReader(bytes.NewReader(b), mkv.Options{})
	for {
		ev, err := r.Next()
		if err != nil {
			return errs
		}
		if ev.Type != mkv.EventTags {
			continue
		}
		var fields []string
		for _, tg := range ev.Tags {
			if strings.HasPrefix(tg.Name, "AWS_KINESISVIDEO_ERROR") || tg.Name == "AWS_KINESISVIDEO_FRAGMENT_NUMBER" {
				fields = append(fields, tg.Value)
			}
		}
		if len(fields) > 0 && strings.HasPrefix(ev.Tags[0].Name, "AWS_KINESISVIDEO_ERROR") {
			errs = append(errs, strings.Join(fields, "/"))
		}
	}
}
