package e2e

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	avtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/kvsapi"
	"github.com/kinema/kinema/internal/media/fmp4"
)

// GetClip returns a progressive MP4 of the range that ffmpeg decodes
// frame-exact, through the SDK and through the CLI's get-clip.
func TestGetClip(t *testing.T) {
	s := startServer(t)
	for _, c := range []struct{ name, codec string }{{"h264", "libx264"}, {"h265", "libx265"}} {
		t.Run(c.name, func(t *testing.T) {
			args := []string{"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=sample_rate=48000",
				"-t", "4", "-c:v", c.codec, "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac", "-cluster_time_limit", "1000"}
			if c.codec == "libx265" {
				args = append(args, "-x265-params", "keyint=25:min-keyint=25:scenecut=0:log-level=error")
			}
			file := makeMedia(t, "src.mkv", args...)
			createStream(t, s, "clip-"+c.name, 1)
			start := time.Now().Add(-time.Minute).UnixMilli()
			curlPutMedia(t, s, "clip-"+c.name, file, start)
			out, err := s.archived().GetClip(ctxT(t), &kinesisvideoarchivedmedia.GetClipInput{StreamName: aws.String("clip-" + c.name),
				ClipFragmentSelector: &avtypes.ClipFragmentSelector{FragmentSelectorType: avtypes.ClipFragmentSelectorTypeProducerTimestamp,
					TimestampRange: &avtypes.ClipTimestampRange{StartTimestamp: aws.Time(time.UnixMilli(start)), EndTimestamp: aws.Time(time.UnixMilli(start + 10_000))}}})
			if err != nil {
				t.Fatal(err)
			}
			if aws.ToString(out.ContentType) != "video/mp4" {
				t.Fatalf("Content-Type %q", aws.ToString(out.ContentType))
			}
			b, err := io.ReadAll(out.Payload)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(t.TempDir(), "clip.mp4")
			os.WriteFile(p, b, 0o644)
			vf, ap := ffprobeURL(t, p)
			_, want := ffprobeURL(t, file)
			if vf != 100 || ap != want {
				t.Fatalf("clip: %d video frames, %d audio packets; want 100 and %d", vf, ap, want)
			}
			// That clip was laid out from the sample tables ingest stored
			// with each fragment, not from the media.
			st, err := s.Archive.Index.StreamByName(ctxT(t), kvsapi.DefaultAccount, "clip-"+c.name)
			if err != nil {
				t.Fatal(err)
			}
			frags, err := s.Archive.Index.Fragments(ctxT(t), archive.FragmentQuery{StreamID: st.ID, Kind: archive.ProducerTimestamp,
				StartMs: start, EndMs: start + 10_000, Limit: 100, SampleTables: true})
			if err != nil || len(frags) == 0 {
				t.Fatalf("%d fragments: %v", len(frags), err)
			}
			for _, f := range frags {
				if _, err := fmp4.ParseClipFragment(f.SampleTable); err != nil {
					t.Fatalf("fragment %s has no usable sample table: %v", f.Number, err)
				}
			}
			cli := filepath.Join(t.TempDir(), "cli.mp4")
			_, stderr, err := s.awsCLI(t, "kinesis-video-archived-media", "get-clip", "--stream-name", "clip-"+c.name,
				"--clip-fragment-selector", "FragmentSelectorType=PRODUCER_TIMESTAMP,TimestampRange={StartTimestamp="+
					time.UnixMilli(start).UTC().Format(time.RFC3339)+",EndTimestamp="+time.UnixMilli(start+10_000).UTC().Format(time.RFC3339)+"}", cli)
			if err != nil {
				t.Fatalf("get-clip: %v %s", err, stderr)
			}
			if vf, _ := ffprobeURL(t, cli); vf != 100 {
				t.Fatalf("CLI clip: %d frames", vf)
			}
		})
	}
	_, err := s.archived().GetClip(ctxT(t), &kinesisvideoarchivedmedia.GetClipInput{StreamName: aws.String("clip-h264"),
		ClipFragmentSelector: &avtypes.ClipFragmentSelector{FragmentSelectorType: avtypes.ClipFragmentSelectorTypeProducerTimestamp,
			TimestampRange: &avtypes.ClipTimestampRange{StartTimestamp: aws.Time(time.UnixMilli(1000)), EndTimestamp: aws.Time(time.UnixMilli(2000))}}})
	apiErr(t, err, "ResourceNotFoundException", 404)
	_, err = s.archived().GetClip(ctxT(t), &kinesisvideoarchivedmedia.GetClipInput{StreamName: aws.String("clip-h264"),
		ClipFragmentSelector: &avtypes.ClipFragmentSelector{FragmentSelectorType: avtypes.ClipFragmentSelectorTypeProducerTimestamp,
			TimestampRange: &avtypes.ClipTimestampRange{StartTimestamp: aws.Time(time.UnixMilli(2000)), EndTimestamp: aws.Time(time.UnixMilli(1000))}}})
	apiErr(t, err, "InvalidArgumentException", 400)
}
