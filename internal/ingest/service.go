// Package ingest turns a PutMedia request body into archived fragments and
// the acknowledgements the producer waits for. It owns the fragment rules:
// one Cluster is one fragment, an AWS_KINESISVIDEO_END_OF_FRAGMENT tag closes
// one early, tags belong to the fragment that is open when they arrive (or
// to the next one when none is), and the KVS limits on size, duration,
// tracks and metadata. It knows nothing of HTTP: the API layer hands it a
// body, a way to send one ack, and a read deadline.
package ingest

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/metrics"
)

// Limits are the per-fragment and per-connection rules PutMedia enforces.
type Limits struct {
	MaxFragmentBytes    int64         // 4001 past it; KVS: 50 MB
	MaxFragmentDuration time.Duration // 4002 past it; KVS: 20 s
	MaxTracks           int           // 4012 past it; KVS: 3
	MaxCustomTags       int           // per fragment, 4009 past it; KVS: 10
	MaxTagNameBytes     int           // 4009 past it; KVS: 128
	MaxTagValueBytes    int           // 4009 past it; KVS: 256
	IdleTimeout         time.Duration // no body bytes for this long ends the request; KVS: 30 s
	IdleAckInterval     time.Duration // an IDLE ack after this long without bytes
	// StaleAfter: a second PutMedia for a stream is refused while the first is
	// receiving, unless the first has had no bytes for this long (a producer
	// whose connection silently died must be able to reconnect).
	StaleAfter time.Duration
	// MaxResync bounds the bytes skipped looking for a Cluster when a resumed
	// session (no EBML header) starts mid-element.
	MaxResync int64
}

// DefaultLimits are KVS's published limits.
func DefaultLimits() Limits {
	return Limits{
		MaxFragmentBytes:    50 << 20,
		MaxFragmentDuration: 20 * time.Second,
		MaxTracks:           3,
		MaxCustomTags:       10,
		MaxTagNameBytes:     128,
		MaxTagValueBytes:    256,
		IdleTimeout:         30 * time.Second,
		IdleAckInterval:     5 * time.Second,
		StaleAfter:          5 * time.Second,
		MaxResync:           50 << 20,
	}
}

// Service runs PutMedia sessions against an archive.
type Service struct {
	Archive *archive.Archive
	Limits  Limits
	Log     *slog.Logger
	Now     func() time.Time
	// Claims, where several nodes share the archive, keeps a stream's
	// ingest on one node at a time. Nil: this node is alone.
	Claims Claims
	// Metrics counts sessions, fragments, bytes, PERSISTED latency and
	// errors; nil: not counted.
	Metrics *metrics.Ingest

	mu     sync.Mutex
	active map[int64]*Conn
	// claimMu orders this node's claim and release of a stream, so that a
	// connection ending never drops the claim a newer one just took.
	claimMu sync.Mutex
}

// Claims is how nodes sharing one index agree on which of them ingests a
// stream (pgindex implements it with a table of claims that last while
// their node's heartbeat does).
type Claims interface {
	// ClaimIngest makes this node the stream's ingest node unless another
	// live node is; then ok is false and ownerURL names it (when known).
	ClaimIngest(ctx context.Context, streamID int64) (ok bool, ownerURL string, err error)
	ReleaseIngest(ctx context.Context, streamID int64) error
}

// ElsewhereError refuses a PutMedia because another node ingests the
// stream; it is an ErrConnectionLimit.
type ElsewhereError struct{ URL string }

func (e *ElsewhereError) Error() string {
	if e.URL == "" {
		return "another node is ingesting the stream"
	}
	return "another node is ingesting the stream: " + e.URL
}

func (e *ElsewhereError) Unwrap() error { return ErrConnectionLimit }

// NewService returns a service with KVS limits.
func NewService(a *archive.Archive, log *slog.Logger) *Service {
	return &Service{Archive: a, Limits: DefaultLimits(), Log: log, Now: time.Now, active: map[int64]*Conn{}}
}

// ErrConnectionLimit means the stream already has a PutMedia connection
// receiving data.
var ErrConnectionLimit = errors.New("the stream already has an active PutMedia connection")

// Conn is a stream's claim on its single ingest connection.
type Conn struct {
	svc      *Service
	streamID int64
	lastData atomic.Int64 // unix ns of the last body bytes
	preempt  chan struct{}
	released chan struct{}
	once     sync.Once
	relOnce  sync.Once
}

// rotationWait is how long a new connection waits for the stream's current
// one to finish its body: a producer rotating its connection sends the old
// body's end first, but the new request may overtake it on the network.
const rotationWait = 2 * time.Second

// Acquire claims the stream's ingest slot, waiting up to rotationWait for a
// connection that is ending. A connection that has been silent for
// Limits.StaleAfter is pre-empted in favour of the new one. With Claims,
// the stream must also not be ingested by another live node.
func (s *Service) Acquire(ctx context.Context, streamID int64) (*Conn, error) {
	c, err := s.acquireLocal(streamID)
	if err != nil || s.Claims == nil {
		return c, err
	}
	s.claimMu.Lock()
	ok, owner, err := s.Claims.ClaimIngest(ctx, streamID)
	s.claimMu.Unlock()
	if err == nil && !ok {
		err = &ElsewhereError{URL: owner}
	}
	if err == nil {
		// The stream's last session may have been on another node, which
		// numbered from a block of its own, maybe above this node's.
		err = s.Archive.FreshNumbers(ctx)
	}
	if err != nil {
		c.Release()
		return nil, err
	}
	return c, nil
}

func (s *Service) acquireLocal(streamID int64) (*Conn, error) {
	deadline := time.NewTimer(rotationWait)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		old := s.active[streamID]
		now := s.Now().UnixNano()
		if old == nil || now-old.lastData.Load() >= int64(s.Limits.StaleAfter) {
			if old != nil {
				old.once.Do(func() { close(old.preempt) })
				delete(s.active, streamID)
			}
			c := &Conn{svc: s, streamID: streamID, preempt: make(chan struct{}), released: make(chan struct{})}
			c.lastData.Store(now)
			s.active[streamID] = c
			s.mu.Unlock()
			return c, nil
		}
		s.mu.Unlock()
		select {
		case <-old.released:
		case <-deadline.C:
			return nil, ErrConnectionLimit
		}
	}
}

// Release gives the slot back (called once the body has ended: a connection
// that only drains its last acks does not hold the slot).
func (c *Conn) Release() {
	s := c.svc
	s.mu.Lock()
	last := s.active[c.streamID] == c
	if last {
		delete(s.active, c.streamID)
	}
	s.mu.Unlock()
	c.relOnce.Do(func() { close(c.released) })
	if !last || s.Claims == nil {
		return
	}
	s.claimMu.Lock()
	defer s.claimMu.Unlock()
	s.mu.Lock()
	again := s.active[c.streamID] != nil
	s.mu.Unlock()
	if again {
		return // a newer connection holds the stream (and its claim)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Claims.ReleaseIngest(ctx, c.streamID); err != nil {
		// A claim left behind only sends the stream's producer here
		// (GetDataEndpoint), where it is taken again; it goes with the
		// node.
		s.Log.Warn("releasing the stream's ingest claim failed", "stream", c.streamID, "err", err)
	}
}
