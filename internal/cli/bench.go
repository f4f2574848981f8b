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

	"github.com/kinema/kinema/internal/bench"
)

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 || args[0] != "ingest" {
		fmt.Fprintln(stderr, "usage: kinema bench ingest [flags]")
		return 2
	}
	fs := flag.NewFlagSet("kinema bench ingest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	streams := fs.Int("streams", 500, "concurrent cameras")
	duration := fs.Duration("duration", 60*time.Second, "how long every camera streams")
	bitrate := fs.Int("bitrate", 2_000_000, "bits per second per camera")
	fps := fs.Int("fps", 25, "frames per second")
	fragment := fs.Duration("fragment", 2*time.Second, "fragment (GOP) length")
	ramp := fs.Duration("ramp", 5*time.Second, "cameras connect spread over this long")
	dataDir := fs.String("data-dir", "", "data dir for the server under test (default: a new temporary dir)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	dir := *dataDir
	if dir == "" {
		d, err := os.MkdirTemp("", "kinema-bench-")
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		defer os.RemoveAll(d)
		dir = d
	}
	// What the disk alone costs, first, so the figures below can be read as ratios.
	base, err := bench.MeasureBaseline(dir, 512<<20, 500_000)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	const key, secret = "AKIDKINEMABENCH00001", "kinemaBenchSecret000000000000000000000000"
	srv, err := bench.StartServer(dir, key, secret)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer srv.Stop()
	creds := aws.Credentials{AccessKeyID: key, SecretAccessKey: secret}
	kv := kinesisvideo.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: credentials.StaticCredentialsProvider{Value: creds}},
		func(o *kinesisvideo.Options) { o.BaseEndpoint = aws.String(srv.URL) })
	create := func(ctx context.Context, name string) error {
		_, err := kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String(name), DataRetentionInHours: aws.Int32(24)})
		return err
	}
	fmt.Fprintf(stdout, "kinema bench ingest: %d cameras x %.1f Mbit/s, %v fragments, %d fps, for %v (server pid in %s)\n",
		*streams, float64(*bitrate)/1e6, *fragment, *fps, *duration, dir)
	cpu0, _ := srv.CPU()
	res, err := bench.RunIngest(ctx, bench.IngestConfig{
		Endpoint: srv.URL, Credentials: creds, Region: "us-east-1", Streams: *streams, Duration: *duration,
		BitrateBps: *bitrate, FPS: *fps, Fragment: *fragment, Ramp: *ramp, StreamPrefix: "bench-",
	}, create)
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
