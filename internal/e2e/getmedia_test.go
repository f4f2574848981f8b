package e2e

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kinema/kinema/internal/media/mkv"
)

// getMediaRaw calls GetMedia signed with aws/signer/v4 (no SDK module for
// kinesisvideomedia is available) and returns the whole response.
func getMediaRaw(t *testing.T, s *server, body string) (int, []byte) {
	t.Helper()
	return signedJSON(t, s, "getMedia", body)
}

// chunkTags returns, per fragment in GetMedia output, its tags by name.
func chunkTags(t *testing.T, b []byte) []map[string]string {
	t.Helper()
	var out []map[string]string
	r := mkv.NewReader(bytes.NewReader(b), mkv.Options{})
	for {
		ev, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type != mkv.EventTags {
			continue
		}
		for _, tg := range ev.Tags {
			if tg.Name == "AWS_KINESISVIDEO_FRAGMENT_NUMBER" {
				out = append(out, map[string]string{})
			}
			if len(out) > 0 {
				out[len(out)-1][tg.Name] = tg.Value
			}
		}
	}
}

func TestGetMediaWithAWSCLI(t *testing.T) {
	s := startServer(t)
	file := makeMedia(t, "src.mkv", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine",
		"-t", "4", "-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac", "-cluster_time_limit", "1000")
	createStream(t, s, "cam", 1)
	start := time.Now().Add(-time.Minute).UnixMilli()
	curlPutMedia(t, s, "cam", file, start)

	out := filepath.Join(t.TempDir(), "getmedia.mkv")
	_, errOut, err := s.awsCLI(t, "kinesis-video-media", "get-media", "--stream-name", "cam",
		"--start-selector", "StartSelectorType=EARLIEST", out)
	if err != nil {
		t.Fatalf("get-media: %v\n%s", err, errOut)
	}
	if got, want := ffprobePacketsFile(t, out), ffprobePacketsFile(t, file); got != want {
		t.Fatalf("get-media EARLIEST: %d packets, %d were sent", got, want)
	}
	b, _ := os.ReadFile(out)
	chunks := chunkTags(t, b)
	if len(chunks) < 4 {
		t.Fatalf("%d fragments in get-media output", len(chunks))
	}
	for i, c := range chunks {
		if c["AWS_KINESISVIDEO_SERVER_TIMESTAMP"] == "" || c["AWS_KINESISVIDEO_PRODUCER_TIMESTAMP"] == "" ||
			c["AWS_KINESISVIDEO_CONTINUATION_TOKEN"] != c["AWS_KINESISVIDEO_FRAGMENT_NUMBER"] || c["AWS_KINESISVIDEO_MILLIS_BEHIND_NOW"] == "" {
			t.Fatalf("fragment %d tags %v", i, c)
		}
	}
	second := chunks[1]["AWS_KINESISVIDEO_FRAGMENT_NUMBER"]

	// FRAGMENT_NUMBER starts after the given fragment.
	code, body := getMediaRaw(t, s, `{"StreamName":"cam","StartSelector":{"StartSelectorType":"FRAGMENT_NUMBER","AfterFragmentNumber":"`+chunks[0]["AWS_KINESISVIDEO_FRAGMENT_NUMBER"]+`"}}`)
	if got := chunkTags(t, body); code != 200 || len(got) != len(chunks)-1 || got[0]["AWS_KINESISVIDEO_FRAGMENT_NUMBER"] != second {
		t.Fatalf("FRAGMENT_NUMBER: %d, %d fragments", code, len(got))
	}
	// A continuation token from the last chunk resumes after it: nothing new.
	last := chunks[len(chunks)-1]["AWS_KINESISVIDEO_CONTINUATION_TOKEN"]
	code, body = getMediaRaw(t, s, `{"StreamName":"cam","StartSelector":{"StartSelectorType":"CONTINUATION_TOKEN","ContinuationToken":"`+last+`"}}`)
	if got := chunkTags(t, body); code != 200 || len(got) != 0 {
		t.Fatalf("CONTINUATION_TOKEN: %d, %d fragments", code, len(got))
	}
	// PRODUCER_TIMESTAMP inside the second fragment starts with that fragment.
	code, body = getMediaRaw(t, s, `{"StreamName":"cam","StartSelector":{"StartSelectorType":"PRODUCER_TIMESTAMP","StartTimestamp":`+
		strings.TrimSuffix(chunks[1]["AWS_KINESISVIDEO_PRODUCER_TIMESTAMP"], "0")+`5}}`)
	if got := chunkTags(t, body); code != 200 || len(got) == 0 || got[0]["AWS_KINESISVIDEO_FRAGMENT_NUMBER"] != second {
		t.Fatalf("PRODUCER_TIMESTAMP: %d %v", code, got)
	}
	// Bad selectors.
	for _, bad := range []string{
		`{"StreamName":"cam","StartSelector":{"StartSelectorType":"SOMEWHERE"}}`,
		`{"StreamName":"cam","StartSelector":{"StartSelectorType":"FRAGMENT_NUMBER"}}`,
		`{"StreamName":"cam"}`,
	} {
		if code, _ := getMediaRaw(t, s, bad); code != 400 {
			t.Fatalf("%s: HTTP %d", bad, code)
		}
	}
	if code, _ := getMediaRaw(t, s, `{"StreamName":"nope","StartSelector":{"StartSelectorType":"NOW"}}`); code != 404 {
		t.Fatalf("unknown stream: HTTP %d", code)
	}
}

