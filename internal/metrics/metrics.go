// Package metrics owns a node's Prometheus registry and every metric
// Kinema exports on GET /kinema/metrics (docs/deploy.md lists them). Each
// part of the server is handed the group it records (API, Ingest, Archive,
// S3Media, Outbox, Readers) and knows nothing of Prometheus; a nil group
// records nothing, so code and tests that run without metrics need no
// checks. Recording is an atomic add on a metric resolved when the group
// was made (or, for labelled ones, a lookup of a bounded label set), never
// an allocation per media block; no label carries a stream name.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Path is where a node serves its metrics: an unsigned GET, like the
// health endpoints.
const Path = "/kinema/metrics"

// Metrics is one node's registry and its groups.
type Metrics struct {
	reg     *prometheus.Registry
	API     *API
	Ingest  *Ingest
	Archive *Archive
	S3Media *S3Media
	Outbox  *Outbox
	Readers *Readers
}

// New returns a registry with every Kinema metric and the Go runtime and
// process collectors.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	f := factory{reg}
	m := &Metrics{
		reg:     reg,
		API:     newAPI(f),
		Ingest:  newIngest(f),
		Archive: newArchive(f),
		S3Media: newS3Media(f),
		Outbox:  newOutbox(f),
		Readers: newReaders(f),
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is the node's registry, for collectors of other parts.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text format (or
// OpenMetrics when the scraper asks for it).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

// factory makes metrics registered with one registry.
type factory struct{ reg prometheus.Registerer }

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	f.reg.MustRegister(g)
	return g
}

func (f factory) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
	f.reg.MustRegister(h)
	return h
}

func (f factory) histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
	f.reg.MustRegister(h)
	return h
}

// latencyBuckets span 1 ms to 30 s: API calls, commits and PUTs.
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// API counts the KVS API's operations.
type API struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newAPI(f factory) *API {
	return &API{
		requests: f.counterVec("kinema_api_requests_total",
			"API requests by operation, HTTP status class and KVS error type (none for successes).", "operation", "code", "error"),
		duration: f.histogramVec("kinema_api_request_duration_seconds",
			"Time to answer an API request, by operation; PutMedia and GetMedia, which last as long as their connection, are not observed.",
			latencyBuckets, "operation"),
	}
}

// Request records one API request. op is from the route table (a bounded
// set; "" for a path no operation has), status the HTTP status (0: 200),
// errType the KVS error type of a refusal ("" for a success). long
// requests (PutMedia, GetMedia) are counted but their duration, the
// connection's, is not observed.
func (a *API) Request(op string, status int, errType string, d time.Duration, long bool) {
	if a == nil {
		return
	}
	if op == "" {
		op = "unknown"
	}
	if errType == "" {
		errType = "none"
	}
	a.requests.WithLabelValues(op, statusClass(status), errType).Inc()
	if !long {
		a.duration.WithLabelValues(op).Observe(d.Seconds())
	}
}

func statusClass(status int) string {
	switch {
	case status == 0 || status/100 == 2:
		return "2xx"
	case status/100 == 3:
		return "3xx"
	case status/100 == 4:
		return "4xx"
	}
	return "5xx"
}

// Ingest counts PutMedia.
type Ingest struct {
	sessions  prometheus.Gauge
	fragments prometheus.Counter
	bytes     prometheus.Counter
	persisted prometheus.Histogram
	errors    *prometheus.CounterVec
}

func newIngest(f factory) *Ingest {
	return &Ingest{
		sessions:  f.gauge("kinema_putmedia_sessions", "PutMedia connections being received."),
		fragments: f.counter("kinema_putmedia_fragments_total", "Fragments received complete (acknowledged RECEIVED)."),
		bytes:     f.counter("kinema_putmedia_bytes_total", "PutMedia body bytes read."),
		persisted: f.histogram("kinema_putmedia_persisted_latency_seconds",
			"Time from a fragment's end arriving to its PERSISTED acknowledgement.",
			[]float64{.005, .01, .025, .05, .1, .2, .35, .5, .75, 1, 2, 5, 10}),
		errors: f.counterVec("kinema_putmedia_errors_total", "PutMedia sessions ended with an ERROR acknowledgement, by KVS error code.", "code"),
	}
}

