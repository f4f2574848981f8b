// Package s3test runs a real S3-compatible server (versitygw, which
// scripts/setup.sh installs) on loopback for a test, so S3 code is tested
// against a server and not a mock. A test that cannot start it fails with
// a message saying how to install it. Only tests import it.
package s3test

import (
	"context"
	"go/build"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kinema/kinema/internal/s3conf"
)

// Root credentials of every server started here.
const (
	AccessKey = "kinemaS3TestKey"
	SecretKey = "kinemaS3TestSecret0000000000000000000000"
)

// Server is a running versitygw.
type Server struct {
	Endpoint string
	Config   s3conf.Config // endpoint, credentials and path-style addressing
	Client   *s3.Client
	bin, dir string
	addr     string
	mu       sync.Mutex
	cmd      *exec.Cmd
	logs     *Tail
}

// Start runs versitygw on a free loopback port until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("versitygw")
	if err != nil {
		bin = filepath.Join(build.Default.GOPATH, "bin", "versitygw")
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("versitygw is required by this test (scripts/setup.sh installs it): %v", err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	srv := &Server{Endpoint: "http://" + addr, bin: bin, dir: t.TempDir(), addr: addr, logs: &Tail{}}
	os.MkdirAll(filepath.Join(srv.dir, "root"), 0o755)
	os.MkdirAll(filepath.Join(srv.dir, "meta"), 0o755)
	t.Cleanup(srv.Stop)
	srv.Resume(t)
	srv.Config = s3conf.Config{Endpoint: srv.Endpoint, Region: "us-east-1", AccessKeyID: AccessKey, SecretAccessKey: SecretKey, PathStyle: true}
	if srv.Client, err = srv.Config.Client(); err != nil {
		t.Fatal(err)
	}
	return srv
}

// Stop kills the server (as an outage would); Resume starts it again on
// the same address and data.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
	}
}

// Resume starts the server (again) and waits until it answers.
func (s *Server) Resume(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd := exec.Command(s.bin, "--port", s.addr, "posix", "--sidecar", filepath.Join(s.dir, "meta"), filepath.Join(s.dir, "root"))
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+AccessKey, "ROOT_SECRET_KEY="+SecretKey)
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.cmd = cmd
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", s.addr); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw did not start on %s: %s", s.addr, s.logs.String())
		}
	}
}

// Bucket creates a bucket.
func (s *Server) Bucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("creating bucket %s: %v", name, err)
	}
}

// Tail keeps a process's last output for failure messages.
type Tail struct {
	mu sync.Mutex
	b  []byte
}

func (l *Tail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	if len(l.b) > 8192 {
		l.b = l.b[len(l.b)-8192:]
	}
	return len(p), nil
}

func (l *Tail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}

// Proxy is an HTTP reverse proxy in front of a Server that holds each
// request for a while before passing it on: a slow store, or with a delay
// longer than the client waits, a stalled one. Requests signed for the
// proxy's address pass (the Host header is kept).
type Proxy struct {
	Endpoint string
	Config   s3conf.Config // as the server's, at the proxy's endpoint
	mu       sync.Mutex
	min, max time.Duration
}

// Proxy starts a proxy in front of s until the test ends; it passes
// requests on at once until SetDelay says otherwise.
func (s *Server) Proxy(t testing.TB) *Proxy {
	t.Helper()
	target, err := url.Parse(s.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ErrorLog = log.New(io.Discard, "", 0) // clients that gave up are expected
	closing := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A client that gives up on a PUT is not noticed (its body is
		// unread), hence closing.
		select {
		case <-time.After(p.delay()):
		case <-r.Context().Done():
			return // the client gave up: the store never sees the request
		case <-closing:
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(closing) })
	p.Endpoint = srv.URL
	p.Config = s.Config
	p.Config.Endpoint = srv.URL
	return p
}

// SetDelay holds each request from now on for a random time in [min, max].
func (p *Proxy) SetDelay(min, max time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.min, p.max = min, max
}

func (p *Proxy) delay() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.max <= p.min {
		return p.min
	}
	return p.min + rand.N(p.max-p.min)
}
