package outbox

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/archive/sqlindex"
	"github.com/kinema/kinema/internal/stream"
)

func TestBackoff(t *testing.T) {
	w := New(Options{MinBackoff: time.Second, MaxBackoff: 30 * time.Second}, nil)
	for attempt, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 6: 30 * time.Second, 60: 30 * time.Second} {
		for i := 0; i < 50; i++ {
			if d := w.backoff(attempt); d < want/2 || d > want {
				t.Fatalf("attempt %d: %v, want within [%v, %v]", attempt, d, want/2, want)
			}
		}
	}
}

// commitTagged stores n fragments of s with the tags, by default tagged
// for image generation.
func commitTagged(t *testing.T, x archive.Index, s *stream.Stream, n int, tags ...stream.Tag) {
	if tags == nil {
		tags = []stream.Tag{{Name: stream.TagImageGeneration}}
	}
	t.Helper()
	ctx := context.Background()
	seg, _ := x.NewSegment(ctx)
	first, _ := x.ReserveFragmentNumbers(ctx, int64(n))
	frags := make([]stream.Fragment, n)
	for i := range frags {
		frags[i] = stream.Fragment{Number: first + stream.FragmentNumber(i), StreamID: s.ID, ServerMs: int64(1000 * (i + 1)),
			ProducerMs: int64(1000 * (i + 1)), DurationMs: 1000, SizeBytes: 1, Location: stream.Location{SegmentID: seg, Offset: int64(i), Length: 1},
			Tags: tags}
	}
	if err := x.CommitFragments(ctx, seg, int64(n), frags); err != nil {
		t.Fatal(err)
	}
}

// The worker against the real embedded index: each stream's rows are
// handled one at a time in fragment order while streams run side by side;
// a failing row is retried at the head of its lane, then DEAD; a skipped
// row is SKIPPED; outcomes are recorded; redrive brings a dead row back.
func TestWorker(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	x, err := sqlindex.Open(ctx, filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	var streams [3]*stream.Stream
	for i := range streams {
		streams[i] = &stream.Stream{Account: "000000000000", Region: "us-east-1", Name: fmt.Sprint("cam-", i), Version: "v1",
			Status: stream.StatusActive, Created: time.Now(), RetentionHours: 1}
		if err := x.CreateStream(ctx, streams[i], nil); err != nil {
			t.Fatal(err)
		}
		commitTagged(t, x, streams[i], 4)
	}
	pending, _ := x.PendingOutbox(ctx, archive.TriggerImageGeneration, 0, 100)
	if len(pending) != 12 {
		t.Fatalf("%d rows", len(pending))
	}
	failing := pending[1].ID // stream 0's second fragment: fails until redriven
	skipped := pending[5].ID // stream 1's second fragment
	var (
		mu       sync.Mutex
		seen     = map[int64][]int64{} // stream → row ids in the order attempted
		inflight = map[int64]int{}
		fixed    bool
	)
	w := New(Options{Kind: archive.TriggerImageGeneration, Index: x, Name: "test", MaxAttempts: 3,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 10 * time.Millisecond, Concurrency: 2},
		func(ctx context.Context, e archive.OutboxEntry) Outcome {
			mu.Lock()
			inflight[e.StreamID]++
			if inflight[e.StreamID] > 1 {
				t.Errorf("stream %d has two rows in flight", e.StreamID)
			}
			seen[e.StreamID] = append(seen[e.StreamID], e.ID)
			ok := fixed
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
			mu.Lock()
			inflight[e.StreamID]--
			mu.Unlock()
			switch {
			case e.ID == failing && !ok:
				return Outcome{Destination: "s3://b", Err: errors.New("bucket missing")}
			case e.ID == skipped:
				return Outcome{Skip: "nothing to do"}
			}
			return Outcome{Destination: "s3://b"}
		})
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	state := func(id int64) archive.OutboxEntry {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			e, err := x.OutboxEntry(ctx, id)
			if err == nil && e.State != archive.OutboxPending || time.Now().After(deadline) {
				return *e
			}
		}
	}
	for _, e := range pending {
		got := state(e.ID)
		want := archive.OutboxDelivered
		switch e.ID {
		case failing:
			want = archive.OutboxDead
		case skipped:
			want = archive.OutboxSkipped
		}
		if got.State != want {
			t.Fatalf("row %d: %+v, want %s", e.ID, got, want)
		}
	}
	if d := state(failing); d.Attempts != 3 || d.LastError != "bucket missing" || d.Destination != "s3://b" {
		t.Fatalf("dead row %+v", d)
	}
	if s := state(skipped); s.LastError != "nothing to do" || s.Attempts != 0 {
		t.Fatalf("skipped row %+v", s)
	}
	mu.Lock()
	// Stream 0: row 0, the failing row three times, then rows 2 and 3:
	// the lane waits for its head.
	if want := []int64{pending[0].ID, failing, failing, failing, pending[2].ID, pending[3].ID}; !slices.Equal(seen[streams[0].ID], want) {
		t.Errorf("stream 0 attempts %v, want %v", seen[streams[0].ID], want)
	}
	for _, s := range streams[1:] {
		if !slices.IsSorted(seen[s.ID]) || len(seen[s.ID]) != 4 {
			t.Errorf("stream %d attempts %v", s.ID, seen[s.ID])
		}
	}
	fixed = true
	mu.Unlock()
	if st := w.Stats(); st.Done != 10 || st.Dead != 1 || st.Skipped != 1 || st.Failed != 3 {
		t.Errorf("stats %+v", st)
	}
	r, err := w.Redrive(ctx, streams[0].ID, nil)
	if err != nil || len(r) != 1 || r[0].ID != failing {
		t.Fatalf("redrive %+v %v", r, err)
	}
	if e := state(failing); e.State != archive.OutboxDelivered || e.Attempts != 1 {
		t.Fatalf("redriven row %+v", e)
	}
	cancel()
	<-done
}

