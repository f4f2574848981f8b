package notify

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/kinema/kinema/internal/archive"
)

// Notifier delivers the notification rows of the outbox.
type Notifier struct {
	cfg  Config
	idx  archive.Index
	wake <-chan struct{}
	log  *slog.Logger
	now  func() time.Time
	out  *senders

	// Owned by the Run goroutine.
	lanes    map[int64]*lane
	cursor   int64   // highest outbox id taken into a lane
	waiting  []*lane // idle lanes whose head is not yet due
	blocked  []*lane // lanes with a due head, waiting for a free slot
	inflight int

	results chan result
	redrive chan []archive.OutboxEntry
	updates chan archive.OutboxUpdate
	stats   Stats
	statsMu sync.Mutex
}

// lane is one stream's queue: its head is the only entry in flight.
type lane struct {
	streamID int64
	queue    []archive.OutboxEntry // by id
	busy     bool
	parked   bool // in waiting or blocked
}

type result struct {
	l       *lane
	err     error
	skip    string // non-empty: nothing to deliver, and why
	dest    string
	attempt int64 // epoch ms the attempt started
}

// Stats counts what the notifier did since it started.
type Stats struct {
	Delivered, Failed, Dead, Skipped int64
	// LatencyMs holds PERSISTED-to-delivery times of delivered messages, in
	// order, for at most the last 100,000 of them.
	LatencyMs []int64
}

// Options wires a Notifier.
type Options struct {
	Index archive.Index
	// Wake is Archive.WatchTriggers: a signal that new outbox rows exist.
	Wake   <-chan struct{}
	Logger *slog.Logger
	// Now replaces the clock (tests). Nil: time.Now.
	Now func() time.Time
}

// New returns a Notifier; cfg must have been validated.
func New(cfg Config, o Options) *Notifier {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	n := &Notifier{
		cfg: cfg, idx: o.Index, wake: o.Wake, log: o.Logger, now: o.Now,
		lanes:   map[int64]*lane{},
		results: make(chan result, 64),
		redrive: make(chan []archive.OutboxEntry, 16),
		updates: make(chan archive.OutboxUpdate, 16384),
	}
	n.out = newSenders(&n.cfg, o.Now)
	return n
}

// Config returns the configuration in force.
func (n *Notifier) Config() *Config { return &n.cfg }

// Stats returns a copy of the counters.
func (n *Notifier) Stats() Stats {
	n.statsMu.Lock()
	defer n.statsMu.Unlock()
	s := n.stats
	s.LatencyMs = slices.Clone(s.LatencyMs)
	return s
}

// loadBatch is how many rows one read of the outbox takes.
const loadBatch = 1000

// pollInterval is the safety net behind Wake: a missed signal (or a read
// that failed) delays delivery by at most this long.
const pollInterval = 5 * time.Second

// Run delivers until ctx ends, then waits for attempts in flight and
// records their outcomes.
func (n *Notifier) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); n.recordLoop() }()
	defer func() {
		for n.inflight > 0 {
			n.finish(<-n.results)
		}
		close(n.updates)
		wg.Wait()
		n.out.close()
	}()

	n.load(ctx)
	poll := time.NewTicker(pollInterval)
	defer poll.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := n.dispatch(ctx)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if !next.IsZero() {
			timer.Reset(max(next.Sub(n.now()), time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
			n.load(ctx)
		case <-poll.C:
			n.load(ctx)
		case r := <-n.results:
			n.finish(r)
		case es := <-n.redrive:
			for _, e := range es {
				n.enqueue(e)
			}
		case <-timer.C:
		}
	}
}

// load takes outbox rows past the cursor into their lanes.
func (n *Notifier) load(ctx context.Context) {
	for {
		es, err := n.idx.PendingOutbox(ctx, archive.TriggerNotification, n.cursor, loadBatch)
		if err != nil {
			if ctx.Err() == nil {
				n.log.Error("reading the notification outbox", "err", err)
			}
			return
		}
		for _, e := range es {
			n.enqueue(e)
			n.cursor = max(n.cursor, e.ID)
		}
		if len(es) < loadBatch {
			return
		}
	}
}

