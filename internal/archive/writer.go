package archive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kinema/kinema/internal/metrics"
	"github.com/kinema/kinema/internal/stream"
)

// Options tunes an Archive.
type Options struct {
	// SegmentBytes is the size at which the active segment is sealed and a new
	// one started. Default 256 MiB.
	SegmentBytes int64
	// MaxBatchBytes caps how much one group commit writes. Default 64 MiB.
	MaxBatchBytes int64
	Logger        *slog.Logger
	// Node is this node's id where several share the index and media: the
	// segments it writes are recorded as its own (Index.NewSegment), and
	// recovery touches only those. "" for a node alone.
	Node string
	// OnPersisted, if set, is told of every batch once it is durable (the
	// fan-out to other nodes' live readers). It runs on the commit path:
	// it must not block, and must not keep or change the slice.
	OnPersisted func([]stream.Fragment)
	// Metrics counts group commits; nil: not counted.
	Metrics *metrics.Archive
}

// Archive is the durable fragment store: the group-committing write path in
// front of a Media store and an Index, and the reads that go with it.
type Archive struct {
	Index Index
	Media Media
	Live  *Hub
	log   *slog.Logger
	opt   Options

	queue   chan *persistReq
	commits chan *batch

	mu       sync.Mutex
	active   int64         // segment new batches go to
	end      int64         // bytes appended to the active segment
	inflight map[int64]int // segments with appended, uncommitted batches
	nextNum  stream.FragmentNumber
	numLimit stream.FragmentNumber // first number not yet reserved

	watchMu  sync.Mutex
	watchers []chan struct{} // told when a commit wrote outbox rows
}

type persistReq struct {
	frag *stream.Fragment
	data []byte
	done chan error
}

type batch struct {
	seg   int64
	end   int64
	reqs  []*persistReq
	err   error
	start time.Time // when the batch was gathered
	size  int64     // its bytes
}

// Open recovers the store after whatever ended the last run and starts a
// fresh segment. Run must be called for Persist to make progress.
func Open(ctx context.Context, idx Index, media Media, opt Options) (*Archive, error) {
	if opt.SegmentBytes <= 0 {
		opt.SegmentBytes = 256 << 20
	}
	if opt.MaxBatchBytes <= 0 {
		opt.MaxBatchBytes = 64 << 20
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Archive{
		Index: idx, Media: media, Live: NewHub(), log: opt.Logger, opt: opt,
		queue: make(chan *persistReq, 4096), commits: make(chan *batch, 2),
		inflight: map[int64]int{},
	}
	if err := a.recover(ctx); err != nil {
		return nil, fmt.Errorf("archive recovery: %w", err)
	}
	seg, err := idx.NewSegment(ctx)
	if err != nil {
		return nil, err
	}
	a.active = seg
	return a, nil
}

// recover drops segments the index never registered and cuts the
// unacknowledged tail off this node's segments that were being written.
// Other nodes' segments are theirs to recover: they may be writing them.
func (a *Archive) recover(ctx context.Context) error {
	// The media first: a segment is registered before its first byte is
	// written, so whatever the media hold is in the index read after,
	// even if another node created it in between.
	files, err := a.Media.List(ctx)
	if err != nil {
		return err
	}
	segs, err := a.Index.Segments(ctx)
	if err != nil {
		return err
	}
	known := map[int64]SegmentInfo{}
	var own []SegmentInfo
	for _, s := range segs {
		known[s.ID] = s
		if s.Node == a.opt.Node {
			own = append(own, s)
		}
	}
	present := map[int64]bool{}
	for _, id := range files {
		present[id] = true
		if _, ok := known[id]; !ok {
			a.log.Info("removing unreferenced segment", "segment", id)
			if err := a.Media.Remove(ctx, id); err != nil {
				return err
			}
		}
	}
	// Only the newest two segments can have a tail past their committed end:
	// batches go to the newest, and one batch may still have been in flight to
	// the one before when it was sealed.
	for i := max(0, len(own)-2); i < len(own); i++ {
		s := own[i]
		if !present[s.ID] {
			if s.LiveFragments > 0 {
				return fmt.Errorf("segment %d holds %d fragments but its file is missing", s.ID, s.LiveFragments)
			}
			continue
		}
		if err := a.Media.Truncate(ctx, s.ID, s.CommittedBytes); err != nil {
			return err
		}
	}
	return nil
}

// Run drives the write path until ctx ends.
func (a *Archive) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.commitLoop(ctx)
	}()
	a.appendLoop(ctx)
	close(a.commits)
	wg.Wait()
}

