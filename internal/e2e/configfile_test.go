package e2e

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kinema/kinema/internal/archive/pgindex/pgtest"
	"github.com/kinema/kinema/internal/s3conf/s3test"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kinema.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestServeConfigFile: `kinema serve --config kinema.yaml` takes its
// listen address, data dir, region and a limit from the file, and a flag
// on the command line wins over the file's listen address.
func TestServeConfigFile(t *testing.T) {
	dataDir := t.TempDir()
	fileAddr, flagAddr := freePort(t), freePort(t)
	file := writeConfig(t, `
listen: `+fileAddr+`
data-dir: `+dataDir+`
region: eu-west-1
max-streams-per-account: 1
log-level: warn
`)
	p := startServe(t, flagAddr, "--config", file, "--listen", flagAddr)
	if c, err := net.DialTimeout("tcp", fileAddr, time.Second); err == nil {
		c.Close()
		t.Fatalf("the server listens on the file's address %s too; the flag should have won", fileAddr)
	}

	ctx := ctxT(t)
	// The region is the file's: a request signed for another is refused.
	kv, _ := p.clients()
	_, err := kv.ListStreams(ctx, &kinesisvideo.ListStreamsInput{})
	apiErr(t, err, "InvalidSignatureException", 403)
	cfg := sdkConfig()
	cfg.Region = "eu-west-1"
	kv = kinesisvideo.NewFromConfig(cfg, func(o *kinesisvideo.Options) { o.BaseEndpoint = aws.String(p.url) })
	out, err := kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("cam")})
	if err != nil || !strings.HasPrefix(aws.ToString(out.StreamARN), "arn:aws:kinesisvideo:eu-west-1:") {
		t.Fatalf("CreateStream: %v %v", out, err)
	}
	// The limit is the file's: one stream per account.
	_, err = kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("cam2")})
	apiErr(t, err, "AccountStreamLimitExceededException", 400)
	// The data dir is the file's.
	if _, err := os.Stat(filepath.Join(dataDir, "index.db")); err != nil {
		t.Fatalf("no index in the file's data dir: %v", err)
	}
}

// TestServeConfigFileScaleOut: the documented PostgreSQL + S3 node, with
// the S3 secrets in the file and none in the environment, stores its
// media in the bucket.
func TestServeConfigFileScaleOut(t *testing.T) {
	s3srv := s3test.Start(t)
	s3srv.Bucket(t, "media")
	addr := freePort(t)
	file := writeConfig(t, `
listen: `+addr+`
data-dir: `+t.TempDir()+`
index: `+pgtest.Schema(t)+`
media: s3://media/fromfile
media-put-interval: 0s
server-key: `+clusterServerKey+`
s3:
  endpoint: `+s3srv.Endpoint+`
  region: us-east-1
  path-style: true
  access-key-id: `+s3test.AccessKey+`
  secret-access-key: `+s3test.SecretKey+`
`)
	for _, v := range []string{"KINEMA_S3_ACCESS_KEY_ID", "KINEMA_S3_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "KINEMA_INDEX", "KINEMA_MEDIA"} {
		t.Setenv(v, "")
	}
	p := startServe(t, addr, "--config", file)
	kv, _ := p.clients()
	ctx := ctxT(t)
	if _, err := kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("cam"), DataRetentionInHours: aws.Int32(24)}); err != nil {
		t.Fatal(err)
	}
	b := (&mkvBuilder{}).header()
	for i := range 3 {
		b.cluster(1_700_000_000_000+uint64(i)*1000, 5, 1000).eofr()
	}
	if res := putMediaTo(t, p.url, absolute("cam"), b.reader(), nil); res.count("PERSISTED") != 3 {
		t.Fatalf("acks %+v", res.acks)
	}
	objects, err := s3srv.Client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("media"), Prefix: aws.String("fromfile/seg/")})
	if err != nil {
		t.Fatal(err)
	}
	if len(objects.Contents) == 0 {
		t.Fatal("no media objects under the file's prefix")
	}
}

// TestServeConfigFileRefused: a bad file stops kinema serve with exit
// status 2 and a message naming the file, the line and the key.
func TestServeConfigFileRefused(t *testing.T) {
	for _, c := range []struct{ name, text, want string }{
		{"unknown key", "listen: 127.0.0.1:0\nretention: 24h\n", ":2: unknown option retention"},
		{"bad value", "s3:\n  path-style: maybe\n", ":2: s3.path-style: invalid value \"maybe\" for --s3-path-style"},
	} {
		t.Run(c.name, func(t *testing.T) {
			file := writeConfig(t, c.text)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := serveOnce(ctx, t, "--config", file)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(out, file+c.want) {
				t.Fatalf("exit %v, output:\n%s", err, out)
			}
		})
	}
}