// TestRescan: a row redriven through a worker that does not hold the lease
// (another node's, or here a second worker in the process) is found by the
// holder's rescan of the pending outbox; rescans in the middle of the work
// never hand out a row again whose outcome was still on its way to the
// index.
func TestRescan(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	x, err := sqlindex.Open(ctx, filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	for i := range 3 {
		s := &stream.Stream{Account: "000000000000", Region: "us-east-1", Name: fmt.Sprint("cam-", i), Version: "v1",
			Status: stream.StatusActive, Created: time.Now(), RetentionHours: 1}
		if err := x.CreateStream(ctx, s, nil); err != nil {
			t.Fatal(err)
		}
		commitTagged(t, x, s, 40)
	}
	pending, _ := x.PendingOutbox(ctx, archive.TriggerImageGeneration, 0, 1000)
	failing := pending[17].ID
	var (
		mu      sync.Mutex
		handled = map[int64]int{}
		fixed   bool
		byOther int
	)
	handler := func(holder bool) Handler {
		return func(ctx context.Context, e archive.OutboxEntry) Outcome {
			mu.Lock()
			defer mu.Unlock()
			if !holder {
				byOther++
			}
			handled[e.ID]++
			if e.ID == failing && !fixed {
				return Outcome{Err: errors.New("refused")}
			}
			return Outcome{}
		}
	}
	o := Options{Kind: archive.TriggerImageGeneration, Index: x, MaxAttempts: 1, RescanInterval: 5 * time.Millisecond, Concurrency: 3}
	holder, other := New(o, handler(true)), New(o, handler(false))
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); holder.Run(ctx) }()
	for deadline := time.Now().Add(5 * time.Second); holder.Stats().Done == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the holder does nothing")
		}
	}
	go func() { defer wg.Done(); other.Run(ctx) }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if p, _ := x.PendingOutbox(ctx, archive.TriggerImageGeneration, 0, 1000); len(p) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("rows still pending")
		}
	}
	mu.Lock()
	for _, e := range pending {
		if handled[e.ID] != 1 {
			t.Errorf("row %d handled %d times", e.ID, handled[e.ID])
		}
	}
	fixed = true
	mu.Unlock()
	if r, err := other.Redrive(ctx, 0, []int64{failing}); err != nil || len(r) != 1 {
		t.Fatalf("redrive: %+v %v", r, err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if e, _ := x.OutboxEntry(ctx, failing); e.State == archive.OutboxDelivered {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the row redriven through the other worker was not delivered")
		}
	}
	cancel()
	wg.Wait()
	if byOther != 0 || handled[failing] != 2 {
		t.Errorf("the worker without the lease made %d attempts; the redriven row had %d", byOther, handled[failing])
	}
}
