package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	avtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// kinemaBinary builds cmd/kinema once per test run.
func kinemaBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kinema-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "kinema")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/kinema/kinema/cmd/kinema")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// process is `kinema serve` running as a child process.
type process struct {
	cmd *exec.Cmd
	url string
	log *os.File
}

func startProcess(t *testing.T, dataDir, addr string, extra ...string) *process {
	t.Helper()
	return startServe(t, addr, append([]string{"--data-dir", dataDir, "--listen", addr, "--log-level", "warn"}, extra...)...)
}

// startServe runs `kinema serve args...` and waits until it accepts
// connections on addr, where args make it listen.
func startServe(t *testing.T, addr string, args ...string) *process {
	t.Helper()
	logf, _ := os.CreateTemp(t.TempDir(), "serve-*.log")
	cmd := exec.Command(kinemaBinary(t), append([]string{"serve"}, args...)...)
	cmd.Env = append(os.Environ(), "KINEMA_ACCESS_KEY_ID="+testKey, "KINEMA_SECRET_ACCESS_KEY="+testSecret)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, url: "http://" + addr, log: logf}
	t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return p
		}
	}
	b, _ := os.ReadFile(logf.Name())
	t.Fatalf("kinema serve did not come up:\n%s", b)
	return nil
}

func (p *process) kill9() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
}

func (p *process) clients() (*kinesisvideo.Client, *kinesisvideoarchivedmedia.Client) {
	kv := kinesisvideo.NewFromConfig(sdkConfig(), func(o *kinesisvideo.Options) { o.BaseEndpoint = aws.String(p.url) })
	am := kinesisvideoarchivedmedia.NewFromConfig(sdkConfig(), func(o *kinesisvideoarchivedmedia.Options) { o.BaseEndpoint = aws.String(p.url) })
	return kv, am
}

// kill -9 while a producer streams: every fragment acknowledged PERSISTED
// before the kill is listed and readable after a restart, and ingest resumes.
func TestCrashKeepsPersistedFragments(t *testing.T) {
	dir := t.TempDir()
	addr := freePort(t)
	p := startProcess(t, dir, addr)
	kv, _ := p.clients()
	ctx := context.Background()
	if _, err := kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("cam"), DataRetentionInHours: aws.Int32(24)}); err != nil {
		t.Fatal(err)
	}

	const frameBytes = 20_000
	var mu sync.Mutex
	persisted := map[string]bool{}
	killAt := 15
	killed := make(chan struct{})
	pr, pw := io.Pipe()
	go func() {
		defer pw.Close()
		b := (&mkvBuilder{}).header()
		pw.Write(b.b)
		for i := 0; ; i++ {
			f := (&mkvBuilder{}).cluster(1_700_000_000_000+uint64(i)*200, 5, frameBytes).eofr()
			if _, err := pw.Write(f.b); err != nil {
				return
			}
			select {
			case <-killed:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		putMediaTo(t, p.url, absolute("cam"), pr, func(a ackJSON) {
			if a.EventType != "PERSISTED" {
				return
			}
			mu.Lock()
			persisted[a.FragmentNumber] = true
			n := len(persisted)
			mu.Unlock()
			if n == killAt {
				p.kill9()
				close(killed)
			}
		})
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the producer did not reach the kill point")
	}
	mu.Lock()
	acked := len(persisted)
	mu.Unlock()
	if acked < killAt {
		t.Fatalf("only %d fragments were PERSISTED before the stream ended", acked)
	}

	p = startProcess(t, dir, addr)
	_, am := p.clients()
	var listed []avtypes.Fragment
	pg := kinesisvideoarchivedmedia.NewListFragmentsPaginator(am, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("cam")})
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		listed = append(listed, page.Fragments...)
	}
	have := map[string]bool{}
	for _, f := range listed {
		have[aws.ToString(f.FragmentNumber)] = true
	}
	for n := range persisted {
		if !have[n] {
			t.Fatalf("fragment %s was acknowledged PERSISTED but is gone after kill -9", n)
		}
	}
	frames, tags := countMKV(t, fetchFragments(t, am, "cam", keys(persisted)))
	if frames != 5*len(persisted) || tags["AWS_KINESISVIDEO_ERROR_CODE"] != 0 {
		t.Fatalf("read back %d frames of %d persisted fragments (tags %v)", frames, len(persisted), tags)
	}
	t.Logf("%d fragments PERSISTED before kill -9; %d listed after restart, all readable", len(persisted), len(listed))

	// Ingest resumes.
	res := putMediaTo(t, p.url, absolute("cam"), (&mkvBuilder{}).header().cluster(1_800_000_000_000, 5, 100).eofr().reader(), nil)
	if res.count("PERSISTED") != 1 {
		t.Fatalf("after restart: %+v", res.acks)
	}
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
