package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
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
	"github.com/kinema/kinema/internal/mediatest"
)

const (
	testKey    = "AKIDKINEMATEST000001"
	testSecret = "kinemaTestSecretKey0000000000000000000000"
	testRegion = "us-west-2"
)

type server struct {
	*app.App
	dir string
}

// startServer runs the real server on a loopback port with a fresh data dir.
func startServer(t testing.TB, mods ...func(*app.Config)) *server {
	t.Helper()
	dir := t.TempDir()
	return startServerIn(t, dir, mods...)
}

func startServerIn(t testing.TB, dir string, mods ...func(*app.Config)) *server {
	t.Helper()
	cfg := app.Config{
		DataDir: dir, Listen: "127.0.0.1:0",
		AccessKeyID: testKey, SecretAccessKey: testSecret,
		GetMediaIdle: 500 * time.Millisecond,
	}
	for _, m := range mods {
		m(&cfg)
	}
	a, err := app.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.Shutdown(ctx)
	})
	return &server{App: a, dir: dir}
}

func sdkConfig() aws.Config {
	return aws.Config{
		Region:      testRegion,
		Credentials: credentials.NewStaticCredentialsProvider(testKey, testSecret, ""),
		HTTPClient:  &http.Client{Transport: detachedBodyTransport{http.DefaultTransport}},
	}
}

// detachedBodyTransport gives net/http a request body of its own. The SDK
// closes the body it built as soon as the response headers arrive; when
// that lands while net/http's write loop is still finishing the request,
// net/http closes the connection under the response body being read
// ("use of closed network connection", aws/aws-sdk-go-v2#2737). Any fast
// server triggers it on operations with a streamed payload
// (GetMediaForFragmentList, GetClip); the tests must not flake on it.
type detachedBodyTransport struct{ next http.RoundTripper }

func (d detachedBodyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Body != http.NoBody {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		r = r.Clone(r.Context())
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	return d.next.RoundTrip(r)
}

func (s *server) kv() *kinesisvideo.Client {
	return kinesisvideo.NewFromConfig(sdkConfig(), func(o *kinesisvideo.Options) {
		o.BaseEndpoint = aws.String(s.URL)
	})
}

func (s *server) archived() *kinesisvideoarchivedmedia.Client {
	return kinesisvideoarchivedmedia.NewFromConfig(sdkConfig(), func(o *kinesisvideoarchivedmedia.Options) {
		o.BaseEndpoint = aws.String(s.URL)
	})
}

// awsCLI runs the machine's AWS CLI against the server and returns stdout.
func (s *server) awsCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	return s.awsCLIAs(t, aws.Credentials{AccessKeyID: testKey, SecretAccessKey: testSecret}, args...)
}

// awsCLIAs runs the AWS CLI with creds (and their session token).
func (s *server) awsCLIAs(t *testing.T, creds aws.Credentials, args ...string) (string, string, error) {
	t.Helper()
	if _, err := exec.LookPath("aws"); err != nil {
		t.Fatalf("the AWS CLI is required for this test: %v", err)
	}
	cmd := exec.Command("aws", append([]string{"--endpoint-url", s.URL, "--region", testRegion, "--output", "json"}, args...)...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	env = append(env, "AWS_ACCESS_KEY_ID="+creds.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+creds.SecretAccessKey)
	if creds.SessionToken != "" {
		env = append(env, "AWS_SESSION_TOKEN="+creds.SessionToken)
	}
	cmd.Env = append(env, "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_PAGER=", "AWS_MAX_ATTEMPTS=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// ffmpeg arguments the media-making tests combine with args: a 320x240
// 25 fps test pattern, a 48 kHz tone, and encoders with a key frame every
// second and no extra ones at scene cuts (so fragments are exactly 1 s).
var (
	srcVideo = []string{"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"}
	srcAudio = []string{"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"}
	encX264  = []string{"-c:v", "libx264", "-g", "25", "-sc_threshold", "0", "-pix_fmt", "yuv420p"}
	encX265  = []string{"-c:v", "libx265", "-x265-params", "keyint=25:min-keyint=25:scenecut=0:log-level=error", "-pix_fmt", "yuv420p"}
)

// args joins argument lists into one.
func args(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// makeMedia encodes a test clip with ffmpeg and returns its path.
func makeMedia(t testing.TB, name string, args ...string) string {
	t.Helper()
	mediatest.NeedTool(t, "ffmpeg")
	out := filepath.Join(t.TempDir(), name)
	full := append([]string{"-v", "error", "-y"}, args...)
	full = append(full, out)
	cmd := exec.Command("ffmpeg", full...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", strings.Join(full, " "), err, b)
	}
	return out
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