// SessionStarted and SessionEnded bracket one PutMedia body.
func (i *Ingest) SessionStarted() {
	if i != nil {
		i.sessions.Inc()
	}
}

func (i *Ingest) SessionEnded() {
	if i != nil {
		i.sessions.Dec()
	}
}

// Read records body bytes read.
func (i *Ingest) Read(n int) {
	if i != nil && n > 0 {
		i.bytes.Add(float64(n))
	}
}

// Fragment records a fragment received complete.
func (i *Ingest) Fragment() {
	if i != nil {
		i.fragments.Inc()
	}
}

// Persisted records one PERSISTED acknowledgement, d after the
// fragment's end arrived.
func (i *Ingest) Persisted(d time.Duration) {
	if i != nil {
		i.persisted.Observe(d.Seconds())
	}
}

// Error records an ERROR acknowledgement with a KVS PutMedia error code
// (4000-5999: a bounded set).
func (i *Ingest) Error(code int) {
	if i != nil {
		i.errors.WithLabelValues(strconv.Itoa(code)).Inc()
	}
}

// Archive counts the archive's group commits.
type Archive struct {
	commitsOK, commitsFailed prometheus.Counter
	duration                 prometheus.Histogram
	fragments, bytes         prometheus.Histogram
}

func newArchive(f factory) *Archive {
	commits := f.counterVec("kinema_archive_group_commits_total", "Group commits of the archive (media append and index commit), by outcome.", "outcome")
	return &Archive{
		commitsOK:     commits.WithLabelValues("ok"),
		commitsFailed: commits.WithLabelValues("error"),
		duration: f.histogram("kinema_archive_commit_duration_seconds",
			"Time of one group commit: the media append (fsync or PUT) and the index transaction.", latencyBuckets),
		fragments: f.histogram("kinema_archive_batch_fragments", "Fragments per group commit.",
			prometheus.ExponentialBuckets(1, 2, 13)),
		bytes: f.histogram("kinema_archive_batch_bytes", "Bytes per group commit.",
			prometheus.ExponentialBuckets(64<<10, 2, 11)),
	}
}

// GroupCommit records one group commit of n fragments and size bytes that
// took d and ended with err.
func (a *Archive) GroupCommit(n int, size int64, d time.Duration, err error) {
	if a == nil {
		return
	}
	if err != nil {
		a.commitsFailed.Inc()
		return
	}
	a.commitsOK.Inc()
	a.duration.Observe(d.Seconds())
	a.fragments.Observe(float64(n))
	a.bytes.Observe(float64(size))
}

// S3Media counts the S3 media store's requests.
type S3Media struct {
	puts, putErrors, putBytes prometheus.Counter
	putDuration               prometheus.Histogram
	gets, getErrors           prometheus.Counter
}

func newS3Media(f factory) *S3Media {
	return &S3Media{
		puts:        f.counter("kinema_s3_media_puts_total", "Objects the S3 media store PUT (one per group commit)."),
		putErrors:   f.counter("kinema_s3_media_put_errors_total", "PUTs of the S3 media store that failed."),
		putBytes:    f.counter("kinema_s3_media_put_bytes_total", "Bytes the S3 media store PUT successfully."),
		putDuration: f.histogram("kinema_s3_media_put_duration_seconds", "Time of one PUT of the S3 media store.", latencyBuckets),
		gets:        f.counter("kinema_s3_media_get_ranges_total", "Byte-range GETs of the S3 media store (one per fragment read)."),
		getErrors:   f.counter("kinema_s3_media_get_range_errors_total", "Byte-range GETs of the S3 media store that failed."),
	}
}

// Put records one PUT of size bytes that took d.
func (s *S3Media) Put(size int, d time.Duration, err error) {
	if s == nil {
		return
	}
	s.puts.Inc()
	if err != nil {
		s.putErrors.Inc()
		return
	}
	s.putBytes.Add(float64(size))
	s.putDuration.Observe(d.Seconds())
}

