package e2e

import (
	"encoding/base64"
	"encoding/json"
	"image"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	avtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"

	"github.com/kinema/kinema/internal/app"
	"github.com/kinema/kinema/internal/mediatest"
	"github.com/kinema/kinema/internal/producer"
)

// imagesFixture is a stream of 10 s of testsrc2 at 320x240, 25 fps, H.264
// with B-frames and a key frame (so a fragment) every second, sent with
// producer times from t0: frame n shows at t0 + 40n ms.
type imagesFixture struct {
	s    *server
	name string
	file string
	t0   time.Time
}

func newImagesFixture(t *testing.T, s *server, name string) *imagesFixture {
	t.Helper()
	return newImagesFixtureAt(t, s, name, time.UnixMilli(time.Now().Add(-time.Hour).UnixMilli()/1000*1000))
}

func newImagesFixtureAt(t *testing.T, s *server, name string, t0 time.Time) *imagesFixture {
	t.Helper()
	file := makeMedia(t, name+".mkv", args(srcVideo, []string{"-t", "10"}, encX264)...)
	putFile(t, s, name, file, t0)
	return &imagesFixture{s: s, name: name, file: file, t0: t0}
}

// putFile creates the stream and sends the file with producer times from t0.
func putFile(t *testing.T, s *server, name, file string, t0 time.Time, mods ...func(*producer.Config)) {
	t.Helper()
	m, err := producer.OpenFile(ctxT(t), file)
	if err != nil {
		t.Fatal(err)
	}
	createStream(t, s, name, 24)
	hmPut(t, s, name, m, t0, mods...)
}

// getImages runs GetImages through the SDK's paginator and returns every image.
func (f *imagesFixture) getImages(t *testing.T, in kinesisvideoarchivedmedia.GetImagesInput) ([]avtypes.Image, int) {
	t.Helper()
	in.StreamName = aws.String(f.name)
	p := kinesisvideoarchivedmedia.NewGetImagesPaginator(f.s.archived(), &in)
	var out []avtypes.Image
	pages := 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctxT(t))
		if err != nil {
			t.Fatalf("GetImages: %v", err)
		}
		out = append(out, page.Images...)
		pages++
	}
	return out, pages
}

func (f *imagesFixture) at(ms int64) *time.Time {
	v := f.t0.Add(time.Duration(ms) * time.Millisecond)
	return &v
}

// frameAt is the display index of the frame shown at ms after t0.
func frameAt(ms int64) int { return int(ms / 40) }

func decodeContent(t *testing.T, img avtypes.Image) image.Image {
	t.Helper()
	if img.Error != "" || img.ImageContent == nil {
		t.Fatalf("image at %v: error %q", img.TimeStamp, img.Error)
	}
	b, err := base64.StdEncoding.DecodeString(aws.ToString(img.ImageContent))
	if err != nil {
		t.Fatal(err)
	}
	return mediatest.DecodeImage(t, b)
}

