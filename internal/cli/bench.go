package cli

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	kvtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideo/types"

	"github.com/kinema/kinema/internal/app"
	"github.com/kinema/kinema/internal/bench"
	"github.com/kinema/kinema/internal/s3conf"
)

// fleetFlags are the synthetic-camera flags both benchmarks take.
type fleetFlags struct {
	streams, bitrate, fps int
	duration, fragment    time.Duration
	ramp                  time.Duration
	dataDir               string
}

func (f *fleetFlags) register(fs *flag.FlagSet, streams, bitrate, fps int, duration, fragment time.Duration) {
	fs.IntVar(&f.streams, "streams", streams, "concurrent cameras")
	fs.DurationVar(&f.duration, "duration", duration, "how long every camera streams")
	fs.IntVar(&f.bitrate, "bitrate", bitrate, "bits per second per camera")
	fs.IntVar(&f.fps, "fps", fps, "frames per second")
	fs.DurationVar(&f.fragment, "fragment", fragment, "fragment (GOP) length")
	fs.DurationVar(&f.ramp, "ramp", 5*time.Second, "cameras connect spread over this long")
	fs.StringVar(&f.dataDir, "data-dir", "", "data dir for the server under test (default: a new temporary dir)")
}

// dir returns the data dir and what removes it when it was made here.
func (f *fleetFlags) dir() (string, func(), error) {
	return benchDir(f.dataDir, "kinema-bench-")
}

func (f *fleetFlags) ingest(srvURL string, creds aws.Credentials) bench.IngestConfig {
	return bench.IngestConfig{
		Endpoint: srvURL, Credentials: creds, Region: "us-east-1", Streams: f.streams, Duration: f.duration,
		BitrateBps: f.bitrate, FPS: f.fps, Fragment: f.fragment, Ramp: f.ramp, StreamPrefix: "bench-",
	}
}

const benchKey, benchSecret = "AKIDKINEMABENCH00001", "kinemaBenchSecret000000000000000000000000"

