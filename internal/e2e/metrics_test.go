package e2e

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	avtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kinema/kinema/internal/app"
	"github.com/kinema/kinema/internal/archive/pgindex/pgtest"
	"github.com/kinema/kinema/internal/metrics"
	"github.com/kinema/kinema/internal/putmedia"
	"github.com/kinema/kinema/internal/s3conf/s3test"
	"github.com/kinema/kinema/internal/stream"
)

// scrape is one parsed GET /kinema/metrics.
type scrape map[string]*dto.MetricFamily

func scrapeMetrics(t *testing.T, baseURL string) scrape {
	t.Helper()
	resp, err := http.Get(baseURL + metrics.Path) // unsigned, like the health endpoints
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", metrics.Path, resp.StatusCode, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing the metrics: %v", err)
	}
	return fams
}

// value is the counter or gauge of the family with exactly these labels
// (name=value pairs); for a histogram, its count. 0 when absent.
func (s scrape) value(name string, labels ...string) float64 {
	f := s[name]
	if f == nil {
		return 0
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return 0
}

// has reports whether the family has a series with these labels.
func (s scrape) has(name string, labels ...string) bool {
	f := s[name]
	if f == nil {
		return false
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
			}
			if !found {
				continue next
			}
		}
		return true
	}
	return false
}

// sum is the sum of the histogram with these labels.
func (s scrape) sum(name string) float64 {
	if f := s[name]; f != nil && len(f.Metric) > 0 && f.Metric[0].Histogram != nil {
		return f.Metric[0].Histogram.GetSampleSum()
	}
	return 0
}