// FreshNumbers makes the numbers handed out from now on higher than any
// number any node has handed out so far, by reserving a new block. A node
// that takes over a stream from another calls it, so that the stream's
// fragment numbers keep growing (readers follow streams by number) even
// though each node numbers from a block of its own.
func (a *Archive) FreshNumbers(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.reserveNumbers(ctx)
}

// reserveNumbers takes a new block of numbers; the caller holds a.mu.
func (a *Archive) reserveNumbers(ctx context.Context) error {
	const block = 10000
	first, err := a.Index.ReserveFragmentNumbers(ctx, block)
	if err != nil {
		return err
	}
	a.nextNum, a.numLimit = first, first+block
	return nil
}

// NextFragmentNumber hands out the next fragment number.
func (a *Archive) NextFragmentNumber(ctx context.Context) (stream.FragmentNumber, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.nextNum >= a.numLimit {
		if err := a.reserveNumbers(ctx); err != nil {
			return 0, err
		}
	}
	n := a.nextNum
	a.nextNum++
	return n, nil
}

// ErrClosed is returned by Persist once the archive has stopped.
var ErrClosed = errors.New("archive is shut down")

// Persist stores the fragment's bytes and index row and returns once both
// are durable. It fills in f.Location and f.SizeBytes.
func (a *Archive) Persist(ctx context.Context, f *stream.Fragment, data []byte) error {
	done, err := a.PersistAsync(ctx, f, data)
	if err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		// The write may still land; the caller just stops waiting for it.
		return ctx.Err()
	}
}