func benchClient(url string) (*kinesisvideo.Client, aws.Credentials) {
	creds := aws.Credentials{AccessKeyID: benchKey, SecretAccessKey: benchSecret}
	return kinesisvideo.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: credentials.StaticCredentialsProvider{Value: creds}},
		func(o *kinesisvideo.Options) { o.BaseEndpoint = aws.String(url) }), creds
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) >= 1 && args[0] == "notify" {
		return runBenchNotify(ctx, args[1:], stdout, stderr)
	}
	if len(args) >= 1 && args[0] == "index" {
		return runBenchIndex(ctx, args[1:], stdout, stderr)
	}
	if len(args) >= 1 && args[0] == "images" {
		return runBenchImages(ctx, args[1:], stdout, stderr)
	}
	if len(args) < 1 || args[0] != "ingest" {
		fmt.Fprintln(stderr, "usage: kinema bench ingest|notify|images|index [flags]")
		return 2
	}
	fs := flag.NewFlagSet("kinema bench ingest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var ff fleetFlags
	ff.register(fs, 500, 2_000_000, 25, 60*time.Second, 2*time.Second)
	// The backends of the server under test, as `kinema serve` takes them;
	// S3 credentials from KINEMA_S3_ACCESS_KEY_ID and KINEMA_S3_SECRET_ACCESS_KEY.
	indexURL := fs.String("index", "", "index URL for the server under test (postgres://...; default the embedded index)")
	mediaURL := fs.String("media", "", "media URL for the server under test (s3://bucket/prefix; default files in the data dir)")
	s3cfg := s3conf.Config{PathStyle: true}
	fs.StringVar(&s3cfg.Endpoint, "s3-endpoint", "", "S3-compatible endpoint of --media")
	putInterval := fs.Duration("media-put-interval", 200*time.Millisecond, "the server's --media-put-interval")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	s3cfg.AccessKeyID, s3cfg.SecretAccessKey = os.Getenv("KINEMA_S3_ACCESS_KEY_ID"), os.Getenv("KINEMA_S3_SECRET_ACCESS_KEY")
	var serveArgs []string
	if *indexURL != "" {
		serveArgs = append(serveArgs, "--index", *indexURL)
	}
	if *mediaURL != "" {
		serveArgs = append(serveArgs, "--media", *mediaURL, "--s3-endpoint", s3cfg.Endpoint, "--media-put-interval", putInterval.String())
	}
	dir, cleanup, err := ff.dir()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer cleanup()
	streams, duration, bitrate, fps, fragment := &ff.streams, &ff.duration, &ff.bitrate, &ff.fps, &ff.fragment
	// What the disk alone costs, first, so the figures below can be read as ratios.
	base, err := bench.MeasureBaseline(dir, 512<<20, 500_000)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	srv, err := bench.StartServer(dir, benchKey, benchSecret, serveArgs...)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer srv.Stop()
	kv, creds := benchClient(srv.URL)
	create := func(ctx context.Context, name string) error {
		_, err := kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String(name), DataRetentionInHours: aws.Int32(24)})
		return err
	}
	if *indexURL != "" || *mediaURL != "" {
		fmt.Fprintf(stdout, "backends: index %s, media %s\n", cmp.Or(redactURL(*indexURL), "embedded"), cmp.Or(*mediaURL, "local files"))
	}
	fmt.Fprintf(stdout, "kinema bench ingest: %d cameras x %.1f Mbit/s, %v fragments, %d fps, for %v (server pid in %s)\n",
		*streams, float64(*bitrate)/1e6, *fragment, *fps, *duration, dir)
	cpu0, _ := srv.CPU()
	res, err := bench.RunIngest(ctx, ff.ingest(srv.URL, creds), create)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	cpu1, _ := srv.CPU()
	rss := srv.PeakRSS()
	if err := srv.Stop(); err != nil {
		fmt.Fprintf(stderr, "server exit: %v\n", err)
	}
	media, index, _ := bench.DiskUsage(dir)
	fmt.Fprint(stdout, res.Report())
	if *mediaURL != "" {
		objects, bytes, err := bench.S3Usage(ctx, s3cfg, *mediaURL)
		if err != nil {
			fmt.Fprintf(stderr, "counting S3 objects: %v\n", err)
			return 1
		}
		cameraHours := float64(*streams) * res.Elapsed.Hours()
		fmt.Fprintf(stdout, "S3: %d objects (= PUTs) for %d fragments: %.0f PUTs per camera-hour, %.2f fragments and %.0f KB per object\n",
			objects, res.Fragments, float64(objects)/cameraHours, float64(res.Fragments)/float64(max(objects, 1)), float64(bytes)/1e3/float64(max(objects, 1)))
	}
	gb := float64(res.MediaBytes) / 1e9
	cpuPerGB := (cpu1 - cpu0).Seconds() / gb
	fmt.Fprintln(stdout, base)
	fmt.Fprintf(stdout, "server CPU %.1f s = %.1f CPU-seconds per GB ingested (%.1fx the baseline's write+fdatasync)\n",
		(cpu1 - cpu0).Seconds(), cpuPerGB, cpuPerGB/base.CPUPerGB())
	fmt.Fprintf(stdout, "server peak RSS %.0f MB\n", float64(rss)/1e6)
	fmt.Fprintf(stdout, "PERSISTED p99 / baseline fdatasync p99 = %.1f\n", float64(res.LatencyP99)/float64(base.SyncP99))
	fmt.Fprintf(stdout, "storage: segments %.1f MB + index %.2f MB for %.1f MB of media = %.4f bytes per media byte; index overhead %.4f%%\n",
		float64(media)/1e6, float64(index)/1e6, float64(res.MediaBytes)/1e6,
		float64(media+index)/float64(res.MediaBytes), 100*float64(index)/float64(res.MediaBytes))
	if res.Errors > 0 {
		return 1
	}
	return 0
}

func runBenchNotify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kinema bench notify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var ff fleetFlags
	ff.register(fs, 1000, 200_000, 5, 30*time.Second, time.Second)
	dest := fs.String("dest", "webhook", "where notifications go: webhook (a receiver in this process) or mqtt")
	mqttAddr := fs.String("mqtt", "127.0.0.1:1883", "MQTT broker for --dest mqtt")
	every := fs.Int("every", 1, "tag every n-th fragment")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	dir, cleanup, err := ff.dir()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer cleanup()
	arr := bench.NewArrivals()
	var uri func(stream string) string
	switch *dest {
	case "webhook":
		url, stop, err := arr.WebhookReceiver()
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		defer stop()
		uri = func(string) string { return url }
	case "mqtt":
		prefix := fmt.Sprintf("kinema-bench/%d", time.Now().UnixNano())
		stop, err := arr.MQTTReceiver(ctx, *mqttAddr, prefix)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		defer stop()
		uri = func(stream string) string { return "mqtt://" + *mqttAddr + "/" + prefix + "/" + stream }
	default:
		fmt.Fprintln(stderr, "kinema bench notify: --dest is webhook or mqtt")
		return 2
	}
	srv, err := bench.StartServer(dir, benchKey, benchSecret)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer srv.Stop()
	kv, creds := benchClient(srv.URL)
	setup := func(ctx context.Context, name string) error {
		if _, err := kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String(name), DataRetentionInHours: aws.Int32(24)}); err != nil {
			return err
		}
		_, err := kv.UpdateNotificationConfiguration(ctx, &kinesisvideo.UpdateNotificationConfigurationInput{StreamName: aws.String(name),
			NotificationConfiguration: &kvtypes.NotificationConfiguration{Status: kvtypes.ConfigurationStatusEnabled,
				DestinationConfig: &kvtypes.NotificationDestinationConfig{Uri: aws.String(uri(name))}}})
		return err
	}
	fmt.Fprintf(stdout, "kinema bench notify: %d cameras, %v fragments, every %d. fragment tagged, to %s, for %v\n",
		ff.streams, ff.fragment, *every, *dest, ff.duration)
	cfg := ff.ingest(srv.URL, creds)
	cfg.NotifyEvery, cfg.OnPersisted = *every, arr.Persisted
	cpu0, _ := srv.CPU()
	res, err := bench.RunIngest(ctx, cfg, setup)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	nres := arr.Wait(30 * time.Second)
	cpu1, _ := srv.CPU()
	fmt.Fprint(stdout, res.Report())
	fmt.Fprint(stdout, nres.Report(*dest))
	fmt.Fprintf(stdout, "server CPU %.1f s over %v\n", (cpu1 - cpu0).Seconds(), res.Elapsed.Round(time.Second))
	if res.Errors > 0 || nres.Delivered < nres.Tagged {
		return 1
	}
	return 0
}

