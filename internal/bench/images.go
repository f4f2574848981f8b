package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	avtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"

	"github.com/kinema/kinema/internal/producer"
)

// ImageSource is a test video for the images benchmark: 100 s of 1080p
// H.264 at 10 fps with a key frame (so a fragment) every second.
type ImageSource struct {
	Name string
	// Filter is an ffmpeg video filter applied to testsrc2; static noise
	// makes key frames the size a real camera's are.
	Filter string
}

// ImageSources: plain testsrc2 (about 62 KB key frames) and testsrc2 under
// static noise (about 330 KB, like a camera's).
var ImageSources = []ImageSource{{Name: "simple"}, {Name: "camera", Filter: "noise=alls=2"}}

// ImagesConfig points the benchmark at a running server.
type ImagesConfig struct {
	Endpoint    string
	Credentials aws.Credentials
	Region      string
	Dir         string // media are made here once and reused
	Runs        int    // timed repetitions of each batch measurement (median kept)
	Singles     int    // single-image GetImages calls for the latency figures
}

// ImagesResult is what one source measured.
type ImagesResult struct {
	Source      string
	KeyBytes    int64         // mean key frame size
	Kinema      time.Duration // GetImages for 100 images, median
	FFmpegOne   time.Duration // ffmpeg decoding the same key frames in one process, median
	FFmpegEach  time.Duration // one ffmpeg process per key frame, all 100
	SingleP50   time.Duration // GetImages of one key frame, calls 300 ms apart
	SingleP90   time.Duration
	SingleMax   time.Duration
	BurstP50    time.Duration // the same, calls back to back
	BurstP90    time.Duration
	ImagesBytes int64 // JPEG bytes of the 100 images
}

