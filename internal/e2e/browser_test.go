package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	avtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"

	"github.com/kinema/kinema/internal/browsertest"
	"github.com/kinema/kinema/internal/producer"
)

// hls.js and dashjs in headless Chromium play Kinema's session URLs from
// another origin (CORS): ON_DEMAND past the end of the first fragment, and
// LIVE while a camera streams.
func TestBrowserPlayback(t *testing.T) {
	s := startServer(t)
	file := makeMedia(t, "cam.mp4", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=sample_rate=48000",
		"-t", "6", "-c:v", "libx264", "-g", "25", "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-c:a", "aac")
	media, err := producer.OpenFile(context.Background(), file)
	if err != nil {
		t.Fatal(err)
	}
	createStream(t, s, "cam", 1)
	cfg := producer.Config{Endpoint: s.URL, Region: testRegion, AccessKeyID: testKey, SecretAccessKey: testSecret, StreamName: "cam"}
	start := time.Now().Add(-time.Minute)
	cfg.StartTime = start
	if _, err := producer.Put(context.Background(), cfg, media.Fragments(0), media.Header); err != nil {
		t.Fatal(err)
	}
	rng := func() (*time.Time, *time.Time) { a, b := start, start.Add(time.Minute); return &a, &b }
	ctx := ctxT(t)
	from, to := rng()
	hls, err := s.archived().GetHLSStreamingSessionURL(ctx, &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{
		StreamName: aws.String("cam"), PlaybackMode: avtypes.HLSPlaybackModeOnDemand,
		HLSFragmentSelector: &avtypes.HLSFragmentSelector{FragmentSelectorType: avtypes.HLSFragmentSelectorTypeProducerTimestamp,
			TimestampRange: &avtypes.HLSTimestampRange{StartTimestamp: from, EndTimestamp: to}}})
	if err != nil {
		t.Fatal(err)
	}
	// Fragments are 1 s: passing 2.5 s means the player went past the first.
	r := browsertest.Play(t, aws.ToString(hls.HLSStreamingSessionURL), "hls", 2.5, 20*time.Second, false)
	t.Logf("hls.js ON_DEMAND: %s", r.Summary())
	dash, err := s.archived().GetDASHStreamingSessionURL(ctx, &kinesisvideoarchivedmedia.GetDASHStreamingSessionURLInput{
		StreamName: aws.String("cam"), PlaybackMode: avtypes.DASHPlaybackModeOnDemand,
		DASHFragmentSelector: &avtypes.DASHFragmentSelector{FragmentSelectorType: avtypes.DASHFragmentSelectorTypeProducerTimestamp,
			TimestampRange: &avtypes.DASHTimestampRange{StartTimestamp: from, EndTimestamp: to}}})
	if err != nil {
		t.Fatal(err)
	}
	r = browsertest.Play(t, aws.ToString(dash.DASHStreamingSessionURL), "dash", 2.5, 20*time.Second, false)
	t.Logf("dashjs ON_DEMAND: %s", r.Summary())

	// LIVE: a camera streams in real time while the players watch.
	createStream(t, s, "live", 1)
	live := cfg
	// Looped for up to 72 s, more than the three plays take on a loaded
	// machine; the camera stops when they are done.
	live.StreamName, live.Realtime, live.Loop, live.StartTime = "live", true, 12, time.Time{}
	done := make(chan error, 1)
	liveCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _, err := producer.Put(liveCtx, live, media.Fragments(0), media.Header); done <- err }()
	var hlsLive, dashLive string
	for deadline := time.Now().Add(10 * time.Second); (hlsLive == "" || dashLive == "") && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if out, err := s.archived().GetHLSStreamingSessionURL(ctx, &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{
			StreamName: aws.String("live"), PlaybackMode: avtypes.HLSPlaybackModeLive}); err == nil {
			hlsLive = aws.ToString(out.HLSStreamingSessionURL)
		}
		if out, err := s.archived().GetDASHStreamingSessionURL(ctx, &kinesisvideoarchivedmedia.GetDASHStreamingSessionURLInput{
			StreamName: aws.String("live"), PlaybackMode: avtypes.DASHPlaybackModeLive}); err == nil {
			dashLive = aws.ToString(out.DASHStreamingSessionURL)
		}
	}
	if hlsLive == "" || dashLive == "" {
		t.Fatal("no LIVE session URLs while the camera streams")
	}
	time.Sleep(3 * time.Second) // a few fragments for the players to start from
	r = browsertest.Play(t, hlsLive, "hls", 2.5, 25*time.Second, true)
	t.Logf("hls.js LIVE: %s", r.Summary())
	r = browsertest.Play(t, dashLive, "dash", 2.5, 25*time.Second, true)
	t.Logf("dashjs LIVE: %s", r.Summary())
	// Kinema's LL-HLS on the same session: hls.js plays it part by part.
	r = browsertest.Play(t, hlsLive+"&LowLatency=1", "hls", 2.5, 25*time.Second, true)
	t.Logf("hls.js LL-HLS: %s, %d parts loaded", r.Summary(), r.PartsLoaded)
	if r.PartsLoaded == 0 {
		t.Errorf("hls.js played the LL-HLS session without loading a part")
	}
	cancel()
	<-done
}
