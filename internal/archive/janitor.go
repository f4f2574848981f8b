package archive

import (
	"context"
	"math"
	"sync/atomic"
	"time"
)

// Janitor enforces retention, purges deleted streams and gives disk space
// back. Each pass costs in proportion to what expires, not to what is kept:
// expiry walks the (stream, server time) index from its oldest end. Of the
// nodes sharing an index, the one holding the janitor's lease makes the
// passes.
type Janitor struct {
	Archive  *Archive
	Interval time.Duration // between passes; default 30 s
	// OutboxKeep is how long finished (DELIVERED, SKIPPED) outbox rows stay
	// listed as events; default 7 days.
	OutboxKeep time.Duration
	Now        func() time.Time
	kick       chan struct{}
	passes     atomic.Int64
}

// NewJanitor returns a janitor for a.
func NewJanitor(a *Archive, interval time.Duration) *Janitor {
	if interval <= 0 {
		interval = 30 * time.Second
	}
	return &Janitor{Archive: a, Interval: interval, OutboxKeep: 7 * 24 * time.Hour, Now: time.Now, kick: make(chan struct{}, 1)}
}

// Kick asks for a pass now (after a stream is deleted or its retention cut).
// On a node that does not hold the lease it does nothing: the holder's
// next pass, within Interval, does the work.
func (j *Janitor) Kick() {
	select {
	case j.kick <- struct{}{}:
	default:
	}
}

// Passes counts the passes this janitor has made.
func (j *Janitor) Passes() int64 { return j.passes.Load() }

// Run makes passes until ctx ends, while it holds the janitor's lease.
func (j *Janitor) Run(ctx context.Context) {
	RunLeased(ctx, j.Archive.Index, LeaseJanitor, j.Archive.log, j.run)
}

func (j *Janitor) run(ctx context.Context) {
	// A kick meant for the previous holder's tenure is served by this pass.
	select {
	case <-j.kick:
	default:
	}
	t := time.NewTicker(j.Interval)
	defer t.Stop()
	for {
		if err := j.Pass(ctx); err != nil && ctx.Err() == nil {
			j.Archive.log.Error("janitor pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-j.kick:
		}
	}
}

const expireBatch = 1000

// Pass runs one round of expiry, purge and reclaim. Run calls it while it
// holds the lease; called directly, it does not ask for the lease.
func (j *Janitor) Pass(ctx context.Context) error {
	j.passes.Add(1)
	idx := j.Archive.Index
	now := j.Now().UnixMilli()
	streams, err := idx.RetentionStreams(ctx)
	if err != nil {
		return err
	}
	for id, hours := range streams {
		if hours <= 0 {
			continue // nothing is archived for it
		}
		if err := j.expire(ctx, id, now-int64(hours)*3600_000); err != nil {
			return err
		}
	}
	deleted, err := idx.DeletedStreams(ctx)
	if err != nil {
		return err
	}
	for _, id := range deleted {
		j.Archive.Live.Forget(id)
		if err := j.expire(ctx, id, math.MaxInt64); err != nil {
			return err
		}
		if err := idx.PurgeStream(ctx, id); err != nil {
			return err
		}
	}
	for {
		n, err := idx.PruneOutbox(ctx, now-j.OutboxKeep.Milliseconds(), expireBatch)
		if err != nil {
			return err
		}
		if n < expireBatch {
			break
		}
	}
	return j.reclaim(ctx)
}

func (j *Janitor) expire(ctx context.Context, streamID, beforeMs int64) error {
	for {
		n, err := j.Archive.Index.ExpireFragments(ctx, streamID, beforeMs, expireBatch)
		if err != nil || n < expireBatch {
			return err
		}
	}
}

// reclaim frees the space of expired fragments, then removes segments that
// no fragment references any more.
func (j *Janitor) reclaim(ctx context.Context) error {
	a := j.Archive
	for {
		rs, err := a.Index.Reclaims(ctx, 4096)
		if err != nil || len(rs) == 0 {
			break
		}
		bySeg := map[int64][][2]int64{}
		ids := make([]int64, 0, len(rs))
		for _, r := range rs {
			bySeg[r.SegmentID] = append(bySeg[r.SegmentID], [2]int64{r.Offset, r.Length})
			ids = append(ids, r.ID)
		}
		for seg, ranges := range bySeg {
			if err := a.Media.Free(ctx, seg, ranges); err != nil {
				return err
			}
		}
		if err := a.Index.ReclaimsDone(ctx, ids); err != nil {
			return err
		}
		if len(rs) < 4096 {
			break
		}
	}
	segs, err := a.Index.Segments(ctx)
	if err != nil {
		return err
	}
	for _, s := range segs {
		if s.LiveFragments > 0 || !a.removable(s, segs) {
			continue
		}
		if err := a.Media.Remove(ctx, s.ID); err != nil {
			return err
		}
		if err := a.Index.DropSegment(ctx, s.ID); err != nil {
			return err
		}
	}
	return nil
}
