package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	avtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"
)

// DASH ON_DEMAND: the SDK's session URL gives a static MPD that ffmpeg plays
// frame-exact, audio included; the CLI's too.
func TestDASHOnDemand(t *testing.T) {
	s := startServer(t)
	file := makeMedia(t, "src.mkv", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=sample_rate=48000",
		"-t", "4", "-c:v", "libx264", "-g", "25", "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-c:a", "aac", "-cluster_time_limit", "1000")
	createStream(t, s, "cam", 1)
	start := time.Now().Add(-time.Minute).UnixMilli()
	curlPutMedia(t, s, "cam", file, start)
	out, err := s.archived().GetDASHStreamingSessionURL(ctxT(t), &kinesisvideoarchivedmedia.GetDASHStreamingSessionURLInput{
		StreamName: aws.String("cam"), PlaybackMode: avtypes.DASHPlaybackModeOnDemand,
		DisplayFragmentNumber: avtypes.DASHDisplayFragmentNumberAlways, DisplayFragmentTimestamp: avtypes.DASHDisplayFragmentTimestampAlways,
		DASHFragmentSelector: &avtypes.DASHFragmentSelector{FragmentSelectorType: avtypes.DASHFragmentSelectorTypeProducerTimestamp,
			TimestampRange: &avtypes.DASHTimestampRange{StartTimestamp: aws.Time(time.UnixMilli(start)), EndTimestamp: aws.Time(time.UnixMilli(start + 10_000))}},
	})
	if err != nil {
		t.Fatal(err)
	}
	url := aws.ToString(out.DASHStreamingSessionURL)
	if !strings.Contains(url, "/dash/v1/getDASHManifest.mpd?SessionToken=") {
		t.Fatalf("URL %s", url)
	}
	mpd := httpGet(t, url, 200)
	if !strings.Contains(mpd, `type="static"`) || !strings.Contains(mpd, `codecs="avc1.`) || !strings.Contains(mpd, `codecs="mp4a.40.2"`) ||
		!strings.Contains(mpd, `kvs:fn="9134`) {
		t.Fatalf("MPD:\n%s", mpd)
	}
	vf, ap := ffprobeURL(t, url)
	_, want := ffprobeURL(t, file)
	// The presentation starts at the first video frame (presentationTimeOffset):
	// the encoder's audio priming frame, 21 ms earlier, falls before it.
	if vf != 100 || ap < want-1 || ap > want {
		t.Fatalf("DASH plays %d video frames and %d audio packets; %d and %d were ingested", vf, ap, 100, want)
	}
	stdout, stderr, err := s.awsCLI(t, "kinesis-video-archived-media", "get-dash-streaming-session-url", "--stream-name", "cam",
		"--playback-mode", "ON_DEMAND", "--dash-fragment-selector",
		"FragmentSelectorType=PRODUCER_TIMESTAMP,TimestampRange={StartTimestamp="+time.UnixMilli(start).UTC().Format(time.RFC3339)+",EndTimestamp="+
			time.UnixMilli(start+10_000).UTC().Format(time.RFC3339)+"}", "--query", "DASHStreamingSessionURL", "--output", "text")
	if err != nil {
		t.Fatalf("CLI: %v %s", err, stderr)
	}
	if vf, _ := ffprobeURL(t, strings.TrimSpace(stdout)); vf != 100 {
		t.Fatalf("the CLI's DASH URL plays %d frames", vf)
	}
	// An HLS token does not open DASH resources.
	hls, err := s.archived().GetHLSStreamingSessionURL(ctxT(t), &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{
		StreamName: aws.String("cam"), PlaybackMode: avtypes.HLSPlaybackModeOnDemand,
		HLSFragmentSelector: &avtypes.HLSFragmentSelector{FragmentSelectorType: avtypes.HLSFragmentSelectorTypeProducerTimestamp,
			TimestampRange: &avtypes.HLSTimestampRange{StartTimestamp: aws.Time(time.UnixMilli(start)), EndTimestamp: aws.Time(time.UnixMilli(start + 10_000))}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tok := aws.ToString(hls.HLSStreamingSessionURL)[strings.Index(aws.ToString(hls.HLSStreamingSessionURL), "SessionToken="):]
	httpGet(t, s.URL+"/dash/v1/getDASHManifest.mpd?"+tok, 403)
}