// GetImages through the Go SDK: the number of images, their timestamps and
// sizes, and their pixels against the frames ffmpeg extracts from the
// original file at the same times; sample times mid-fragment (decoded from
// the fragment's key frame, not NO_MEDIA as KVS answers), pages, both
// clocks, stretch and aspect-ratio sizes, and H.265.
func TestGetImagesWithGoSDK(t *testing.T) {
	s := startServer(t)
	f := newImagesFixture(t, s, "img-h264")

	t.Run("PNG frames match the source", func(t *testing.T) {
		// 500, 1500, ... 9500 ms: every sample is mid-fragment, between two
		// frames (460 and 500 ms are frames 11.5 and 12.5 away).
		imgs, pages := f.getImages(t, kinesisvideoarchivedmedia.GetImagesInput{ImageSelectorType: avtypes.ImageSelectorTypeProducerTimestamp,
			StartTimestamp: f.at(510), EndTimestamp: f.at(9510), SamplingInterval: aws.Int32(1000), Format: avtypes.FormatPng, MaxResults: aws.Int64(3)})
		if len(imgs) != 10 || pages != 4 {
			t.Fatalf("%d images in %d pages, want 10 in 4", len(imgs), pages)
		}
		for k, img := range imgs {
			ms := int64(510 + 1000*k)
			if !img.TimeStamp.Equal(*f.at(ms)) {
				t.Errorf("image %d: TimeStamp %v, want %v", k, img.TimeStamp, f.at(ms))
			}
			got := decodeContent(t, img)
			if b := got.Bounds(); b.Dx() != 320 || b.Dy() != 240 {
				t.Fatalf("image %d is %v", k, b)
			}
			if p := mediatest.PSNR(got, mediatest.Frame(t, f.file, frameAt(ms))); p < 45 {
				t.Errorf("image at +%d ms: PSNR %.1f dB against source frame %d", ms, p, frameAt(ms))
			}
		}
	})

	t.Run("JPEG every 200 ms across fragments, one side given", func(t *testing.T) {
		imgs, _ := f.getImages(t, kinesisvideoarchivedmedia.GetImagesInput{ImageSelectorType: avtypes.ImageSelectorTypeProducerTimestamp,
			StartTimestamp: f.at(0), EndTimestamp: f.at(2990), SamplingInterval: aws.Int32(130), Format: avtypes.FormatJpeg,
			FormatConfig: map[string]string{"JPEGQuality": "95"}, WidthPixels: aws.Int32(160), MaxResults: aws.Int64(100)})
		if len(imgs) != 24 {
			t.Fatalf("%d images, want 24", len(imgs))
		}
		for k, img := range imgs {
			ms := int64(130 * k)
			got := decodeContent(t, img)
			if b := got.Bounds(); b.Dx() != 160 || b.Dy() != 120 {
				t.Fatalf("image %d is %v, want 160x120 (height from the aspect ratio)", k, b)
			}
			// Against the frame at the same size and chroma subsampling: what
			// is left is JPEG's quantization (an adjacent frame scores 22 dB).
			if p := mediatest.PSNR(got, mediatest.Frame(t, f.file, frameAt(ms), "scale=160:120,format=yuvj420p")); p < 34 {
				t.Errorf("image at +%d ms: PSNR %.1f dB", ms, p)
			}
		}
	})

	t.Run("server clock", func(t *testing.T) {
		// Sent in real time, so that server times run with producer times.
		file := makeMedia(t, "rt.mkv", args(srcVideo, []string{"-t", "3"}, encX264)...)
		putFile(t, s, "img-rt", file, f.t0, func(c *producer.Config) { c.Realtime = true })
		frags := hmList(t, s, "img-rt", avtypes.FragmentSelectorTypeServerTimestamp, f.t0.Add(-time.Hour), time.Now().Add(time.Hour))
		if len(frags) != 3 {
			t.Fatalf("%d fragments", len(frags))
		}
		g := &imagesFixture{s: s, name: "img-rt", file: file, t0: f.t0}
		from := frags[1].ServerTimestamp.Add(530 * time.Millisecond) // between two frames
		imgs, _ := g.getImages(t, kinesisvideoarchivedmedia.GetImagesInput{ImageSelectorType: avtypes.ImageSelectorTypeServerTimestamp,
			StartTimestamp: aws.Time(from), EndTimestamp: aws.Time(from.Add(time.Second)), SamplingInterval: aws.Int32(1000),
			Format: avtypes.FormatPng, HeightPixels: aws.Int32(120)})
		if len(imgs) != 2 {
			t.Fatalf("%d images", len(imgs))
		}
		// A sample falls in the fragment that started last at or before it
		// (server times jitter with the network), and that fragment's own
		// offset between the clocks places the frame.
		for k, img := range imgs {
			at := from.Add(time.Duration(k) * time.Second)
			in := frags[0]
			for _, fr := range frags {
				if !fr.ServerTimestamp.After(at) {
					in = fr
				}
			}
			ms := hmMs(in.ProducerTimestamp) - f.t0.UnixMilli() + at.Sub(*in.ServerTimestamp).Round(time.Millisecond).Milliseconds()
			if p := mediatest.PSNR(decodeContent(t, img), mediatest.Frame(t, file, frameAt(ms), "scale=160:120")); p < 45 {
				t.Errorf("image %d: PSNR %.1f dB against frame %d", k, p, frameAt(ms))
			}
		}
	})

	t.Run("by ARN", func(t *testing.T) {
		d, err := s.kv().DescribeStream(ctxT(t), &kinesisvideo.DescribeStreamInput{StreamName: aws.String(f.name)})
		if err != nil {
			t.Fatal(err)
		}
		out, err := s.archived().GetImages(ctxT(t), &kinesisvideoarchivedmedia.GetImagesInput{StreamARN: d.StreamInfo.StreamARN,
			ImageSelectorType: avtypes.ImageSelectorTypeProducerTimestamp, StartTimestamp: f.at(4000), EndTimestamp: f.at(4000),
			Format: avtypes.FormatPng})
		if err != nil || len(out.Images) != 1 {
			t.Fatalf("%v %v", out, err)
		}
		if p := mediatest.PSNR(decodeContent(t, out.Images[0]), mediatest.Frame(t, f.file, 100)); p < 45 {
			t.Errorf("PSNR %.1f dB", p)
		}
	})

	t.Run("stretched", func(t *testing.T) {
		imgs, _ := f.getImages(t, kinesisvideoarchivedmedia.GetImagesInput{ImageSelectorType: avtypes.ImageSelectorTypeProducerTimestamp,
			StartTimestamp: f.at(2000), EndTimestamp: f.at(2000), Format: avtypes.FormatJpeg, WidthPixels: aws.Int32(400), HeightPixels: aws.Int32(100)})
		if b := decodeContent(t, imgs[0]).Bounds(); len(imgs) != 1 || b.Dx() != 400 || b.Dy() != 100 {
			t.Fatalf("%d images, %v", len(imgs), b)
		}
	})

	t.Run("gaps are NO_MEDIA", func(t *testing.T) {
		// From 3 s before the stream to 3 s after it: 0..2 s before, 10 s
		// (the last frame's end) and after.
		imgs, _ := f.getImages(t, kinesisvideoarchivedmedia.GetImagesInput{ImageSelectorType: avtypes.ImageSelectorTypeProducerTimestamp,
			StartTimestamp: f.at(-3000), EndTimestamp: f.at(13000), SamplingInterval: aws.Int32(1000), Format: avtypes.FormatJpeg})
		if len(imgs) != 17 {
			t.Fatalf("%d images, want 17", len(imgs))
		}
		for k, img := range imgs {
			ms := int64(-3000 + 1000*k)
			want := ms >= 0 && ms <= 10000
			if (img.Error == "") != want || (img.ImageContent != nil) != want {
				t.Errorf("image at %+d ms: error %q, content %v", ms, img.Error, img.ImageContent != nil)
			}
			if !want && img.Error != avtypes.ImageErrorNoMedia {
				t.Errorf("image at %+d ms: %q, want NO_MEDIA", ms, img.Error)
			}
		}
	})

	t.Run("H.265", func(t *testing.T) {
		file := makeMedia(t, "h265.mkv", args(srcVideo, []string{"-t", "3"}, []string{"-c:v", "libx265", "-x265-params",
			"keyint=25:min-keyint=25:scenecut=0:open-gop=0:log-level=error", "-pix_fmt", "yuv420p"})...)
		putFile(t, s, "img-h265", file, f.t0)
		g := &imagesFixture{s: s, name: "img-h265", file: file, t0: f.t0}
		imgs, _ := g.getImages(t, kinesisvideoarchivedmedia.GetImagesInput{ImageSelectorType: avtypes.ImageSelectorTypeProducerTimestamp,
			StartTimestamp: g.at(0), EndTimestamp: g.at(2900), SamplingInterval: aws.Int32(700), Format: avtypes.FormatPng})
		if len(imgs) != 5 {
			t.Fatalf("%d images", len(imgs))
		}
		for k, img := range imgs {
			ms := int64(700 * k)
			if p := mediatest.PSNR(decodeContent(t, img), mediatest.Frame(t, file, frameAt(ms))); p < 45 {
				t.Errorf("H.265 image at +%d ms: PSNR %.1f dB", ms, p)
			}
		}
	})
}

