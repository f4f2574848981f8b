// Package outbox runs the consumers of the archive's outbox: the durable
// list of work that a PERSISTED fragment's trigger tags ask for
// (archive/outbox.go). A Worker owns the machinery every consumer needs and
// none should write twice: reading its kind's rows from the start (rows
// left pending by a crash) and then whenever the archive signals new ones,
// one lane per stream so that a stream's rows are handled one at a time and
// in fragment order while streams do not wait for each other, a bound on
// attempts in flight, retries with exponential backoff and jitter, DEAD
// after the last attempt, redrive, and the batched recording of outcomes.
// What an attempt does is the consumer's Handler: notify sends a message,
// images writes pictures to object storage.
//
// The contract for a Handler: it may run again for a row it already
// handled (a crash between the work and the record of it), so its work
// must be idempotent or carry a stable id; it reads the fragment's times
// and tags from the row, which outlives the fragment; it returns Skip when
// there is nothing to do (no configuration, stream deleted), never an
// error that retrying cannot cure.
//
// Several nodes sharing an index run a Worker of each kind, and the one
// holding the kind's lease (archive.RunLeased) does the work; the others
// wait for the lease. Each tenure starts from the outbox as it is, so a
// node that takes over from a dead one goes on where the rows say. Wake
// only hears this node's commits: on a shared index PollInterval (1 s) is
// how rows committed by other nodes are noticed, and a rescan every 30 s
// finds rows redriven on another node. What can happen twice when the
// lease moves: an attempt in flight on the old holder when it lost the
// lease (its context is cancelled, but the work may have been done), and
// rows it finished whose outcomes it had not recorded yet. A late outcome
// from the old holder never undoes one the new holder recorded: outcomes
// are written to PENDING rows only.
package outbox

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/metrics"
)

// Outcome is what one attempt came to.
type Outcome struct {
	// Skip, when not empty, says why there was nothing to do; the row is
	// SKIPPED.
	Skip string
	// Destination is recorded with the row (where the work went).
	Destination string
	// Err fails the attempt: the row is retried, or DEAD after the last.
	Err error
}

// Handler makes one attempt at a row. ctx carries the attempt's timeout.
type Handler func(ctx context.Context, e archive.OutboxEntry) Outcome

// Options wires a Worker.
type Options struct {
	Kind  archive.TriggerKind
	Index archive.Index
	// Wake is Archive.WatchTriggers: a signal that new outbox rows exist.
	Wake <-chan struct{}
	// PollInterval is how often the outbox is read without a Wake: the
	// safety net behind a missed signal, and on an index shared by several
	// nodes the way rows committed by other nodes are noticed. Default 5 s.
	PollInterval time.Duration
	// RescanInterval is how often the whole pending outbox of the kind is
	// read again, not only rows past the cursor: rows redriven on another
	// node (or while the local redrive queue was full) have ids below it.
	// Default 30 s.
	RescanInterval time.Duration
	// Name names the work in log lines ("notification", "image generation").
	Name   string
	Logger *slog.Logger
	// Now replaces the clock (tests). Nil: time.Now.
	Now func() time.Time

	// MaxAttempts is how many attempts a row gets before it is DEAD.
	MaxAttempts int
	// MinBackoff·2^(attempt-1), capped at MaxBackoff, with jitter, is the
	// wait after a failed attempt.
	MinBackoff, MaxBackoff time.Duration
	// AttemptTimeout bounds one attempt.
	AttemptTimeout time.Duration
	// Concurrency bounds attempts in flight across all streams.
	Concurrency int
	// Metrics counts attempts by outcome; nil: not counted.
	Metrics *metrics.Outbox
}