// TestMetricsCountWhatHappened: a node's /kinema/metrics moves by exactly
// what was done to it: API calls by operation and outcome, PutMedia
// sessions, fragments, bytes and PERSISTED acks, group commits, an ERROR
// ack by code, an outbox attempt, a GetMedia reader; and it carries the
// Go and process collectors.
func TestMetricsCountWhatHappened(t *testing.T) {
	s := startServer(t)
	ctx := ctxT(t)
	createStream(t, s, "cam", 24)
	if _, err := s.kv().DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: aws.String("nope")}); err == nil {
		t.Fatal("DescribeStream of a missing stream succeeded")
	}

	// Four fragments, the third tagged for a notification (the stream has
	// no notification configuration: the outbox row is skipped).
	const fragments = 4
	b := (&mkvBuilder{}).header()
	for i := range fragments {
		b.cluster(1_700_000_000_000+uint64(i)*1000, 5, 2000)
		if i == 2 {
			b.event(stream.TagNotification)
		}
		b.eofr()
	}
	res := putMedia(t, s, absolute("cam"), b.reader())
	if res.count("PERSISTED") != fragments {
		t.Fatalf("acks %+v", res.acks)
	}
	// A bad body: ERROR 4006 after one good fragment.
	createStream(t, s, "bad", 24)
	bad := putMedia(t, s, absolute("bad"), (&mkvBuilder{}).header().cluster(1_700_000_000_000, 5, 100).eofr().raw([]byte{0xff, 0xff, 0, 0x12}).reader())
	if bad.errorID() != putmedia.ErrInvalidMKV {
		t.Fatalf("bad body: %+v", bad.acks)
	}
	// A GetMedia reader, which ends after GetMediaIdle.
	if code, _ := getMediaRaw(t, s, `{"StreamName":"cam","StartSelector":{"StartSelectorType":"EARLIEST"}}`); code != 200 {
		t.Fatalf("GetMedia: %d", code)
	}

	var m scrape
	// The outbox attempt and the readers' end land asynchronously.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		m = scrapeMetrics(t, s.URL)
		if m.value("kinema_outbox_attempts_total", "kind", "notification", "outcome", "skipped") == 1 &&
			m.value("kinema_getmedia_readers") == 0 || time.Now().After(deadline) {
			break
		}
	}
	bodyBytes := float64(len(b.b) + len((&mkvBuilder{}).header().cluster(1_700_000_000_000, 5, 100).eofr().raw([]byte{0xff, 0xff, 0, 0x12}).b))
	checks := []struct {
		what string
		got  float64
		want float64
	}{
		{"CreateStream OK", m.value("kinema_api_requests_total", "operation", "CreateStream", "code", "2xx", "error", "none"), 2},
		{"DescribeStream not found", m.value("kinema_api_requests_total", "operation", "DescribeStream", "code", "4xx", "error", "ResourceNotFoundException"), 1},
		{"DescribeStream OK", m.value("kinema_api_requests_total", "operation", "DescribeStream", "code", "2xx"), 0},
		{"PutMedia requests", m.value("kinema_api_requests_total", "operation", "PutMedia", "code", "2xx", "error", "none"), 2},
		{"GetMedia requests", m.value("kinema_api_requests_total", "operation", "GetMedia", "code", "2xx", "error", "none"), 1},
		{"CreateStream latencies observed", m.value("kinema_api_request_duration_seconds", "operation", "CreateStream"), 2},
		{"PutMedia latency not observed", m.value("kinema_api_request_duration_seconds", "operation", "PutMedia"), 0},
		{"fragments ingested", m.value("kinema_putmedia_fragments_total"), fragments + 1},
		{"PERSISTED latencies", m.value("kinema_putmedia_persisted_latency_seconds"), float64(res.count("PERSISTED") + bad.count("PERSISTED"))},
		{"bytes ingested", m.value("kinema_putmedia_bytes_total"), bodyBytes},
		{"sessions open", m.value("kinema_putmedia_sessions"), 0},
		{"ERROR 4006", m.value("kinema_putmedia_errors_total", "code", "4006"), 1},
		{"fragments committed", m.sum("kinema_archive_batch_fragments"), fragments + 1},
		{"failed commits", m.value("kinema_archive_group_commits_total", "outcome", "error"), 0},
		{"notification skipped", m.value("kinema_outbox_attempts_total", "kind", "notification", "outcome", "skipped"), 1},
		{"notification rows pending", m.value("kinema_outbox_rows", "kind", "notification", "state", "pending"), 0},
		{"GetMedia readers", m.value("kinema_getmedia_readers"), 0},
		{"S3 PUTs (local media)", m.value("kinema_s3_media_puts_total"), 0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
		}
	}
	for _, kind := range []string{"notification", "image_generation"} {
		for _, state := range []string{"pending", "dead"} {
			if !m.has("kinema_outbox_rows", "kind", kind, "state", state) {
				t.Errorf("no kinema_outbox_rows{kind=%q,state=%q}", kind, state)
			}
		}
	}
	commits := m.value("kinema_archive_group_commits_total", "outcome", "ok")
	if commits < 1 || commits > fragments+1 || m.value("kinema_archive_commit_duration_seconds") != commits {
		t.Errorf("%v group commits (%v timed) for %d fragments", commits, m.value("kinema_archive_commit_duration_seconds"), fragments+1)
	}
	if m.sum("kinema_putmedia_persisted_latency_seconds") <= 0 {
		t.Error("PERSISTED latency sum is zero")
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", "kinema_outbox_rows_scrape_errors"} {
		if m[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	// No label carries a stream name.
	for name, f := range m {
		for _, mm := range f.Metric {
			for _, l := range mm.Label {
				if l.GetValue() == "cam" || l.GetValue() == "bad" {
					t.Errorf("%s has label %s=%s", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
	// The endpoint is on the main listener without a signature, and only GET.
	resp, err := http.Post(s.URL+metrics.Path, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == 200 {
		t.Error("POST /kinema/metrics answered 200")
	}
}

// TestMetricsS3Media: a node on PostgreSQL and S3 counts its PUTs (one per
// group commit, with their bytes) and one range GET per fragment it reads
// back from the store.
func TestMetricsS3Media(t *testing.T) {
	s3srv := s3test.Start(t)
	s3srv.Bucket(t, "media")
	p := startScaleNode(t, s3srv.Endpoint, pgtest.Schema(t))
	const fragments = 3
	b := (&mkvBuilder{}).header()
	for i := range fragments {
		b.cluster(1_700_000_000_000+uint64(i)*1000, 5, 3000).eofr()
	}
	res := putMediaTo(t, p.url, absolute("cam"), b.reader(), nil)
	if res.count("PERSISTED") != fragments {
		t.Fatalf("acks %+v", res.acks)
	}
	m := scrapeMetrics(t, p.url)
	puts, commits := m.value("kinema_s3_media_puts_total"), m.value("kinema_archive_group_commits_total", "outcome", "ok")
	if puts < 1 || puts != commits || m.value("kinema_s3_media_put_errors_total") != 0 {
		t.Fatalf("%v PUTs for %v group commits, %v errors", puts, commits, m.value("kinema_s3_media_put_errors_total"))
	}
	if pb, committed := m.value("kinema_s3_media_put_bytes_total"), m.sum("kinema_archive_batch_bytes"); pb <= committed {
		t.Errorf("PUT %v bytes for %v bytes of fragments (records have headers)", pb, committed)
	}

	_, am := p.clients()
	ctx := ctxT(t)
	list, err := am.ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("cam")})
	if err != nil {
		t.Fatal(err)
	}
	var numbers []string
	for _, f := range list.Fragments {
		numbers = append(numbers, aws.ToString(f.FragmentNumber))
	}
	out, err := am.GetMediaForFragmentList(ctx, &kinesisvideoarchivedmedia.GetMediaForFragmentListInput{StreamName: aws.String("cam"), Fragments: numbers})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, out.Payload)
	out.Payload.Close()
	m2 := scrapeMetrics(t, p.url)
	if got := m2.value("kinema_s3_media_get_ranges_total") - m.value("kinema_s3_media_get_ranges_total"); got != fragments {
		t.Errorf("%v range GETs to read %d fragments", got, fragments)
	}
	if got := m2.value("kinema_api_requests_total", "operation", "GetMediaForFragmentList", "code", "2xx", "error", "none"); got != 1 {
		t.Errorf("GetMediaForFragmentList counted %v times", got)
	}
	t.Logf("%d fragments: %v PUTs, %v bytes", fragments, puts, m.value("kinema_s3_media_put_bytes_total"))
}

// TestMetricsOutboxRows: notifications a receiver refuses are retried,
// then dead; the attempts count each outcome, and the dead rows are
// counted on scrape until they are redriven and delivered.
func TestMetricsOutboxRows(t *testing.T) {
	s := startServer(t, withNotify(notifyCfg(2, 20*time.Millisecond, 50*time.Millisecond)))
	hook := newHookReceiver(t)
	hook.status.Store(500)
	createStream(t, s, "cam", 1)
	setNotification(t, s.kv(), "cam", hook.url("/broken"))
	frags := []taggedFragment{{tc: 1_700_000_000_000, notify: true}, {tc: 1_700_000_001_000, notify: true}}
	putMedia(t, s, absolute("cam"), tagBody(true, frags).reader())
	waitScrape := func(what string, ok func(scrape) bool) scrape {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			m := scrapeMetrics(t, s.URL)
			if ok(m) {
				return m
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: outbox metrics %v %v", what, m["kinema_outbox_rows"], m["kinema_outbox_attempts_total"])
			}
		}
	}
	m := waitScrape("two dead rows", func(m scrape) bool {
		return m.value("kinema_outbox_rows", "kind", "notification", "state", "dead") == 2
	})
	attempts := func(m scrape, outcome string) float64 {
		return m.value("kinema_outbox_attempts_total", "kind", "notification", "outcome", outcome)
	}
	if attempts(m, "retry") != 2 || attempts(m, "dead") != 2 || attempts(m, "delivered") != 0 ||
		m.value("kinema_outbox_rows", "kind", "notification", "state", "pending") != 0 {
		t.Fatalf("after two dead rows: retry %v, dead %v, delivered %v, pending %v", attempts(m, "retry"), attempts(m, "dead"),
			attempts(m, "delivered"), m.value("kinema_outbox_rows", "kind", "notification", "state", "pending"))
	}
	hook.status.Store(0)
	if es, err := s.Notifier.Redrive(ctxT(t), 0, nil); err != nil || len(es) != 2 {
		t.Fatalf("redrive: %d rows, %v", len(es), err)
	}
	waitScrape("redriven and delivered", func(m scrape) bool {
		return attempts(m, "delivered") == 2 && m.value("kinema_outbox_rows", "kind", "notification", "state", "dead") == 0
	})
}

// TestMetricsLiveReaders: a GetMedia connection is counted while it is
// served, and playlist requests of LIVE HLS and DASH sessions are counted
// (ON_DEMAND ones are not).
func TestMetricsLiveReaders(t *testing.T) {
	s := startServer(t, func(c *app.Config) { c.GetMediaIdle = 2 * time.Second })
	createStream(t, s, "cam", 1)
	start := time.Now().Add(-time.Minute)
	hmPut(t, s, "cam", hmMedia(t, "readers", "160x120", 3, 25), start)

	done := make(chan int, 1)
	go func() {
		code, _ := getMediaRaw(t, s, `{"StreamName":"cam","StartSelector":{"StartSelectorType":"NOW"}}`)
		done <- code
	}()
	for deadline := time.Now().Add(5 * time.Second); scrapeMetrics(t, s.URL).value("kinema_getmedia_readers") != 1; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a GetMedia in progress is not counted")
		}
	}
	if code := <-done; code != 200 {
		t.Fatalf("GetMedia: %d", code)
	}
	if got := scrapeMetrics(t, s.URL).value("kinema_getmedia_readers"); got != 0 {
		t.Fatalf("%v GetMedia readers after it ended", got)
	}

	ctx := ctxT(t)
	live, err := s.archived().GetHLSStreamingSessionURL(ctx, &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{
		StreamName: aws.String("cam"), PlaybackMode: avtypes.HLSPlaybackModeLive})
	if err != nil {
		t.Fatal(err)
	}
	onDemand, err := s.archived().GetHLSStreamingSessionURL(ctx, &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{
		StreamName: aws.String("cam"), PlaybackMode: avtypes.HLSPlaybackModeOnDemand,
		HLSFragmentSelector: &avtypes.HLSFragmentSelector{FragmentSelectorType: avtypes.HLSFragmentSelectorTypeProducerTimestamp,
			TimestampRange: &avtypes.HLSTimestampRange{StartTimestamp: aws.Time(start), EndTimestamp: aws.Time(start.Add(time.Minute))}}})
	if err != nil {
		t.Fatal(err)
	}
	dash, err := s.archived().GetDASHStreamingSessionURL(ctx, &kinesisvideoarchivedmedia.GetDASHStreamingSessionURLInput{
		StreamName: aws.String("cam"), PlaybackMode: avtypes.DASHPlaybackModeLive})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		httpGet(t, hmMediaURL(aws.ToString(live.HLSStreamingSessionURL)), 200)
	}
	httpGet(t, aws.ToString(live.HLSStreamingSessionURL), 200) // the master playlist is not a reload
	httpGet(t, hmMediaURL(aws.ToString(onDemand.HLSStreamingSessionURL)), 200)
	httpGet(t, aws.ToString(dash.DASHStreamingSessionURL), 200)
	m := scrapeMetrics(t, s.URL)
	if hls, dashN := m.value("kinema_live_playlist_requests_total", "protocol", "hls"), m.value("kinema_live_playlist_requests_total", "protocol", "dash"); hls != 2 || dashN != 1 {
		t.Fatalf("live playlist requests: hls %v (want 2), dash %v (want 1)", hls, dashN)
	}
}
