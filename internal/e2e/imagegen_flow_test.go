package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	kvtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideo/types"
	avtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kinema/kinema/internal/app"
	"github.com/kinema/kinema/internal/images"
	"github.com/kinema/kinema/internal/mediatest"
	"github.com/kinema/kinema/internal/producer"
	"github.com/kinema/kinema/internal/s3conf/s3test"
)

const s3Key, s3Secret = s3test.AccessKey, s3test.SecretKey

// startS3 runs versitygw on a loopback port over an empty directory, and
// returns its endpoint and a client of it.
func startS3(t *testing.T) (string, *s3.Client) {
	t.Helper()
	srv := s3test.Start(t)
	return srv.Endpoint, srv.Client
}

func createBucket(t *testing.T, c *s3.Client, name string) {
	t.Helper()
	if _, err := c.CreateBucket(ctxT(t), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatal(err)
	}
}

// waitObjects lists the bucket until it holds n objects under prefix.
func waitObjects(t *testing.T, c *s3.Client, bucket, prefix string, n int, within time.Duration) []string {
	t.Helper()
	var keys []string
	for deadline := time.Now().Add(within); ; time.Sleep(200 * time.Millisecond) {
		keys = keys[:0]
		out, err := c.ListObjectsV2(ctxT(t), &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
		if err == nil {
			for _, o := range out.Contents {
				keys = append(keys, aws.ToString(o.Key))
			}
		}
		if len(keys) >= n || time.Now().After(deadline) {
			break
		}
	}
	if len(keys) != n {
		t.Fatalf("%d objects under s3://%s/%s, want %d: %v", len(keys), bucket, prefix, n, keys)
	}
	sort.Strings(keys)
	return keys
}

func configureImages(t *testing.T, s *server, name, uri string, mod func(*kvtypes.ImageGenerationConfiguration)) {
	t.Helper()
	configureImagesWith(t, s.kv(), name, uri, mod)
}

func configureImagesWith(t *testing.T, kv *kinesisvideo.Client, name, uri string, mod func(*kvtypes.ImageGenerationConfiguration)) {
	t.Helper()
	cfg := &kvtypes.ImageGenerationConfiguration{Status: kvtypes.ConfigurationStatusEnabled, ImageSelectorType: kvtypes.ImageSelectorTypeProducerTimestamp,
		DestinationConfig: &kvtypes.ImageGenerationDestinationConfig{Uri: aws.String(uri), DestinationRegion: aws.String(testRegion)},
		SamplingInterval:  aws.Int32(500), Format: kvtypes.FormatJpeg, FormatConfig: map[string]string{"JPEGQuality": "90"}, WidthPixels: aws.Int32(160)}
	if mod != nil {
		mod(cfg)
	}
	if _, err := kv.UpdateImageGenerationConfiguration(ctxT(t), &kinesisvideo.UpdateImageGenerationConfigurationInput{
		StreamName: aws.String(name), ImageGenerationConfiguration: cfg}); err != nil {
		t.Fatal(err)
	}
}

// tagEvery tags the fragments for which tag(i) holds as a producer asking
// for images, with an object name prefix and a custom tag.
func tagEvery(tag func(i int) bool) func(*producer.Config) {
	return func(c *producer.Config) {
		c.FragmentTags = func(i int) []producer.Tag {
			if !tag(i) {
				return nil
			}
			return []producer.Tag{{Name: producer.TagImageGeneration}, {Name: producer.TagImagePrefix, Value: "door"},
				{Name: "CAMERA", Value: "front"}, {Name: "SEQ", Value: strconv.Itoa(i)}}
		}
	}
}

var reImageKey = regexp.MustCompile(`^cams/front/door_000000000000_gen-s3_(\d+)_[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}\.jpg$`)

// The image generation flow end to end: a producer tags fragments 0 and 2
// of 3; their images (every 500 ms) appear in an S3-compatible bucket under
// KVS's object names, with KVS's metadata and the fragment's custom tags,
// listed and read back with an S3 client and compared with the source.
func TestImageGenerationToS3(t *testing.T) {
	endpoint, bucket := startS3(t)
	createBucket(t, bucket, "thumbs")
	s := startServer(t, func(c *app.Config) {
		c.S3 = images.S3Config{Endpoint: endpoint, AccessKeyID: s3Key, SecretAccessKey: s3Secret, PathStyle: true}
	})
	file := makeMedia(t, "gen.mkv", args(srcVideo, []string{"-t", "3"}, encX264)...)
	m, err := producer.OpenFile(ctxT(t), file)
	if err != nil {
		t.Fatal(err)
	}
	createStream(t, s, "gen-s3", 24)
	configureImages(t, s, "gen-s3", "s3://thumbs/cams/front", nil)
	t0 := time.UnixMilli(time.Now().Add(-time.Hour).UnixMilli() / 1000 * 1000)
	hmPut(t, s, "gen-s3", m, t0, tagEvery(func(i int) bool { return i != 1 }))

	keys := waitObjects(t, bucket, "thumbs", "cams/", 4, 30*time.Second)
	frags := hmList(t, s, "gen-s3", avtypes.FragmentSelectorTypeProducerTimestamp, t0.Add(-time.Minute), t0.Add(time.Minute))
	if len(frags) != 3 {
		t.Fatalf("%d fragments", len(frags))
	}
	// Samples at +0, +500, +2000 and +2500 ms show the frames at or before
	// them; objects are named after the frame's time.
	sampleMs := []int64{0, 500, 2000, 2500}
	for i, key := range keys {
		mt := reImageKey.FindStringSubmatch(key)
		if mt == nil {
			t.Fatalf("object key %q is not <prefix>_<account>_<stream>_<ms>_<uuid>.jpg", key)
		}
		ms, _ := strconv.ParseInt(mt[1], 10, 64)
		if want := t0.UnixMilli() + int64(frameAt(sampleMs[i])*40); ms != want {
			t.Errorf("object %d is at t0+%d ms, want t0+%d", i, ms-t0.UnixMilli(), want-t0.UnixMilli())
		}
		frag := frags[sampleMs[i]/1000]
		obj, err := bucket.GetObject(ctxT(t), &s3.GetObjectInput{Bucket: aws.String("thumbs"), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(obj.Body)
		obj.Body.Close()
		serverMs := hmMs(frag.ServerTimestamp) + (ms - hmMs(frag.ProducerTimestamp))
		want := map[string]string{
			"aws_kinesisvideo_fragment_number":    aws.ToString(frag.FragmentNumber),
			"aws_kinesisvideo_producer_timestamp": strconv.FormatInt(ms, 10),
			"aws_kinesisvideo_server_timestamp":   strconv.FormatInt(serverMs, 10),
			"camera":                              "front",
			"seq":                                 strconv.FormatInt(sampleMs[i]/1000, 10),
		}
		if fmt.Sprint(obj.Metadata) != fmt.Sprint(want) || aws.ToString(obj.ContentType) != "image/jpeg" {
			t.Errorf("object %s: %s, metadata %v\nwant %v", key, aws.ToString(obj.ContentType), obj.Metadata, want)
		}
		img := mediatest.DecodeImage(t, data)
		if b := img.Bounds(); b.Dx() != 160 || b.Dy() != 120 {
			t.Fatalf("%s is %v", key, b)
		}
		if p := mediatest.PSNR(img, mediatest.Frame(t, file, frameAt(sampleMs[i]), "scale=160:120,format=yuvj420p")); p < 34 {
			t.Errorf("%s: PSNR %.1f dB against the source", key, p)
		}
	}
}

// An upload that fails (the bucket does not exist yet) is retried until
// it succeeds.
func TestImageGenerationRetriesUploads(t *testing.T) {
	endpoint, bucket := startS3(t)
	s := startServer(t, func(c *app.Config) {
		c.S3 = images.S3Config{Endpoint: endpoint, AccessKeyID: s3Key, SecretAccessKey: s3Secret, PathStyle: true}
		c.ImageRetryBackoff = 300 * time.Millisecond
	})
	file := makeMedia(t, "late.mkv", args(srcVideo, []string{"-t", "1"}, encX264)...)
	m, err := producer.OpenFile(ctxT(t), file)
	if err != nil {
		t.Fatal(err)
	}
	createStream(t, s, "gen-late", 24)
	configureImages(t, s, "gen-late", "s3://late", func(c *kvtypes.ImageGenerationConfiguration) { c.SamplingInterval = aws.Int32(5000) })
	hmPut(t, s, "gen-late", m, time.Now().Add(-time.Hour), tagEvery(func(int) bool { return true }))
	time.Sleep(1500 * time.Millisecond) // a few failed attempts
	createBucket(t, bucket, "late")
	waitObjects(t, bucket, "late", "", 1, 20*time.Second)
}

// Image generation is durable: the images of fragments persisted while
// their uploads fail are still owed when the server is killed with
// kill -9, and are written after it restarts.
func TestImageGenerationSurvivesKill9(t *testing.T) {
	endpoint, bucket := startS3(t)
	t.Setenv("KINEMA_S3_ACCESS_KEY_ID", s3Key)
	t.Setenv("KINEMA_S3_SECRET_ACCESS_KEY", s3Secret)
	dir, addr := t.TempDir(), freePort(t)
	p := startProcess(t, dir, addr, "--s3-endpoint", endpoint)
	kv, _ := p.clients()
	if _, err := kv.CreateStream(ctxT(t), &kinesisvideo.CreateStreamInput{StreamName: aws.String("gen-crash"), DataRetentionInHours: aws.Int32(24)}); err != nil {
		t.Fatal(err)
	}
	configureImagesWith(t, kv, "gen-crash", "s3://crash", func(c *kvtypes.ImageGenerationConfiguration) { c.SamplingInterval = aws.Int32(1000) })
	file := makeMedia(t, "crash.mkv", args(srcVideo, []string{"-t", "2"}, encX264)...)
	m, err := producer.OpenFile(ctxT(t), file)
	if err != nil {
		t.Fatal(err)
	}
	hmPutTo(t, p.url, "gen-crash", m, time.Now().Add(-time.Hour), tagEvery(func(int) bool { return true }))
	in := map[string]any{"StreamName": "gen-crash", "Kind": "IMAGE_GENERATION"}
	waitEvents(t, p.url, in, 20*time.Second, func(evs []apiEvent) bool {
		return len(evs) == 2 && countStatus(evs, "PENDING") == 2 && evs[0].Attempts >= 1
	})
	p.kill9()
	createBucket(t, bucket, "crash")
	p = startProcess(t, dir, addr, "--s3-endpoint", endpoint)
	waitObjects(t, bucket, "crash", "", 2, 30*time.Second)
	waitEvents(t, p.url, in, 10*time.Second, func(evs []apiEvent) bool { return countStatus(evs, "DELIVERED") == 2 })
}

// A fragment whose images could not be written in its attempts is DEAD,
// listed among the dead letters, and written when redriven.
func TestImageGenerationDeadAndRedriven(t *testing.T) {
	endpoint, bucket := startS3(t)
	s := startServer(t, func(c *app.Config) {
		c.S3 = images.S3Config{Endpoint: endpoint, AccessKeyID: s3Key, SecretAccessKey: s3Secret, PathStyle: true}
		c.ImageRetryBackoff, c.ImageAttempts = 50*time.Millisecond, 2
	})
	file := makeMedia(t, "dead.mkv", args(srcVideo, []string{"-t", "1"}, encX264)...)
	m, err := producer.OpenFile(ctxT(t), file)
	if err != nil {
		t.Fatal(err)
	}
	createStream(t, s, "gen-dead", 24)
	configureImages(t, s, "gen-dead", "s3://dead", nil)
	hmPut(t, s, "gen-dead", m, time.Now().Add(-time.Hour), tagEvery(func(int) bool { return true }))
	in := map[string]any{"StreamName": "gen-dead", "Kind": "IMAGE_GENERATION"}
	evs := waitEvents(t, s.URL, in, 20*time.Second, func(evs []apiEvent) bool { return countStatus(evs, "DEAD") == 1 })
	if evs[0].Attempts != 2 || evs[0].LastError == "" || evs[0].Destination != "s3://dead" {
		t.Fatalf("dead event %+v", evs[0])
	}
	createBucket(t, bucket, "dead")
	if st, b := signedJSON(t, s, "redriveEvents", `{"StreamName":"gen-dead","Kind":"IMAGE_GENERATION"}`); st != 200 || !strings.Contains(string(b), evs[0].EventId) {
		t.Fatalf("redriveEvents: %d %s", st, b)
	}
	waitObjects(t, bucket, "dead", "", 2, 20*time.Second)
	waitEvents(t, s.URL, in, 10*time.Second, func(evs []apiEvent) bool { return countStatus(evs, "DELIVERED") == 1 })
	if st, b := signedJSON(t, s, "redriveEvents", `{"Kind":"SNAPSHOT"}`); st != 400 {
		t.Fatalf("redriveEvents of an unknown kind: %d %s", st, b)
	}
}

// file:///dir, the embedded default: the image and its metadata beside it.
func TestImageGenerationToDirectory(t *testing.T) {
	s := startServer(t)
	dir := filepath.Join(t.TempDir(), "images")
	file := makeMedia(t, "dir.mkv", args(srcVideo, []string{"-t", "2"}, encX264)...)
	m, err := producer.OpenFile(ctxT(t), file)
	if err != nil {
		t.Fatal(err)
	}
	createStream(t, s, "gen-dir", 24)
	configureImages(t, s, "gen-dir", "file://"+dir, func(c *kvtypes.ImageGenerationConfiguration) {
		c.Format, c.FormatConfig, c.SamplingInterval, c.WidthPixels = kvtypes.FormatPng, nil, aws.Int32(1000), nil
	})
	t0 := time.UnixMilli(time.Now().Add(-time.Hour).UnixMilli() / 1000 * 1000)
	hmPut(t, s, "gen-dir", m, t0, tagEvery(func(int) bool { return true }))
	var pngs []string
	for deadline := time.Now().Add(30 * time.Second); len(pngs) < 2 && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		pngs, _ = filepath.Glob(filepath.Join(dir, "door_000000000000_gen-dir_*.png"))
	}
	if len(pngs) != 2 {
		t.Fatalf("%d images in %s", len(pngs), dir)
	}
	sort.Strings(pngs)
	for i, p := range pngs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if q := mediatest.PSNR(mediatest.DecodeImage(t, b), mediatest.Frame(t, file, 25*i)); q < 45 {
			t.Errorf("%s: PSNR %.1f dB", p, q)
		}
		var meta struct {
			ContentType string
			Metadata    map[string]string
		}
		mb, err := os.ReadFile(p + ".json")
		if err != nil || json.Unmarshal(mb, &meta) != nil || meta.ContentType != "image/png" || meta.Metadata["CAMERA"] != "front" ||
			meta.Metadata["aws_kinesisvideo_producer_timestamp"] != strconv.FormatInt(t0.UnixMilli()+int64(1000*i), 10) {
			t.Errorf("%s.json: %s %v", p, mb, err)
		}
	}
}