func (n *Notifier) enqueue(e archive.OutboxEntry) {
	l := n.lanes[e.StreamID]
	if l == nil {
		l = &lane{streamID: e.StreamID}
		n.lanes[e.StreamID] = l
	}
	// Rows arrive in id order except redriven ones, which go back in their
	// place (behind the head if the head is in flight).
	i, found := slices.BinarySearchFunc(l.queue, e.ID, func(a archive.OutboxEntry, id int64) int { return int(a.ID - id) })
	if found {
		return
	}
	if l.busy && i == 0 {
		i = 1
	}
	l.queue = slices.Insert(l.queue, i, e)
	if !l.busy && !l.parked {
		n.blocked = append(n.blocked, l)
		l.parked = true
	}
}

// dispatch starts every due head there is a slot for, and returns when
// the next waiting head falls due (zero when none waits).
func (n *Notifier) dispatch(ctx context.Context) time.Time {
	now := n.now()
	nowMs := now.UnixMilli()
	// Heads whose wait is over join the queue for a slot.
	var next time.Time
	keep := n.waiting[:0]
	for _, l := range n.waiting {
		if due := l.queue[0].NextMs; due <= nowMs {
			n.blocked = append(n.blocked, l)
		} else {
			keep = append(keep, l)
			if t := time.UnixMilli(due); next.IsZero() || t.Before(next) {
				next = t
			}
		}
	}
	clear(n.waiting[len(keep):])
	n.waiting = keep
	taken := 0
	for _, l := range n.blocked {
		if n.inflight >= n.cfg.Concurrency {
			break
		}
		taken++
		l.parked = false
		if len(l.queue) == 0 || l.busy {
			continue
		}
		if due := l.queue[0].NextMs; due > nowMs {
			n.park(l)
			if t := time.UnixMilli(due); next.IsZero() || t.Before(next) {
				next = t
			}
			continue
		}
		l.busy = true
		n.inflight++
		e := l.queue[0]
		go func() { n.results <- n.attempt(ctx, l, e) }()
	}
	n.blocked = n.blocked[taken:]
	return next
}

func (n *Notifier) park(l *lane) {
	l.parked = true
	n.waiting = append(n.waiting, l)
}

// attempt makes one delivery attempt of e.
func (n *Notifier) attempt(ctx context.Context, l *lane, e archive.OutboxEntry) result {
	r := result{l: l, attempt: n.now().UnixMilli()}
	st, err := n.idx.StreamByID(ctx, e.StreamID)
	if errors.Is(err, archive.ErrNotFound) {
		r.skip = "the stream was deleted"
		return r
	}
	if err != nil {
		r.err = err
		return r
	}
	nc, err := n.idx.NotificationConfig(ctx, e.StreamID)
	if errors.Is(err, archive.ErrNotFound) {
		r.skip = "the stream has no notification configuration"
		return r
	}
	if err != nil {
		r.err = err
		return r
	}
	if nc.Status != "ENABLED" {
		r.skip = "notifications are " + nc.Status + " for the stream"
		return r
	}
	r.dest = nc.URI
	d, err := n.cfg.Resolve(nc.URI)
	if err != nil {
		r.err = err
		return r
	}
	actx, cancel := context.WithTimeout(ctx, time.Duration(n.cfg.AttemptTimeout))
	defer cancel()
	r.err = n.out.send(actx, d, envelope{id: MessageID(e), attempt: e.Attempts + 1, body: marshal(NewMessage(st, e))})
	return r
}