// Worker handles the rows of one outbox kind; see the package doc.
type Worker struct {
	o      Options
	handle Handler

	// Owned by the Run goroutine, reset each time the lease is taken.
	lanes    map[int64]*lane
	cursor   int64   // highest outbox id taken into a lane
	waiting  []*lane // idle lanes whose head is not yet due
	blocked  []*lane // lanes with a due head, waiting for a free slot
	inflight int

	results chan result
	redrive chan []archive.OutboxEntry
	updates chan record
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

// record is an outcome for recordLoop to write, or (flushed set) a request
// to write everything before it and then close flushed.
type record struct {
	u       archive.OutboxUpdate
	flushed chan struct{}
}

type result struct {
	Outcome
	l       *lane
	attempt int64 // epoch ms the attempt started
}

// Stats counts what a worker did since it started.
type Stats struct {
	Done, Failed, Dead, Skipped int64
}

// New returns a Worker; zero limits in o take working defaults.
func New(o Options, h Handler) *Worker {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.MaxAttempts = cmpOr(o.MaxAttempts, 10)
	o.Concurrency = cmpOr(o.Concurrency, 16)
	o.MinBackoff = cmpOr(o.MinBackoff, time.Second)
	o.MaxBackoff = max(cmpOr(o.MaxBackoff, 5*time.Minute), o.MinBackoff)
	o.AttemptTimeout = cmpOr(o.AttemptTimeout, time.Minute)
	o.PollInterval = cmpOr(o.PollInterval, 5*time.Second)
	o.RescanInterval = cmpOr(o.RescanInterval, 30*time.Second)
	return &Worker{
		o: o, handle: h,
		results: make(chan result, 64),
		redrive: make(chan []archive.OutboxEntry, 16),
	}
}

func cmpOr[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Stats returns a copy of the counters.
func (w *Worker) Stats() Stats {
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	return w.stats
}

// loadBatch is how many rows one read of the outbox takes.
const loadBatch = 1000

// Run works until ctx ends, on one node at a time among those sharing the
// index: it holds the kind's lease (archive.RunLeased) while it works.
// When ctx ends or the lease is lost it waits for attempts in flight and
// records their outcomes.
func (w *Worker) Run(ctx context.Context) {
	archive.RunLeased(ctx, w.o.Index, archive.OutboxLease(w.o.Kind), w.o.Logger, w.work)
}

// work is one tenure of the lease: it starts from the outbox as it is, since
// another node may have worked on it since this one last held the lease.
func (w *Worker) work(ctx context.Context) {
	w.lanes, w.cursor, w.waiting, w.blocked = map[int64]*lane{}, 0, nil, nil
	// Rows redriven while another node held the lease are read below.
	for len(w.redrive) > 0 {
		<-w.redrive
	}
	w.updates = make(chan record, 16384)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); w.recordLoop(w.updates) }()
	defer func() {
		for w.inflight > 0 {
			w.finish(<-w.results)
		}
		close(w.updates)
		wg.Wait()
	}()

	w.load(ctx)
	poll := time.NewTicker(w.o.PollInterval)
	defer poll.Stop()
	rescan := time.NewTicker(w.o.RescanInterval)
	defer rescan.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := w.dispatch(ctx)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if !next.IsZero() {
			timer.Reset(max(next.Sub(w.o.Now()), time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return
		case <-w.o.Wake:
			w.load(ctx)
		case <-poll.C:
			w.load(ctx)
		case <-rescan.C:
			w.rescan(ctx)
		case r := <-w.results:
			w.finish(r)
		case es := <-w.redrive:
			for _, e := range es {
				w.enqueue(e)
			}
		case <-timer.C:
		}
	}
}

// load takes outbox rows past the cursor into their lanes.
func (w *Worker) load(ctx context.Context) { w.loadAfter(ctx, w.cursor) }

// rescan takes every pending row not in a lane yet. Outcomes queued for
// recording are written first, so that a row this worker has finished
// cannot be read back as pending; no row finishes meanwhile, since only
// this goroutine finishes rows.
func (w *Worker) rescan(ctx context.Context) {
	flushed := make(chan struct{})
	w.updates <- record{flushed: flushed}
	<-flushed
	w.loadAfter(ctx, 0)
}

func (w *Worker) loadAfter(ctx context.Context, after int64) {
	for {
		es, err := w.o.Index.PendingOutbox(ctx, w.o.Kind, after, loadBatch)
		if err != nil {
			if ctx.Err() == nil {
				w.o.Logger.Error("reading the outbox", "work", w.o.Name, "err", err)
			}
			return
		}
		for _, e := range es {
			w.enqueue(e)
			w.cursor = max(w.cursor, e.ID)
			after = e.ID
		}
		if len(es) < loadBatch {
			return
		}
	}
}

func (w *Worker) enqueue(e archive.OutboxEntry) {
	l := w.lanes[e.StreamID]
	if l == nil {
		l = &lane{streamID: e.StreamID}
		w.lanes[e.StreamID] = l
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
		w.blocked = append(w.blocked, l)
		l.parked = true
	}
}

// dispatch starts every due head there is a slot for, and returns when
// the next waiting head falls due (zero when none waits).
func (w *Worker) dispatch(ctx context.Context) time.Time {
	if ctx.Err() != nil {
		// Stopping, maybe because the lease is lost: the next holder
		// makes the attempts.
		return time.Time{}
	}
	nowMs := w.o.Now().UnixMilli()
	// Heads whose wait is over join the queue for a slot.
	var next time.Time
	keep := w.waiting[:0]
	for _, l := range w.waiting {
		if due := l.queue[0].NextMs; due <= nowMs {
			w.blocked = append(w.blocked, l)
		} else {
			keep = append(keep, l)
			if t := time.UnixMilli(due); next.IsZero() || t.Before(next) {
				next = t
			}
		}
	}
	clear(w.waiting[len(keep):])
	w.waiting = keep
	taken := 0
	for _, l := range w.blocked {
		if w.inflight >= w.o.Concurrency {
			break
		}
		taken++
		l.parked = false
		if len(l.queue) == 0 || l.busy {
			continue
		}
		if due := l.queue[0].NextMs; due > nowMs {
			w.park(l)
			if t := time.UnixMilli(due); next.IsZero() || t.Before(next) {
				next = t
			}
			continue
		}
		l.busy = true
		w.inflight++
		e := l.queue[0]
		go func() { w.results <- w.attempt(ctx, l, e) }()
	}
	w.blocked = w.blocked[taken:]
	return next
}

func (w *Worker) park(l *lane) {
	l.parked = true
	w.waiting = append(w.waiting, l)
}

func (w *Worker) attempt(ctx context.Context, l *lane, e archive.OutboxEntry) result {
	r := result{l: l, attempt: w.o.Now().UnixMilli()}
	actx, cancel := context.WithTimeout(ctx, w.o.AttemptTimeout)
	defer cancel()
	r.Outcome = w.handle(actx, e)
	return r
}

// finish records an attempt's outcome and moves its lane on.
func (w *Worker) finish(r result) {
	l := r.l
	l.busy = false
	w.inflight--
	e := &l.queue[0]
	doneMs := w.o.Now().UnixMilli()
	u := archive.OutboxUpdate{ID: e.ID, Attempts: e.Attempts + 1, LastAttemptMs: r.attempt, Destination: r.Destination, LastError: e.LastError}
	pop := true
	w.statsMu.Lock()
	switch {
	case r.Skip != "":
		u.State, u.DoneMs, u.LastError, u.Attempts = archive.OutboxSkipped, doneMs, r.Skip, e.Attempts
		w.stats.Skipped++
		w.o.Metrics.Attempt(string(w.o.Kind), metrics.OutcomeSkipped)
	case r.Err == nil:
		u.State, u.DoneMs = archive.OutboxDelivered, doneMs
		w.stats.Done++
		w.o.Metrics.Attempt(string(w.o.Kind), metrics.OutcomeDelivered)
	default:
		w.stats.Failed++
		u.LastError = r.Err.Error()
		if u.Attempts >= w.o.MaxAttempts {
			u.State, u.DoneMs = archive.OutboxDead, doneMs
			w.stats.Dead++
			w.o.Metrics.Attempt(string(w.o.Kind), metrics.OutcomeDead)
			w.o.Logger.Warn(w.o.Name+" is dead after its last attempt", "stream_id", e.StreamID, "fragment", e.Fragment.String(),
				"attempts", u.Attempts, "err", r.Err)
		} else {
			u.State, u.NextMs = archive.OutboxPending, doneMs+w.backoff(u.Attempts).Milliseconds()
			e.Attempts, e.NextMs, e.LastError, e.LastAttemptMs = u.Attempts, u.NextMs, u.LastError, u.LastAttemptMs
			pop = false
			w.o.Metrics.Attempt(string(w.o.Kind), metrics.OutcomeRetry)
			w.o.Logger.Info(w.o.Name+" attempt failed; will retry", "stream_id", e.StreamID, "fragment", e.Fragment.String(),
				"attempt", u.Attempts, "retry_in", time.Duration(u.NextMs-doneMs)*time.Millisecond, "err", r.Err)
		}
	}
	w.statsMu.Unlock()
	w.updates <- record{u: u}
	if pop {
		l.queue[0] = archive.OutboxEntry{}
		l.queue = l.queue[1:]
	}
	if len(l.queue) == 0 {
		delete(w.lanes, l.streamID)
		return
	}
	if !l.parked {
		if pop {
			w.blocked = append(w.blocked, l)
			l.parked = true
		} else {
			w.park(l)
		}
	}
}

// backoff is the wait after the attempt-th failure: exponential, capped,
// with "equal jitter" (half fixed, half random) so that streams failing
// together do not retry in lockstep.
func (w *Worker) backoff(attempt int) time.Duration {
	d := w.o.MinBackoff
	for i := 1; i < attempt && d < w.o.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, w.o.MaxBackoff)
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// recordLoop writes outcomes to the outbox in batches, so that a busy
// worker costs one transaction per batch, not per row. An outcome lost to
// a crash only means the row is handled again.
func (w *Worker) recordLoop(updates <-chan record) {
	for r := range updates {
		var batch []archive.OutboxUpdate
		var flushed []chan struct{}
		add := func(r record) {
			if r.flushed != nil {
				flushed = append(flushed, r.flushed)
			} else {
				batch = append(batch, r.u)
			}
		}
		add(r)
	gather:
		for len(batch) < 2000 && flushed == nil {
			select {
			case r, ok := <-updates:
				if !ok {
					break gather
				}
				add(r)
			default:
				break gather
			}
		}
		w.write(batch)
		for _, f := range flushed {
			close(f)
		}
	}
}

func (w *Worker) write(batch []archive.OutboxUpdate) {
	if len(batch) == 0 {
		return
	}
	ctx := context.Background() // outcomes are written even while stopping
	for try := 0; ; try++ {
		err := w.o.Index.UpdateOutbox(ctx, batch)
		if err == nil {
			return
		}
		if try == 5 {
			w.o.Logger.Error("recording outbox outcomes failed; the rows will be handled again",
				"work", w.o.Name, "n", len(batch), "err", err)
			return
		}
		time.Sleep(time.Duration(try+1) * 200 * time.Millisecond)
	}
}

// Redrive makes dead rows of a stream (every stream when streamID is 0),
// or those with the given ids, pending again and queues them. It returns
// the entries redriven.
func (w *Worker) Redrive(ctx context.Context, streamID int64, ids []int64) ([]archive.OutboxEntry, error) {
	es, err := w.o.Index.RedriveOutbox(ctx, w.o.Kind, streamID, ids, w.o.Now().UnixMilli())
	if err != nil || len(es) == 0 {
		return es, err
	}
	select {
	case w.redrive <- es:
	default:
		// They are PENDING in the outbox: the worker holding the lease,
		// here or on another node, reads them at its next rescan.
	}
	return es, nil
}
