package s3media_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/archive/s3media"
	"github.com/kinema/kinema/internal/archive/segmenttest"
	"github.com/kinema/kinema/internal/s3conf/s3test"
	"github.com/kinema/kinema/internal/stream"
)

// TestConformance runs the Media contract against a real S3-compatible
// server, one bucket prefix per subtest.
func TestConformance(t *testing.T) {
	srv := s3test.Start(t)
	srv.Bucket(t, "media")
	n := 0
	segmenttest.Run(t, func(t *testing.T) segmenttest.Opener {
		n++
		prefix := fmt.Sprintf("run/%d", n)
		return func() archive.Media {
			s, err := s3media.Open(context.Background(), srv.Config, "media", prefix, s3media.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	})
}

func TestParseURL(t *testing.T) {
	for _, c := range []struct{ in, bucket, prefix string }{
		{"s3://b", "b", ""}, {"s3://b/", "b", ""}, {"s3://b/p/q/", "b", "p/q"},
	} {
		if b, p, err := s3media.ParseURL(c.in); err != nil || b != c.bucket || p != c.prefix {
			t.Errorf("%s: %q %q %v", c.in, b, p, err)
		}
	}
	for _, bad := range []string{"", "s3://", "http://b/p", "b/p"} {
		if _, _, err := s3media.ParseURL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestUnreachable: a store that does not answer fails Open, not a later write.
func TestUnreachable(t *testing.T) {
	srv := s3test.Start(t)
	if _, err := s3media.Open(context.Background(), srv.Config, "no-such-bucket", "", s3media.Options{}); err == nil {
		t.Fatal("opened a bucket that does not exist")
	}
	cfg := srv.Config
	cfg.Endpoint = "http://127.0.0.1:1"
	if _, err := s3media.Open(context.Background(), cfg, "media", "", s3media.Options{}); err == nil {
		t.Fatal("opened a store on a closed port")
	}
}

// TestPutInterval: with an interval, Appends are spaced by it.
func TestPutInterval(t *testing.T) {
	srv := s3test.Start(t)
	srv.Bucket(t, "media")
	s, err := s3media.Open(context.Background(), srv.Config, "media", "", s3media.Options{PutInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := range 4 {
		if _, _, err := s.Append(context.Background(), 1, []archive.Record{{StreamID: 1, Number: stream.FragmentNumber(i), Data: []byte("x")}}); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("4 appends took %v, want at least 3 intervals", d)
	}
}

// TestTimeout: against a slow store every call still succeeds; against one
// that stalls beyond the configured timeout, Append and ReadAt fail after
// about that long, saying why, instead of waiting for the store.
func TestTimeout(t *testing.T) {
	srv := s3test.Start(t)
	srv.Bucket(t, "media")
	proxy := srv.Proxy(t)
	cfg := proxy.Config
	cfg.Timeout = time.Second
	ctx := context.Background()
	s, err := s3media.Open(ctx, cfg, "media", "slow", s3media.Options{})
	if err != nil {
		t.Fatal(err)
	}
	proxy.SetDelay(300*time.Millisecond, 600*time.Millisecond)
	locs, _, err := s.Append(ctx, 1, []archive.Record{{StreamID: 1, Number: 1, Data: []byte("slow but there")}})
	if err != nil {
		t.Fatalf("append to a slow store: %v", err)
	}
	if b, err := s.ReadAt(ctx, locs[0]); err != nil || string(b) != "slow but there" {
		t.Fatalf("read from a slow store: %q %v", b, err)
	}

	proxy.SetDelay(time.Minute, time.Minute)
	start := time.Now()
	_, _, err = s.Append(ctx, 1, []archive.Record{{StreamID: 1, Number: 2, Data: []byte("never stored")}})
	if err == nil || !strings.Contains(err.Error(), "S3 timeout") {
		t.Fatalf("append to a stalled store: %v", err)
	}
	if _, err := s.ReadAt(ctx, locs[0]); err == nil || !strings.Contains(err.Error(), "S3 timeout") {
		t.Fatalf("read from a stalled store: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("two calls with a 1 s timeout took %v", took)
	}
}