// GetMedia NOW tails fragments as they arrive.
func TestGetMediaTailsLive(t *testing.T) {
	s := startServer(t)
	createStream(t, s, "cam", 1)
	putMedia(t, s, absolute("cam"), (&mkvBuilder{}).header().cluster(1_700_000_000_000, 3, 10).eofr().reader())

	got := make(chan []byte, 1)
	go func() {
		_, b := getMediaRaw(t, s, `{"StreamName":"cam","StartSelector":{"StartSelectorType":"NOW"}}`)
		got <- b
	}()
	time.Sleep(200 * time.Millisecond)
	body := (&mkvBuilder{}).header()
	for i := 1; i <= 3; i++ {
		body.cluster(1_700_000_000_000+uint64(i)*1000, 3, 10).eofr()
	}
	putMedia(t, s, absolute("cam"), body.reader())
	b := <-got
	chunks := chunkTags(t, b)
	// NOW starts with the newest fragment at the time of the call, then the 3 new ones.
	if len(chunks) != 4 {
		t.Fatalf("GetMedia NOW delivered %d fragments, want 4", len(chunks))
	}
}

// A stream without an archive can still be watched live with GetMedia: the
// fragments come from memory.
func TestGetMediaLiveWithoutRetention(t *testing.T) {
	s := startServer(t)
	createStream(t, s, "live", 0)
	pr, pw := io.Pipe()
	go putMedia(t, s, absolute("live"), pr)
	pw.Write((&mkvBuilder{}).header().cluster(1_700_000_000_000, 3, 10).eofr().b)
	time.Sleep(200 * time.Millisecond)
	got := make(chan []byte, 1)
	go func() {
		_, b := getMediaRaw(t, s, `{"StreamName":"live","StartSelector":{"StartSelectorType":"NOW"}}`)
		got <- b
	}()
	time.Sleep(200 * time.Millisecond)
	pw.Write((&mkvBuilder{}).cluster(1_700_000_001_000, 3, 10).eofr().cluster(1_700_000_002_000, 3, 10).eofr().b)
	b := <-got
	pw.Close()
	frames, _ := countMKV(t, b)
	if n := len(chunkTags(t, b)); n != 3 || frames != 9 {
		t.Fatalf("GetMedia NOW on a stream without retention: %d fragments, %d frames; want 3 and 9", n, frames)
	}
}
