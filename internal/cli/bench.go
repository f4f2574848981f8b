package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	kvtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideo/types"

	"github.com/kinema/kinema/internal/bench"
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
	if f.dataDir != "" {
		return f.dataDir, func() {}, nil
	}
	d, err := os.MkdirTemp("", "kinema-bench-")
	if err != nil {
		return "", nil, err
	}
	return d, func() { os.RemoveAll(d) }, nil
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
	if len(args) < 1 || args[0] != "ingest" {
		fmt.Fprintln(stderr, "usage: kinema bench ingest|notify [flags]")
		return 2
	}
	fs := flag.NewFlagSet("kinema bench ingest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var ff fleetFlags
	ff.register(fs, 500, 2_000_000, 25, 60*time.Second, 2*time.Second)
	if err := fs.Parse(args[1:]); err != nil {
		return 2
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
	srv, err := bench.StartServer(dir, benchKey, benchSecret)
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
