package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"

	"github.com/kinema/kinema/internal/app"
	"github.com/kinema/kinema/internal/media/mkv"
	"github.com/kinema/kinema/internal/mediatest"
	"github.com/kinema/kinema/internal/putmedia"
)

// Without KINEMA_* keys the server makes a key pair on first start, keeps it
// (mode 0600), prints it once, and uses it on later starts.
func TestGeneratedRootCredentials(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	a, err := app.Start(context.Background(), app.Config{DataDir: dir, Listen: "127.0.0.1:0", Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	creds := a.Credentials
	a.Shutdown(context.Background())
	if !strings.Contains(out.String(), creds.AccessKeyID) || !strings.Contains(out.String(), creds.SecretAccessKey) {
		t.Fatalf("first start did not print the key pair: %q", out.String())
	}
	fi, err := os.Stat(filepath.Join(dir, "credentials.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v %v", fi.Mode(), err)
	}
	out.Reset()
	a, err = app.Start(context.Background(), app.Config{DataDir: dir, Listen: "127.0.0.1:0", Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	if a.Credentials != creds || strings.Contains(out.String(), creds.SecretAccessKey) {
		t.Fatalf("second start: new pair or secret printed again: %q", out.String())
	}
	kv := kinesisvideo.NewFromConfig(aws.Config{Region: "ap-south-1",
		Credentials: credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, "")},
		func(o *kinesisvideo.Options) { o.BaseEndpoint = aws.String(a.URL) })
	if _, err := kv.ListStreams(ctxT(t), &kinesisvideo.ListStreamsInput{}); err != nil {
		t.Fatalf("the generated key does not sign: %v", err)
	}
}

// --region pins the signing region: other regions are refused.
func TestPinnedRegion(t *testing.T) {
	s := startServer(t, func(c *app.Config) { c.Region = "eu-west-1" })
	_, err := s.kv().ListStreams(ctxT(t), &kinesisvideo.ListStreamsInput{})
	apiErr(t, err, "InvalidSignatureException", 403)
	cfg := sdkConfig()
	cfg.Region = "eu-west-1"
	kv := kinesisvideo.NewFromConfig(cfg, func(o *kinesisvideo.Options) { o.BaseEndpoint = aws.String(s.URL) })
	out, err := kv.CreateStream(ctxT(t), &kinesisvideo.CreateStreamInput{StreamName: aws.String("cam")})
	if err != nil || !strings.HasPrefix(aws.ToString(out.StreamARN), "arn:aws:kinesisvideo:eu-west-1:") {
		t.Fatalf("%v %v", out, err)
	}
}

// Timecodes are read in the Segment's TimecodeScale, not assumed to be ms.
func TestTimecodeScaleHonoured(t *testing.T) {
	s := startServer(t)
	createStream(t, s, "cam", 1)
	const scale = 100_000 // 0.1 ms ticks
	b := &mkvBuilder{b: mkv.AppendHeader(nil, mkv.Header{TimecodeScale: scale, Tracks: []mkv.Track{testTrack}})}
	b.raw(mkv.AppendClusterStartUnknown(nil, 17_000_000_000_000)) // 1,700,000,000,000.0 ms
	for i := 0; i < 5; i++ {
		b.raw(mkv.AppendSimpleBlock(nil, 1, int16(i*400), i == 0, make([]byte, 10))) // 40 ms apart
	}
	res := putMedia(t, s, absolute("cam"), b.eofr().reader())
	if res.count("PERSISTED") != 1 || res.acks[0].FragmentTimecode != 17_000_000_000_000 {
		t.Fatalf("acks %+v (FragmentTimecode must be the Cluster Timecode as sent)", res.acks)
	}
	lf, err := s.archived().ListFragments(ctxT(t), &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("cam")})
	if err != nil || len(lf.Fragments) != 1 {
		t.Fatal(err)
	}
	f := lf.Fragments[0]
	if f.ProducerTimestamp.UnixMilli() != 1_700_000_000_000 || f.FragmentLengthInMilliseconds != 200 {
		t.Fatalf("producer time %d, length %d ms; want 1700000000000 and 200", f.ProducerTimestamp.UnixMilli(), f.FragmentLengthInMilliseconds)
	}
}

// A disk that refuses writes gives ERROR 5001 (ARCHIVAL_ERROR), keeps what was
// persisted, and the server goes on once the disk is back.
func TestStorageFailureAck(t *testing.T) {
	mediatest.NeedTool(t, "chattr")
	s := startServer(t, func(c *app.Config) { c.SegmentBytes = 1 }) // every batch starts a new segment file
	createStream(t, s, "cam", 1)
	res := putMedia(t, s, absolute("cam"), (&mkvBuilder{}).header().cluster(1_700_000_000_000, 3, 10).eofr().reader())
	if res.count("PERSISTED") != 1 {
		t.Fatalf("first fragment: %+v", res.acks)
	}
	shards, _ := filepath.Glob(filepath.Join(s.dir, "media", "*"))
	for _, d := range shards {
		if out, err := exec.Command("chattr", "+i", d).CombinedOutput(); err != nil {
			t.Fatalf("chattr +i %s: %v %s", d, err, out)
		}
		t.Cleanup(func() { exec.Command("chattr", "-i", d).Run() })
	}
	res = putMedia(t, s, absolute("cam"), (&mkvBuilder{}).header().cluster(1_700_000_001_000, 3, 10).eofr().reader())
	if res.errorID() != putmedia.ErrArchival || res.count("PERSISTED") != 0 {
		t.Fatalf("with the disk refusing writes: %+v", res.acks)
	}
	for _, d := range shards {
		exec.Command("chattr", "-i", d).Run()
	}
	time.Sleep(10 * time.Millisecond)
	res = putMedia(t, s, absolute("cam"), (&mkvBuilder{}).header().cluster(1_700_000_002_000, 3, 10).eofr().reader())
	if res.count("PERSISTED") != 1 {
		t.Fatalf("after the disk came back: %d %s %s %+v", res.status, res.errType, res.message, res.acks)
	}
	if n := listCount(t, s, "cam"); n != 2 {
		t.Fatalf("%d fragments archived, want 2", n)
	}
}