// PersistAsync queues the fragment for the next group commit and returns a
// channel that yields the outcome once. Fragments queued in order are made
// durable in that order. f must not be touched until the outcome arrives.
func (a *Archive) PersistAsync(ctx context.Context, f *stream.Fragment, data []byte) (<-chan error, error) {
	req := &persistReq{frag: f, data: data, done: make(chan error, 1)}
	select {
	case a.queue <- req:
		return req.done, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// appendLoop gathers whatever is queued into one batch, appends and syncs it
// in one go, and hands it to commitLoop; while the index commits one batch the
// next one is already being written.
func (a *Archive) appendLoop(ctx context.Context) {
	for {
		var first *persistReq
		select {
		case first = <-a.queue:
		case <-ctx.Done():
			a.failQueued()
			return
		}
		reqs := []*persistReq{first}
		size := int64(len(first.data))
	gather:
		for size < a.opt.MaxBatchBytes {
			select {
			case r := <-a.queue:
				reqs = append(reqs, r)
				size += int64(len(r.data))
			default:
				break gather
			}
		}
		start := time.Now()
		b := a.appendBatch(ctx, reqs)
		b.start, b.size = start, size
		a.commits <- b
	}
}

func (a *Archive) appendBatch(ctx context.Context, reqs []*persistReq) *batch {
	a.mu.Lock()
	if a.end >= a.opt.SegmentBytes {
		a.mu.Unlock()
		if err := a.rotate(ctx); err != nil {
			return &batch{reqs: reqs, err: err}
		}
		a.mu.Lock()
	}
	seg := a.active
	a.inflight[seg]++
	a.mu.Unlock()

	recs := make([]Record, len(reqs))
	for i, r := range reqs {
		recs[i] = Record{StreamID: r.frag.StreamID, Number: r.frag.Number, Data: r.data}
	}
	locs, end, err := a.Media.Append(ctx, seg, recs)
	if err != nil {
		a.log.Error("segment append failed; starting a new segment", "segment", seg, "err", err)
		a.mu.Lock()
		a.end = a.opt.SegmentBytes // force a rotation before the next batch
		a.mu.Unlock()
		return &batch{seg: seg, reqs: reqs, err: err}
	}
	for i, r := range reqs {
		r.frag.Location = locs[i]
		r.frag.SizeBytes = locs[i].Length
	}
	a.mu.Lock()
	a.end = end
	a.mu.Unlock()
	return &batch{seg: seg, end: end, reqs: reqs}
}

func (a *Archive) rotate(ctx context.Context) error {
	seg, err := a.Index.NewSegment(ctx)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.active, a.end = seg, 0
	a.mu.Unlock()
	return nil
}

func (a *Archive) commitLoop(ctx context.Context) {
	for b := range a.commits {
		err := b.err
		var frags []stream.Fragment
		if err == nil {
			frags = make([]stream.Fragment, len(b.reqs))
			for i, r := range b.reqs {
				frags[i] = *r.frag
			}
			// The index commit must not be abandoned halfway because the
			// server is stopping: the bytes are already durable.
			err = a.Index.CommitFragments(context.WithoutCancel(ctx), b.seg, b.end, frags)
			if err != nil {
				a.log.Error("index commit failed", "segment", b.seg, "fragments", len(frags), "err", err)
				if errors.Is(err, ErrNotFound) {
					a.mu.Lock()
					if a.active == b.seg {
						a.end = a.opt.SegmentBytes // the segment is gone: start a new one
					}
					a.mu.Unlock()
				}
			}
		}
		a.opt.Metrics.GroupCommit(len(b.reqs), b.size, time.Since(b.start), err)
		if b.seg != 0 {
			a.mu.Lock()
			if a.inflight[b.seg]--; a.inflight[b.seg] <= 0 {
				delete(a.inflight, b.seg)
			}
			a.mu.Unlock()
		}
		if err == nil && a.opt.OnPersisted != nil && len(frags) > 0 {
			a.opt.OnPersisted(frags)
		}
		triggered := false
		for _, r := range b.reqs {
			if err == nil {
				a.Live.Persisted(r.frag.StreamID, r.frag.Number)
				triggered = triggered || len(r.frag.Tags) > 0 && Triggers(r.frag.Tags) != nil
			}
			r.done <- err
		}
		if triggered {
			a.wakeWatchers()
		}
	}
}

func (a *Archive) failQueued() {
	for {
		select {
		case r := <-a.queue:
			r.done <- ErrClosed
		default:
			return
		}
	}
}

// foreignGrace is how long after another node started a newer segment
// one of its older segments may be dropped when empty: by then no batch
// of that node is still on its way into it (and if one were, its commit
// would fail rather than reference removed bytes: CommitFragments wants
// the segment registered).
const foreignGrace = 10 * time.Minute

// removable reports whether an empty segment may be deleted: sealed and
// with no batch on its way into the index. segs is every segment, by id.
func (a *Archive) removable(s SegmentInfo, segs []SegmentInfo) bool {
	if s.Node == a.opt.Node {
		a.mu.Lock()
		defer a.mu.Unlock()
		return s.ID < a.active && a.inflight[s.ID] == 0
	}
	for _, later := range segs {
		if later.ID > s.ID && later.Node == s.Node && time.Since(time.UnixMilli(later.CreatedMs)) > foreignGrace {
			return true
		}
	}
	return false
}

// Newest returns the stream's newest fragment, received (and maybe not yet
// durable) or persisted; ErrNotFound when it has none.
func (a *Archive) Newest(ctx context.Context, streamID int64) (*stream.Fragment, error) {
	if recent := a.Live.Recent(streamID); len(recent) > 0 {
		f := recent[len(recent)-1].Fragment
		return &f, nil
	}
	return a.Index.LatestFragment(ctx, streamID)
}

// Read returns a fragment's stored Cluster bytes.
func (a *Archive) Read(ctx context.Context, f *stream.Fragment) ([]byte, error) {
	return a.Media.ReadAt(ctx, f.Location)
}

// WatchTriggers returns a channel that receives (coalesced) whenever a
// commit has written outbox rows: the outbox's consumers read their new
// rows then instead of polling the index.
func (a *Archive) WatchTriggers() <-chan struct{} {
	c := make(chan struct{}, 1)
	a.watchMu.Lock()
	a.watchers = append(a.watchers, c)
	a.watchMu.Unlock()
	return c
}

func (a *Archive) wakeWatchers() {
	a.watchMu.Lock()
	defer a.watchMu.Unlock()
	for _, c := range a.watchers {
		select {
		case c <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
}
