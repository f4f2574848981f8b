package metrics

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A nil group records nothing and does not fail: packages run without
// metrics in their own tests.
func TestNilGroups(t *testing.T) {
	var m Metrics
	m.API.Request("CreateStream", 200, "", time.Millisecond, false)
	m.Ingest.SessionStarted()
	m.Ingest.Read(100)
	m.Ingest.Fragment()
	m.Ingest.Persisted(time.Millisecond)
	m.Ingest.Error(4006)
	m.Ingest.SessionEnded()
	m.Archive.GroupCommit(3, 1000, time.Millisecond, nil)
	m.S3Media.Put(1000, time.Millisecond, nil)
	m.S3Media.GetRange(nil)
	m.Outbox.Attempt("notification", OutcomeDelivered)
	m.Outbox.WatchRows(nil, time.Second)
	m.Readers.GetMediaStarted()
	m.Readers.GetMediaEnded()
	m.Readers.LivePlaylist(true)
}

// Every metric is registered once under its documented name, and the
// Go and process collectors are there.
func TestRegistry(t *testing.T) {
	m := New()
	m.API.Request("", 0, "", time.Millisecond, false)
	m.API.Request("PutMedia", 500, "InternalFailure", time.Hour, true)
	m.Ingest.Error(5001)
	m.S3Media.Put(10, time.Millisecond, errors.New("refused"))
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range fams {
		names[f.GetName()] = true
		if !strings.HasPrefix(f.GetName(), "kinema_") && !strings.HasPrefix(f.GetName(), "go_") && !strings.HasPrefix(f.GetName(), "process_") {
			t.Errorf("metric %s outside kinema_, go_ and process_", f.GetName())
		}
	}
	for _, n := range []string{"kinema_api_requests_total", "kinema_putmedia_errors_total", "kinema_s3_media_put_errors_total", "go_goroutines", "process_resident_memory_bytes"} {
		if !names[n] {
			t.Errorf("no %s", n)
		}
	}
	if got := testutil.ToFloat64(m.API.requests.WithLabelValues("unknown", "2xx", "none")); got != 1 {
		t.Errorf("a request of no operation counted %v times as unknown", got)
	}
	if got := testutil.ToFloat64(m.API.requests.WithLabelValues("PutMedia", "5xx", "InternalFailure")); got != 1 {
		t.Errorf("PutMedia 500: %v", got)
	}
	if got := testutil.CollectAndCount(m.API.duration); got != 1 {
		t.Errorf("%d latency series; a long request must not be observed", got)
	}
	if got := testutil.ToFloat64(m.S3Media.putBytes); got != 0 {
		t.Errorf("a failed PUT counted %v bytes", got)
	}
}

// The instrumentation on the ingest hot path, against the same calls on a
// nil group (what an uninstrumented build costs) in the same run:
//
//	go test -run '^$' -bench . -benchmem ./internal/metrics/
func BenchmarkIngestHotPath(b *testing.B) {
	for _, c := range []struct {
		name string
		m    *Metrics
	}{{"without", &Metrics{}}, {"with", New()}} {
		b.Run("read/"+c.name, func(b *testing.B) {
			// Once per body read: about once per frame.
			for b.Loop() {
				c.m.Ingest.Read(8 << 10)
			}
		})
		b.Run("fragment/"+c.name, func(b *testing.B) {
			// Once per fragment: RECEIVED, PERSISTED, and its share of a
			// group commit.
			for b.Loop() {
				c.m.Ingest.Fragment()
				c.m.Ingest.Persisted(3 * time.Millisecond)
				c.m.Archive.GroupCommit(1, 500<<10, 2*time.Millisecond, nil)
			}
		})
		b.Run("request/"+c.name, func(b *testing.B) {
			// Once per API call.
			for b.Loop() {
				c.m.API.Request("DescribeStream", 0, "", time.Millisecond, false)
			}
		})
	}
}