// runBenchImages is `kinema bench images`: GetImages against ffmpeg alone,
// in the same run, on the same key frames (docs/benchmarks.md).
func runBenchImages(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kinema bench images", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "where the test media are made and kept between runs (default: a new temporary dir)")
	runs := fs.Int("runs", 3, "timed repetitions of each 100-image measurement (the median is reported)")
	singles := fs.Int("singles", 50, "single-image GetImages calls for the latency figures")
	sources := fs.String("sources", "simple,camera", "test videos: simple (plain test pattern), camera (key frames of a camera's size)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	work, cleanup, err := benchDir(*dir, "kinema-bench-images-")
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer cleanup()
	data, err := os.MkdirTemp(work, "server-")
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer os.RemoveAll(data)
	srv, err := bench.StartServer(data, benchKey, benchSecret)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer srv.Stop()
	cfg := bench.ImagesConfig{Endpoint: srv.URL, Credentials: aws.Credentials{AccessKeyID: benchKey, SecretAccessKey: benchSecret},
		Region: "us-east-1", Dir: work, Runs: *runs, Singles: *singles}
	fmt.Fprintf(stdout, "kinema bench images: %d runs, %d single-image calls, media in %s\n", *runs, *singles, work)
	for _, src := range bench.ImageSources {
		if !strings.Contains(","+*sources+",", ","+src.Name+",") {
			continue
		}
		res, err := bench.RunImages(ctx, cfg, src)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", src.Name, err)
			return 1
		}
		fmt.Fprint(stdout, res.Report())
	}
	return 0
}

// benchDir is the directory a benchmark works in: dir as given (made if
// missing), or a new temporary one that the returned function removes.
func benchDir(dir, prefix string) (string, func(), error) {
	if dir != "" {
		return dir, func() {}, os.MkdirAll(dir, 0o755)
	}
	d, err := os.MkdirTemp("", prefix)
	return d, func() { os.RemoveAll(d) }, err
}

// redactURL hides a URL's password in output.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.User == nil {
		return u
	}
	return p.Redacted()
}

// runBenchIndex fills an index with generated fragment rows and times the
// queries playback makes: the index query latency at scale, on either
// backend.
func runBenchIndex(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kinema bench index", flag.ContinueOnError)
	fs.SetOutput(stderr)
	indexURL := fs.String("index", "", "index to fill: postgres://... (use a database of its own), or empty for an embedded index in --data-dir")
	dataDir := fs.String("data-dir", "", "data dir of the embedded index (default: a new temporary dir)")
	var cfg bench.IndexConfig
	fs.Int64Var(&cfg.Rows, "rows", 1_000_000, "fragment rows to generate")
	fs.IntVar(&cfg.Streams, "streams", 1000, "streams the rows are spread over")
	fs.Int64Var(&cfg.FragmentMs, "fragment-ms", 2000, "fragment length in ms")
	fs.IntVar(&cfg.Queries, "queries", 2000, "timed calls of each query")
	fs.IntVar(&cfg.Batch, "batch", 10_000, "rows per commit")
	fs.BoolVar(&cfg.Existing, "existing", false, "only time the queries, on the rows an earlier run with the same --rows, --streams and --fragment-ms filled into --index or --data-dir")
	fs.BoolVar(&cfg.Commit, "commit", false, "fill through CommitFragments, as ingest writes, instead of generating rows inside the database")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	dir := *dataDir
	if dir == "" && *indexURL == "" {
		d, err := os.MkdirTemp("", "kinema-bench-index-")
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		defer os.RemoveAll(d)
		dir = d
	}
	x, kind, err := app.OpenIndex(ctx, *indexURL, dir)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer x.Close()
	fmt.Fprintf(stdout, "kinema bench index: %s index, %d rows over %d streams (%d ms fragments), %d calls per query\n",
		kind, cfg.Rows, cfg.Streams, cfg.FragmentMs, cfg.Queries)
	res, err := bench.RunIndex(ctx, x, cfg, stdout)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprint(stdout, res.Report())
	return 0
}