// Bad input gets the KVS error, or the per-image error.
func TestGetImagesBadInput(t *testing.T) {
	s := startServer(t)
	f := newImagesFixture(t, s, "img-bad")
	createStream(t, s, "img-live-only", 0)
	base := func() *kinesisvideoarchivedmedia.GetImagesInput {
		return &kinesisvideoarchivedmedia.GetImagesInput{StreamName: aws.String(f.name), ImageSelectorType: avtypes.ImageSelectorTypeProducerTimestamp,
			StartTimestamp: f.at(0), EndTimestamp: f.at(5000), SamplingInterval: aws.Int32(1000), Format: avtypes.FormatJpeg}
	}
	for _, c := range []struct {
		name   string
		mod    func(*kinesisvideoarchivedmedia.GetImagesInput)
		code   string
		status int
	}{
		{"sampling interval 0", func(in *kinesisvideoarchivedmedia.GetImagesInput) { in.SamplingInterval = aws.Int32(0) }, "InvalidArgumentException", 400},
		{"sampling interval over a day", func(in *kinesisvideoarchivedmedia.GetImagesInput) { in.SamplingInterval = aws.Int32(86_400_001) }, "InvalidArgumentException", 400},
		{"width over 3840", func(in *kinesisvideoarchivedmedia.GetImagesInput) { in.WidthPixels = aws.Int32(3841) }, "InvalidArgumentException", 400},
		{"height over 2160", func(in *kinesisvideoarchivedmedia.GetImagesInput) { in.HeightPixels = aws.Int32(2161) }, "InvalidArgumentException", 400},
		{"end before start", func(in *kinesisvideoarchivedmedia.GetImagesInput) { in.EndTimestamp = f.at(-1000) }, "InvalidArgumentException", 400},
		{"range over a day", func(in *kinesisvideoarchivedmedia.GetImagesInput) { in.EndTimestamp = f.at(86_400_001) }, "InvalidArgumentException", 400},
		{"JPEG quality 0", func(in *kinesisvideoarchivedmedia.GetImagesInput) {
			in.FormatConfig = map[string]string{"JPEGQuality": "0"}
		}, "InvalidArgumentException", 400},
		{"unknown format key", func(in *kinesisvideoarchivedmedia.GetImagesInput) {
			in.FormatConfig = map[string]string{"PNGLevel": "3"}
		}, "InvalidArgumentException", 400},
		{"format", func(in *kinesisvideoarchivedmedia.GetImagesInput) { in.Format = "GIF" }, "InvalidArgumentException", 400},
		{"selector", func(in *kinesisvideoarchivedmedia.GetImagesInput) { in.ImageSelectorType = "NOW" }, "InvalidArgumentException", 400},
		{"MaxResults 101", func(in *kinesisvideoarchivedmedia.GetImagesInput) { in.MaxResults = aws.Int64(101) }, "InvalidArgumentException", 400},
		{"foreign token", func(in *kinesisvideoarchivedmedia.GetImagesInput) { in.NextToken = aws.String("bm90IGEgdG9rZW4=") }, "InvalidArgumentException", 400},
		{"unknown stream", func(in *kinesisvideoarchivedmedia.GetImagesInput) { in.StreamName = aws.String("no-such-stream") }, "ResourceNotFoundException", 404},
		{"no retention", func(in *kinesisvideoarchivedmedia.GetImagesInput) { in.StreamName = aws.String("img-live-only") }, "NoDataRetentionException", 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := base()
			c.mod(in)
			_, err := s.archived().GetImages(ctxT(t), in)
			apiErr(t, err, c.code, c.status)
		})
	}
	// wantAll asks for images and requires n, each with the error want.
	wantAll := func(t *testing.T, in *kinesisvideoarchivedmedia.GetImagesInput, n int, want avtypes.ImageError) {
		t.Helper()
		out, err := s.archived().GetImages(ctxT(t), in)
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Images) != n {
			t.Fatalf("%d images, want %d", len(out.Images), n)
		}
		for _, img := range out.Images {
			if img.Error != want || img.ImageContent != nil {
				t.Fatalf("%+v, want %s", img, want)
			}
		}
	}
	t.Run("a range with no media", func(t *testing.T) {
		in := base()
		in.StartTimestamp, in.EndTimestamp = f.at(-60_000), f.at(-55_000)
		wantAll(t, in, 6, avtypes.ImageErrorNoMedia)
	})
	t.Run("media without a picture", func(t *testing.T) {
		// Audio only: fragments cover the range, but nothing in them is video.
		file := makeMedia(t, "audio.mkv", args(srcAudio, []string{"-t", "4", "-c:a", "aac"})...)
		putFile(t, s, "img-audio", file, f.t0)
		in := base()
		in.StreamName, in.StartTimestamp, in.EndTimestamp = aws.String("img-audio"), f.at(500), f.at(2500)
		wantAll(t, in, 3, avtypes.ImageErrorMediaError)
	})
	t.Run("a token replayed against another range", func(t *testing.T) {
		in := base()
		in.MaxResults = aws.Int64(2)
		out, err := s.archived().GetImages(ctxT(t), in)
		if err != nil || out.NextToken == nil {
			t.Fatalf("%v %v", out, err)
		}
		in.NextToken, in.EndTimestamp = out.NextToken, f.at(4000)
		_, err = s.archived().GetImages(ctxT(t), in)
		apiErr(t, err, "InvalidArgumentException", 400)
	})
}

