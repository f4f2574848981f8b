// Package limits owns Kinema's abuse limits: request rates per access key
// and per stream (token buckets), concurrent long-lived connections per
// access key and per stream, and the idle deadlines that stop a slow client
// from holding a connection (slow-loris) on any route. Callers map ErrRate
// to ClientLimitExceededException and ErrConnections to
// ConnectionLimitExceededException.
package limits

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

var (
	// ErrRate: too many requests per second.
	ErrRate = errors.New("rate limit exceeded")
	// ErrConnections: too many concurrent connections.
	ErrConnections = errors.New("connection limit exceeded")
)

// Config sets the limits. A zero rate or count means no limit.
type Config struct {
	// KeyRate and KeyBurst bound requests per second per access key.
	KeyRate  float64
	KeyBurst int
	// KeyConnections bounds concurrent long-lived requests (PutMedia,
	// GetMedia) per access key.
	KeyConnections int
	// StreamRate bounds calls per second per stream and action; MediaRate
	// replaces it for the media actions (KVS: 5 PutMedia and 5 GetMedia
	// calls per second per stream). Bursts are twice the rate, at least 10.
	StreamRate float64
	MediaRate  float64
	// StreamReaders bounds concurrent GetMedia connections per stream
	// (KVS: 3).
	StreamReaders int
	// IdleTimeout is how long a request may go without a byte read from
	// its body or a byte of its response accepted by the client.
	IdleTimeout time.Duration
}

// Defaults are generous for a self-hosted server: they stop a runaway or
// hostile client without getting in the way of a fleet, and keep KVS's
// per-stream media limits with more burst.
func Defaults() Config {
	return Config{KeyRate: 500, KeyBurst: 1000, KeyConnections: 200,
		StreamRate: 100, MediaRate: 5, StreamReaders: 3, IdleTimeout: 30 * time.Second}
}

// mediaActions are the actions MediaRate applies to.
var mediaActions = map[string]bool{
	"kinesisvideo:PutMedia": true, "kinesisvideo:GetMedia": true,
	"kinesisvideo:GetMediaForFragmentList": true, "kinesisvideo:GetClip": true,
}

// Limiter applies a Config. It is safe for concurrent use.
type Limiter struct {
	cfg Config
	now func() time.Time

	mu      sync.Mutex
	buckets map[any]*bucket
	conns   map[any]int
}

// New returns a Limiter.
func New(cfg Config) *Limiter {
	return &Limiter{cfg: cfg, now: time.Now, buckets: map[any]*bucket{}, conns: map[any]int{}}
}

// Config returns the limits in force.
func (l *Limiter) Config() Config { return l.cfg }

type bucket struct {
	tokens float64
	last   time.Time
}

type keyRate struct{ id string }
type keyConns struct{ id string }
type streamRate struct {
	id     int64
	action string
}
type streamReaders struct{ id int64 }

// maxBuckets bounds memory: past it, buckets idle long enough to be full
// again are dropped (they would grant exactly what a new one grants).
const maxBuckets = 100000

func (l *Limiter) take(k any, rate float64, burst int) bool {
	if rate <= 0 {
		return true
	}
	if burst < 1 {
		burst = 1
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[k]
	if !ok {
		if len(l.buckets) >= maxBuckets {
			l.sweep(now)
		}
		b = &bucket{tokens: float64(burst), last: now}
		l.buckets[k] = b
	}
	b.tokens += now.Sub(b.last).Seconds() * rate
	b.last = now
	if b.tokens > float64(burst) {
		b.tokens = float64(burst)
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (l *Limiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if now.Sub(b.last) > time.Minute {
			delete(l.buckets, k)
		}
	}
}

func (l *Limiter) hold(k any, max int) (func(), bool) {
	if max <= 0 {
		return func() {}, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns[k] >= max {
		return nil, false
	}
	l.conns[k]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			if l.conns[k]--; l.conns[k] <= 0 {
				delete(l.conns, k)
			}
			l.mu.Unlock()
		})
	}, true
}

// Key admits one request of an access key; long marks a long-lived one,
// which holds one of the key's connections until release is called.
func (l *Limiter) Key(accessKeyID string, long bool) (release func(), err error) {
	if !l.take(keyRate{accessKeyID}, l.cfg.KeyRate, l.cfg.KeyBurst) {
		return nil, fmt.Errorf("%w: access key %s made more than %g requests per second", ErrRate, accessKeyID, l.cfg.KeyRate)
	}
	if !long {
		return func() {}, nil
	}
	release, ok := l.hold(keyConns{accessKeyID}, l.cfg.KeyConnections)
	if !ok {
		return nil, fmt.Errorf("%w: access key %s already has %d open media connections", ErrConnections, accessKeyID, l.cfg.KeyConnections)
	}
	return release, nil
}

// Stream admits one call of action on a stream.
func (l *Limiter) Stream(streamID int64, action string) error {
	rate := l.cfg.StreamRate
	if mediaActions[action] {
		rate = l.cfg.MediaRate
	}
	burst := max(int(2*rate), 10)
	if !l.take(streamRate{streamID, action}, rate, burst) {
		return fmt.Errorf("%w: more than %g %s calls per second on this stream", ErrRate, rate, action)
	}
	return nil
}

// Sample reports whether an event of key may be recorded, at most perSecond
// a second (burst perSecond): for logs that a client could flood.
func (l *Limiter) Sample(key string, perSecond float64) bool {
	return l.take(sampleKey{key}, perSecond, int(perSecond))
}

type sampleKey struct{ k string }

// Reader admits one GetMedia connection of a stream until release.
func (l *Limiter) Reader(streamID int64) (release func(), err error) {
	release, ok := l.hold(streamReaders{streamID}, l.cfg.StreamReaders)
	if !ok {
		return nil, fmt.Errorf("%w: the stream already has %d GetMedia connections", ErrConnections, l.cfg.StreamReaders)
	}
	return release, nil
}

// IdleDeadlines wraps a handler so that every request's body reads and
// response writes must make progress within timeout: each read or write
// pushes the connection's deadline forward, so a long GetMedia or PutMedia
// lives as long as bytes flow, and a client that stops reading or sending
// (slow-loris) is cut off. Headers are bounded by the server's
// ReadHeaderTimeout.
func IdleDeadlines(next http.Handler, timeout time.Duration) http.Handler {
	if timeout <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		iw := &idleWriter{ResponseWriter: w, rc: rc, timeout: timeout}
		rc.SetWriteDeadline(time.Now().Add(timeout))
		// A read deadline only while a body is being read: net/http's
		// background read of an idle connection would take an expired
		// one as the client leaving and cancel the request.
		if r.Body != nil && r.Body != http.NoBody {
			iw.extendRead()
			r.Body = &idleBody{ReadCloser: r.Body, w: iw}
		}
		next.ServeHTTP(iw, r)
	})
}

type idleWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (w *idleWriter) extendRead() { w.rc.SetReadDeadline(time.Now().Add(w.timeout)) }

func (w *idleWriter) Write(b []byte) (int, error) {
	w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
	return w.ResponseWriter.Write(b)
}

func (w *idleWriter) Flush() {
	w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
	w.rc.Flush()
}

// Unwrap lets http.ResponseController reach the connection.
func (w *idleWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type idleBody struct {
	io.ReadCloser
	w *idleWriter
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		// The whole body is in: no deadline while the response is made
		// (a timeout error keeps it, so the connection is dropped).
		b.w.rc.SetReadDeadline(time.Time{})
	case n > 0:
		b.w.extendRead()
	}
	return n, err
}