// Report prints the result with the ratios the targets are about.
func (r ImagesResult) Report() string {
	per := func(d time.Duration) string { return fmt.Sprintf("%.1f ms/image", float64(d.Microseconds())/1000/100) }
	var b strings.Builder
	fmt.Fprintf(&b, "%s (1080p H.264, key frames %.0f KB), 100 images at 640x360 JPEG quality 80:\n", r.Source, float64(r.KeyBytes)/1000)
	fmt.Fprintf(&b, "  Kinema GetImages                    %7.0f ms  %s\n", ms(r.Kinema), per(r.Kinema))
	fmt.Fprintf(&b, "  ffmpeg, one process, same key frames %6.0f ms  %s   Kinema/ffmpeg = %.2f (target <= 1.3)\n",
		ms(r.FFmpegOne), per(r.FFmpegOne), float64(r.Kinema)/float64(r.FFmpegOne))
	fmt.Fprintf(&b, "  ffmpeg, one process per image        %6.0f ms  %s   per-process/Kinema = %.1fx (target >= 8)\n",
		ms(r.FFmpegEach), per(r.FFmpegEach), float64(r.FFmpegEach)/float64(r.Kinema))
	fmt.Fprintf(&b, "  single image (GetImages of one key frame, 300 ms apart): p50 %.1f ms, p90 %.1f ms, max %.1f ms (target p50 < 40)\n",
		ms(r.SingleP50), ms(r.SingleP90), ms(r.SingleMax))
	fmt.Fprintf(&b, "  single image, back to back: p50 %.1f ms, p90 %.1f ms\n", ms(r.BurstP50), ms(r.BurstP90))
	return b.String()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

const (
	imagesFPS      = 10
	imagesSeconds  = 100
	benchImageArgs = "scale=640:360"
	benchQScale    = "6" // what JPEGQuality 80 maps to (internal/images)
)

// RunImages measures one source end to end: media made (once), sent
// through PutMedia, then timed.
func RunImages(ctx context.Context, cfg ImagesConfig, src ImageSource) (ImagesResult, error) {
	res := ImagesResult{Source: src.Name}
	file, keys, singles, err := imageMedia(ctx, cfg.Dir, src)
	if err != nil {
		return res, err
	}
	for _, k := range singles {
		fi, err := os.Stat(k)
		if err != nil {
			return res, err
		}
		res.KeyBytes += fi.Size()
	}
	res.KeyBytes /= int64(len(singles))

	awsCfg := aws.Config{Region: cfg.Region, Credentials: credentials.StaticCredentialsProvider{Value: cfg.Credentials}}
	kv := kinesisvideo.NewFromConfig(awsCfg, func(o *kinesisvideo.Options) { o.BaseEndpoint = aws.String(cfg.Endpoint) })
	am := kinesisvideoarchivedmedia.NewFromConfig(awsCfg, func(o *kinesisvideoarchivedmedia.Options) {
		o.BaseEndpoint = aws.String(cfg.Endpoint)
	})
	name := "bench-images-" + src.Name
	if _, err := kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String(name), DataRetentionInHours: aws.Int32(24)}); err != nil {
		return res, err
	}
	m, err := producer.OpenFile(ctx, file)
	if err != nil {
		return res, err
	}
	t0 := time.UnixMilli(time.Now().Add(-time.Hour).UnixMilli() / 1000 * 1000)
	put, err := producer.Put(ctx, producer.Config{Endpoint: cfg.Endpoint, Region: cfg.Region, AccessKeyID: cfg.Credentials.AccessKeyID,
		SecretAccessKey: cfg.Credentials.SecretAccessKey, StreamName: name, StartTime: t0}, m.Fragments(0), m.Header)
	if err != nil {
		return res, err
	}
	if n := put.Counts[producer.AckPersisted]; n != imagesSeconds {
		return res, fmt.Errorf("%d fragments persisted, want %d", n, imagesSeconds)
	}

	// The 100 key frames: one per second from t0.
	batch := func() (time.Duration, int64, error) {
		start := time.Now()
		out, err := am.GetImages(ctx, &kinesisvideoarchivedmedia.GetImagesInput{StreamName: aws.String(name),
			ImageSelectorType: avtypes.ImageSelectorTypeProducerTimestamp, StartTimestamp: aws.Time(t0),
			EndTimestamp: aws.Time(t0.Add((imagesSeconds - 1) * time.Second)), SamplingInterval: aws.Int32(1000),
			Format: avtypes.FormatJpeg, WidthPixels: aws.Int32(640), HeightPixels: aws.Int32(360), MaxResults: aws.Int64(100)})
		d := time.Since(start)
		if err != nil {
			return 0, 0, err
		}
		var n int64
		for _, img := range out.Images {
			if img.Error != "" {
				return 0, 0, fmt.Errorf("image at %v: %s", img.TimeStamp, img.Error)
			}
			n += int64(len(aws.ToString(img.ImageContent))) * 3 / 4
		}
		if len(out.Images) != imagesSeconds {
			return 0, 0, fmt.Errorf("%d images, want %d", len(out.Images), imagesSeconds)
		}
		return d, n, nil
	}
	if _, _, err := batch(); err != nil { // warms the page cache and the ffmpeg pool
		return res, err
	}
	var kinema, one []time.Duration
	for range max(cfg.Runs, 1) {
		d, n, err := batch()
		if err != nil {
			return res, err
		}
		kinema, res.ImagesBytes = append(kinema, d), n
		start := time.Now()
		if err := runFFmpeg(ctx, io.Discard, "-i", keys, "-vf", benchImageArgs, "-fps_mode", "passthrough",
			"-q:v", benchQScale, "-f", "image2pipe", "-"); err != nil {
			return res, err
		}
		one = append(one, time.Since(start))
	}
	res.Kinema, res.FFmpegOne = median(kinema), median(one)
	start := time.Now()
	for _, k := range singles {
		if err := runFFmpeg(ctx, io.Discard, "-i", k, "-vf", benchImageArgs, "-q:v", benchQScale, "-frames:v", "1",
			"-f", "image2pipe", "-"); err != nil {
			return res, err
		}
	}
	res.FFmpegEach = time.Since(start)

	single := func(i int) (time.Duration, error) {
		at := t0.Add(time.Duration(i%imagesSeconds) * time.Second)
		start := time.Now()
		out, err := am.GetImages(ctx, &kinesisvideoarchivedmedia.GetImagesInput{StreamName: aws.String(name),
			ImageSelectorType: avtypes.ImageSelectorTypeProducerTimestamp, StartTimestamp: aws.Time(at), EndTimestamp: aws.Time(at),
			Format: avtypes.FormatJpeg, WidthPixels: aws.Int32(640), HeightPixels: aws.Int32(360)})
		d := time.Since(start)
		if err == nil && (len(out.Images) != 1 || out.Images[0].Error != "") {
			err = fmt.Errorf("single image at %v: %+v", at, out.Images)
		}
		return d, err
	}
	var spaced, burst []time.Duration
	for i := range max(cfg.Singles, 1) {
		// A camera UI asks now and then: the warm ffmpeg used is replaced
		// in the background, which takes a core for tens of ms.
		time.Sleep(300 * time.Millisecond)
		d, err := single(i)
		if err != nil {
			return res, err
		}
		spaced = append(spaced, d)
	}
	for i := range max(cfg.Singles, 1) {
		d, err := single(i)
		if err != nil {
			return res, err
		}
		burst = append(burst, d)
	}
	slices.Sort(spaced)
	slices.Sort(burst)
	res.SingleP50, res.SingleP90, res.SingleMax = spaced[len(spaced)/2], spaced[len(spaced)*9/10], spaced[len(spaced)-1]
	res.BurstP50, res.BurstP90 = burst[len(burst)/2], burst[len(burst)*9/10]
	return res, nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func runFFmpeg(ctx context.Context, stdout io.Writer, args ...string) error {
	cmd := exec.CommandContext(ctx, "ffmpeg", append([]string{"-nostdin", "-v", "error", "-y"}, args...)...)
	cmd.Stdout = stdout
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ffmpeg %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return nil
}