// The AWS CLI's get-images (which pages by itself, --page-size being
// MaxResults) returns every image, stretched to the size asked.
func TestGetImagesWithAWSCLI(t *testing.T) {
	s := startServer(t)
	// The CLI sends whole seconds: the stream starts half a second off
	// them, so that every sample falls mid-fragment.
	f := newImagesFixtureAt(t, s, "img-cli", time.UnixMilli(time.Now().Add(-time.Hour).UnixMilli()/1000*1000+500))
	iso := func(ms int64) string { return f.at(ms).UTC().Format(time.RFC3339) }
	stdout, stderr, err := s.awsCLI(t, "kinesis-video-archived-media", "get-images", "--stream-name", f.name,
		"--image-selector-type", "PRODUCER_TIMESTAMP", "--start-timestamp", iso(1500), "--end-timestamp", iso(8500),
		"--sampling-interval", "1000", "--format", "JPEG", "--format-config", "JPEGQuality=90",
		"--width-pixels", "160", "--height-pixels", "90", "--page-size", "3")
	if err != nil {
		t.Fatalf("get-images: %v\n%s", err, stderr)
	}
	var out struct {
		Images []struct {
			TimeStamp    float64
			Error        string
			ImageContent string
		}
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	if len(out.Images) != 8 {
		t.Fatalf("%d images, want 8", len(out.Images))
	}
	for k, img := range out.Images {
		ms := int64(1500 + 1000*k)
		if want := float64(f.at(ms).UnixMilli()) / 1000; img.TimeStamp != want {
			t.Errorf("image %d: TimeStamp %v, want %v", k, img.TimeStamp, want)
		}
		b, err := base64.StdEncoding.DecodeString(img.ImageContent)
		if err != nil || img.Error != "" {
			t.Fatalf("image %d: %v %q", k, err, img.Error)
		}
		got := mediatest.DecodeImage(t, b)
		if bd := got.Bounds(); bd.Dx() != 160 || bd.Dy() != 90 {
			t.Fatalf("image %d is %v, want 160x90", k, bd)
		}
		if p := mediatest.PSNR(got, mediatest.Frame(t, f.file, frameAt(ms), "scale=160:90,format=yuvj420p")); p < 34 {
			t.Errorf("image at +%d ms: PSNR %.1f dB", ms, p)
		}
	}
}

// Without ffmpeg, image calls say so (ServiceUnavailable, naming ffmpeg)
// and the rest of the server works.
func TestGetImagesWithoutFFmpeg(t *testing.T) {
	s := startServer(t, func(c *app.Config) { c.FFmpeg = "/nonexistent/ffmpeg" })
	f := newImagesFixture(t, s, "img-noffmpeg")
	client := kinesisvideoarchivedmedia.NewFromConfig(sdkConfig(), func(o *kinesisvideoarchivedmedia.Options) {
		o.BaseEndpoint, o.RetryMaxAttempts = aws.String(s.URL), 1
	})
	_, err := client.GetImages(ctxT(t), &kinesisvideoarchivedmedia.GetImagesInput{StreamName: aws.String(f.name),
		ImageSelectorType: avtypes.ImageSelectorTypeProducerTimestamp, StartTimestamp: f.at(0), EndTimestamp: f.at(1000), Format: avtypes.FormatJpeg})
	apiErr(t, err, "ServiceUnavailableException", 503)
	if !strings.Contains(err.Error(), "ffmpeg") {
		t.Fatalf("the error does not name ffmpeg: %v", err)
	}
	if n := listCount(t, s, f.name); n != 10 {
		t.Fatalf("ListFragments without ffmpeg: %d fragments", n)
	}
}