// GetRange records one byte-range GET.
func (s *S3Media) GetRange(err error) {
	if s == nil {
		return
	}
	s.gets.Inc()
	if err != nil {
		s.getErrors.Inc()
	}
}

// Outbox counts the outbox consumers' attempts and, on each scrape, the
// rows waiting.
type Outbox struct {
	reg      prometheus.Registerer
	attempts *prometheus.CounterVec
}

// Attempt outcomes.
const (
	OutcomeDelivered = "delivered" // the work was done
	OutcomeSkipped   = "skipped"   // there was nothing to do
	OutcomeRetry     = "retry"     // the attempt failed; the row will be tried again
	OutcomeDead      = "dead"      // the attempt failed and was the last
)

func newOutbox(f factory) *Outbox {
	return &Outbox{
		reg: f.reg,
		attempts: f.counterVec("kinema_outbox_attempts_total",
			"Attempts at outbox rows (notifications, image generation), by kind and outcome (delivered, skipped, retry, dead).", "kind", "outcome"),
	}
}

// Attempt records one attempt at a row of kind (an archive.TriggerKind: a
// bounded set) with one of the Outcome constants.
func (o *Outbox) Attempt(kind, outcome string) {
	if o != nil {
		o.attempts.WithLabelValues(kind, outcome).Inc()
	}
}

// RowCounter counts the rows of the outbox by kind and state, at most up
// to some cap; Collect calls it on every scrape.
type RowCounter func(ctx context.Context) ([]RowCount, error)

// RowCount is the number of outbox rows of one kind in one state.
type RowCount struct {
	Kind, State string
	Rows        int
}

// WatchRows exports kinema_outbox_rows{kind,state}, counted by count on
// each scrape (for at most timeout).
func (o *Outbox) WatchRows(count RowCounter, timeout time.Duration) {
	if o == nil {
		return
	}
	o.reg.MustRegister(&rowCollector{count: count, timeout: timeout,
		desc: prometheus.NewDesc("kinema_outbox_rows",
			"Outbox rows waiting (state pending) or given up on (state dead), by kind, counted in the shared index on each scrape (so the same on every node), up to a cap.",
			[]string{"kind", "state"}, nil),
		failed: prometheus.NewDesc("kinema_outbox_rows_scrape_errors", "1 when the outbox rows could not be counted for this scrape.", nil, nil),
	})
}

type rowCollector struct {
	count        RowCounter
	timeout      time.Duration
	desc, failed *prometheus.Desc
}

func (c *rowCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc; ch <- c.failed }

func (c *rowCollector) Collect(ch chan<- prometheus.Metric) {
	// A scrape has no context of its own; the timeout keeps a slow index
	// from holding it.
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	rows, err := c.count(ctx)
	failed := 0.0
	if err != nil {
		failed = 1
	}
	ch <- prometheus.MustNewConstMetric(c.failed, prometheus.GaugeValue, failed)
	for _, r := range rows {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(r.Rows), r.Kind, r.State)
	}
}

// Readers counts live readers.
type Readers struct {
	getMedia  prometheus.Gauge
	hls, dash prometheus.Counter
}

func newReaders(f factory) *Readers {
	live := f.counterVec("kinema_live_playlist_requests_total",
		"Playlist and manifest requests of LIVE (and LIVE_REPLAY) HLS and DASH sessions: their rate is about the live players times their reload rate.", "protocol")
	return &Readers{
		getMedia: f.gauge("kinema_getmedia_readers", "GetMedia connections being served."),
		hls:      live.WithLabelValues("hls"),
		dash:     live.WithLabelValues("dash"),
	}
}

// GetMediaStarted and GetMediaEnded bracket one GetMedia response.
func (r *Readers) GetMediaStarted() {
	if r != nil {
		r.getMedia.Inc()
	}
}

func (r *Readers) GetMediaEnded() {
	if r != nil {
		r.getMedia.Dec()
	}
}

// LivePlaylist records a playlist (dash: a manifest) request of a live session.
func (r *Readers) LivePlaylist(dash bool) {
	switch {
	case r == nil:
	case dash:
		r.dash.Inc()
	default:
		r.hls.Inc()
	}
}