// imageMedia makes (once per dir) the source file, its key frames as one
// Matroska file, and each key frame as a file of its own.
func imageMedia(ctx context.Context, dir string, src ImageSource) (file, keys string, singles []string, err error) {
	file = filepath.Join(dir, "images-"+src.Name+".mkv")
	keys = filepath.Join(dir, "images-"+src.Name+"-keys.mkv")
	singleDir := filepath.Join(dir, "images-"+src.Name+"-keys")
	if _, err := os.Stat(singleDir); err != nil {
		args := []string{"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=1920x1080:rate=%d", imagesFPS), "-t", fmt.Sprint(imagesSeconds)}
		if src.Filter != "" {
			args = append(args, "-vf", src.Filter)
		}
		args = append(args, "-c:v", "libx264", "-preset", "veryfast", "-g", fmt.Sprint(imagesFPS), "-keyint_min", fmt.Sprint(imagesFPS),
			"-sc_threshold", "0", "-pix_fmt", "yuv420p", file)
		if err := runFFmpeg(ctx, nil, args...); err != nil {
			return "", "", nil, err
		}
		if err := runFFmpeg(ctx, nil, "-i", file, "-c", "copy", "-bsf:v", "noise=drop=not(key)", keys); err != nil {
			return "", "", nil, err
		}
		tmp := singleDir + ".tmp"
		os.RemoveAll(tmp)
		if err := os.MkdirAll(tmp, 0o755); err != nil {
			return "", "", nil, err
		}
		if err := runFFmpeg(ctx, nil, "-i", keys, "-c", "copy", "-f", "segment", "-segment_time", "0.01", "-reset_timestamps", "1",
			filepath.Join(tmp, "key-%03d.mkv")); err != nil {
			return "", "", nil, err
		}
		if err := os.Rename(tmp, singleDir); err != nil {
			return "", "", nil, err
		}
	}
	singles, err = filepath.Glob(filepath.Join(singleDir, "key-*.mkv"))
	if err == nil && len(singles) != imagesSeconds {
		err = fmt.Errorf("%s holds %d key frames, want %d", singleDir, len(singles), imagesSeconds)
	}
	return file, keys, singles, err
}