// finish records an attempt's outcome and moves its lane on.
func (n *Notifier) finish(r result) {
	l := r.l
	l.busy = false
	n.inflight--
	e := &l.queue[0]
	doneMs := n.now().UnixMilli()
	u := archive.OutboxUpdate{ID: e.ID, Attempts: e.Attempts + 1, LastAttemptMs: r.attempt, Destination: r.dest, LastError: e.LastError}
	pop := true
	n.statsMu.Lock()
	switch {
	case r.skip != "":
		u.State, u.DoneMs, u.LastError, u.Attempts = archive.OutboxSkipped, doneMs, r.skip, e.Attempts
		n.stats.Skipped++
	case r.err == nil:
		u.State, u.DoneMs = archive.OutboxDelivered, doneMs
		n.stats.Delivered++
		if len(n.stats.LatencyMs) >= 100_000 {
			n.stats.LatencyMs = n.stats.LatencyMs[50_000:]
		}
		n.stats.LatencyMs = append(n.stats.LatencyMs, doneMs-e.CreatedMs)
	default:
		n.stats.Failed++
		u.LastError = r.err.Error()
		if u.Attempts >= n.cfg.MaxAttempts {
			u.State, u.DoneMs = archive.OutboxDead, doneMs
			n.stats.Dead++
			n.log.Warn("notification is dead after its last attempt", "stream_id", e.StreamID, "fragment", e.Fragment.String(),
				"attempts", u.Attempts, "err", r.err)
		} else {
			u.State, u.NextMs = archive.OutboxPending, doneMs+n.backoff(u.Attempts).Milliseconds()
			e.Attempts, e.NextMs, e.LastError, e.LastAttemptMs = u.Attempts, u.NextMs, u.LastError, u.LastAttemptMs
			pop = false
			n.log.Info("notification attempt failed; will retry", "stream_id", e.StreamID, "fragment", e.Fragment.String(),
				"attempt", u.Attempts, "retry_in", time.Duration(u.NextMs-doneMs)*time.Millisecond, "err", r.err)
		}
	}
	n.statsMu.Unlock()
	n.updates <- u
	if pop {
		l.queue[0] = archive.OutboxEntry{}
		l.queue = l.queue[1:]
	}
	if len(l.queue) == 0 {
		delete(n.lanes, l.streamID)
		return
	}
	if !l.parked {
		if pop {
			n.blocked = append(n.blocked, l)
			l.parked = true
		} else {
			n.park(l)
		}
	}
}

// backoff is the wait after the attempt-th failure: exponential, capped,
// with "equal jitter" (half fixed, half random) so that streams failing
// together do not retry in lockstep.
func (n *Notifier) backoff(attempt int) time.Duration {
	d := time.Duration(n.cfg.MinBackoff)
	for i := 1; i < attempt && d < time.Duration(n.cfg.MaxBackoff); i++ {
		d *= 2
	}
	d = min(d, time.Duration(n.cfg.MaxBackoff))
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// recordLoop writes outcomes to the outbox in batches, so that a busy
// notifier costs one transaction per batch, not per message. An outcome
// lost to a crash only means the message is sent again.
func (n *Notifier) recordLoop() {
	ctx := context.Background() // outcomes are written even while stopping
	for u := range n.updates {
		batch := []archive.OutboxUpdate{u}
	gather:
		for len(batch) < 2000 {
			select {
			case u, ok := <-n.updates:
				if !ok {
					break gather
				}
				batch = append(batch, u)
			default:
				break gather
			}
		}
		for try := 0; ; try++ {
			err := n.idx.UpdateOutbox(ctx, batch)
			if err == nil {
				break
			}
			if try == 5 {
				n.log.Error("recording notification outcomes failed; they will be sent again after a restart", "n", len(batch), "err", err)
				break
			}
			time.Sleep(time.Duration(try+1) * 200 * time.Millisecond)
		}
	}
}

// Redrive makes dead notifications of a stream (every stream when
// streamID is 0), or those with the given ids, pending again and queues
// them. It returns the entries redriven.
func (n *Notifier) Redrive(ctx context.Context, streamID int64, ids []int64) ([]archive.OutboxEntry, error) {
	es, err := n.idx.RedriveOutbox(ctx, archive.TriggerNotification, streamID, ids, n.now().UnixMilli())
	if err != nil || len(es) == 0 {
		return es, err
	}
	select {
	case n.redrive <- es:
	case <-ctx.Done():
		// They are PENDING in the outbox: the next start delivers them.
		return es, nil
	}
	return es, nil
}

// Check validates a Uri for UpdateNotificationConfiguration.
func (n *Notifier) Check(uri string) (Destination, error) { return n.cfg.Resolve(uri) }

// Probe tries to reach a destination's host once, so that a typo in a
// host name shows in the log when the configuration is set rather than at
// the first tagged fragment. It never rejects the configuration: a
// receiver may well be down for now (docs/notifications.md).
func (n *Notifier) Probe(ctx context.Context, d Destination, streamName string) {
	addr := d.Addr
	if d.Transport == Webhook {
		port := d.URL.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[d.URL.Scheme]
		}
		addr = net.JoinHostPort(d.URL.Hostname(), port)
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
		defer cancel()
		if err := dialOnce(ctx, addr); err != nil {
			n.log.Warn("notification destination is not reachable now; messages will be retried", "stream", streamName,
				"uri", d.URI, "addr", addr, "err", err)
		}
	}()
}

func dialOnce(ctx context.Context, addr string) error {
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}
