package archive

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Background jobs (the janitor, each outbox consumer) must run on one node
// at a time when several nodes share an index. Each job holds a lease
// named after it while it works: the index hands a lease to one holder at
// a time, and tells the holder when it is gone so that the work stops.
// The embedded index is one node's, so its leases are only exclusive
// within the process; on PostgreSQL a lease is a session advisory lock
// (pgindex), which the server releases the moment the holder's connection
// dies. See docs/design/scale-out.md.

// Lease is a job's right to run, held until Release or until it is lost.
type Lease interface {
	// Lost is closed when the lease has ended: released, or lost with the
	// holder's session. The holder must stop the work then; another node
	// may already be taking it over.
	Lost() <-chan struct{}
	// Release gives the lease up. It is safe to call more than once and
	// after the lease was lost.
	Release()
}

// Lease names, one per job kind.
const (
	LeaseJanitor = "janitor"
)

// OutboxLease names the lease of an outbox kind's consumer.
func OutboxLease(kind TriggerKind) string { return "outbox/" + string(kind) }

// leaseRetry is how often a job that does not hold its lease asks again:
// a dead holder's job moves on within about this long after the index
// has released the lease.
const leaseRetry = time.Second

// RunLeased runs work whenever this node holds the lease called name, until
// ctx ends: it asks for the lease every second, runs work with a context
// that ends when the lease is lost (or ctx ends), releases the lease when
// work returns, and asks again. work must return soon after its context
// ends, so that it never outlives the lease by much.
func RunLeased(ctx context.Context, idx Index, name string, log *slog.Logger, work func(context.Context)) {
	retry := time.NewTicker(leaseRetry)
	defer retry.Stop()
	failing := false // log the first failure of a series, not one a second
	for ctx.Err() == nil {
		l, err := idx.TryLease(ctx, name)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			log.Warn("asking for a lease failed; will retry every second", "lease", name, "err", err)
			failing = true
		case err == nil && failing:
			log.Info("asking for a lease works again", "lease", name)
			failing = false
		}
		if l != nil {
			log.Info("holding the lease: this node runs the job", "lease", name)
			runHolding(ctx, l, work)
			if ctx.Err() == nil {
				log.Warn("lost the lease: the job stopped on this node", "lease", name)
			}
		}
		select {
		case <-ctx.Done():
		case <-retry.C:
		}
	}
}

func runHolding(ctx context.Context, l Lease, work func(context.Context)) {
	defer l.Release()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-l.Lost():
			cancel()
		case <-wctx.Done():
		}
	}()
	work(wctx)
}

// HeldLease is the Lease index implementations hand out: end is called
// once, on Release or Lose, whichever comes first.
type HeldLease struct {
	lost chan struct{}
	once sync.Once
	end  func()
}

// NewHeldLease returns a held lease; end (may be nil) is the index's
// bookkeeping when it ends.
func NewHeldLease(end func()) *HeldLease {
	return &HeldLease{lost: make(chan struct{}), end: end}
}

// Lost implements Lease.
func (l *HeldLease) Lost() <-chan struct{} { return l.lost }

// Release implements Lease.
func (l *HeldLease) Release() { l.Lose() }

// Lose ends the lease: the index calls it when the session behind the
// lease is gone.
func (l *HeldLease) Lose() {
	l.once.Do(func() {
		if l.end != nil {
			l.end()
		}
		close(l.lost)
	})
}

// LocalLeases is a set of leases exclusive within one process: all the
// embedded index needs, since it is one node's.
type LocalLeases struct {
	mu   sync.Mutex
	held map[string]*HeldLease
}

// TryLease returns a lease on name, or nil when it is held.
func (s *LocalLeases) TryLease(name string) *HeldLease {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held[name] != nil {
		return nil
	}
	if s.held == nil {
		s.held = map[string]*HeldLease{}
	}
	var l *HeldLease
	l = NewHeldLease(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.held[name] == l {
			delete(s.held, name)
		}
	})
	s.held[name] = l
	return l
}

// LoseAll ends every lease held (the index is closing, or the session
// behind them is gone).
func (s *LocalLeases) LoseAll() {
	s.mu.Lock()
	ls := make([]*HeldLease, 0, len(s.held))
	for _, l := range s.held {
		ls = append(ls, l)
	}
	s.mu.Unlock()
	for _, l := range ls {
		l.Lose()
	}
}
