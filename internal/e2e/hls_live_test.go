package e2e

import (
	"context"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	avtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"

	"github.com/kinema/kinema/internal/producer"
)

var fragmentRef = regexp.MustCompile(`FragmentNumber=(\d+)`)

// LIVE: while a camera streams, each fragment shows up in the media playlist
// as soon as it is RECEIVED. The test measures RECEIVED-to-playlist delay.
func TestHLSLiveFragmentsAppearOnReceipt(t *testing.T) {
	s := startServer(t)
	file := makeMedia(t, "live.mp4", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "8",
		"-c:v", "libx264", "-g", "25", "-sc_threshold", "0", "-pix_fmt", "yuv420p")
	media, err := producer.OpenFile(context.Background(), file)
	if err != nil {
		t.Fatal(err)
	}
	createStream(t, s, "live-cam", 1)
	var mu sync.Mutex
	received := map[string]time.Time{}
	cfg := producer.Config{Endpoint: s.URL, Region: testRegion, AccessKeyID: testKey, SecretAccessKey: testSecret,
		StreamName: "live-cam", Realtime: true, OnAck: func(a producer.Ack) {
			if a.EventType == producer.AckReceived {
				mu.Lock()
				received[a.FragmentNumber] = time.Now()
				mu.Unlock()
			}
		}}
	done := make(chan error, 1)
	started := time.Now()
	go func() {
		res, err := producer.Put(context.Background(), cfg, media.Fragments(0), media.Header)
		t.Logf("producer: %v after %v, counts %v", err, time.Since(started), res.Counts)
		done <- err
	}()
	// LIVE needs a first fragment.
	var url string
	for deadline := time.Now().Add(10 * time.Second); url == "" && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		out, err := s.archived().GetHLSStreamingSessionURL(ctxT(t), &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{
			StreamName: aws.String("live-cam"), PlaybackMode: avtypes.HLSPlaybackModeLive})
		if err == nil {
			url = aws.ToString(out.HLSStreamingSessionURL)
		}
	}
	if url == "" {
		t.Fatal("no LIVE session URL while the camera streams")
	}
	mediaURL := regexp.MustCompile(`getHLSMasterPlaylist`).ReplaceAllString(url, "getHLSMediaPlaylist") + "&TrackNumber=1"
	seen := map[string]time.Time{}
	pollStart := time.Now()
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("producer: %v", err)
			}
			goto measured
		default:
		}
		body := httpGet(t, mediaURL, 200)
		now := time.Now()
		for _, m := range fragmentRef.FindAllStringSubmatch(body, -1) {
			if _, ok := seen[m[1]]; !ok {
				seen[m[1]] = now
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
measured:
	mu.Lock()
	defer mu.Unlock()
	var delays []time.Duration
	for num, at := range seen {
		if r, ok := received[num]; ok && r.After(pollStart) {
			delays = append(delays, max(0, at.Sub(r)))
		}
	}
	if len(delays) < 4 {
		t.Fatalf("only %d of %d fragments were seen in the LIVE playlist", len(delays), len(received))
	}
	sort.Slice(delays, func(i, j int) bool { return delays[i] < delays[j] })
	t.Logf("RECEIVED -> LIVE playlist over %d fragments: median %v, max %v (polled every 20 ms)", len(delays), delays[len(delays)/2], delays[len(delays)-1])
	if worst := delays[len(delays)-1]; worst > 500*time.Millisecond {
		t.Fatalf("a fragment took %v after RECEIVED to appear in the LIVE playlist", worst)
	}
	// The live URL plays too (a live playlist never ends: read 50 frames).
	out, err := exec.Command("ffprobe", "-v", "error", "-read_intervals", "%+#50", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", url).CombinedOutput()
	if err != nil || !strings.HasPrefix(strings.TrimSpace(string(out)), "50") {
		t.Fatalf("ffprobe on the LIVE URL: %v %q", err, out)
	}
}
