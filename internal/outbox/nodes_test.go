package outbox

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/archive/localfs"
	"github.com/kinema/kinema/internal/archive/pgindex"
	"github.com/kinema/kinema/internal/archive/pgindex/pgtest"
	"github.com/kinema/kinema/internal/archive/sqlindex"
	"github.com/kinema/kinema/internal/stream"
)

// The background work of several nodes sharing one index: each node runs
// the janitor and a worker of each outbox kind, as app.Start does.

var bothKinds = []archive.TriggerKind{archive.TriggerNotification, archive.TriggerImageGeneration}

var bothTags = []stream.Tag{{Name: stream.TagNotification}, {Name: stream.TagImageGeneration}}

// attempt is one call of a node's handler.
type attempt struct {
	node     int
	kind     archive.TriggerKind
	streamID int64
	id       int64
	frag     stream.FragmentNumber
	at       time.Time
}

// ledger records every attempt of every node.
type ledger struct {
	t        *testing.T
	mu       sync.Mutex
	attempts []attempt
	inflight map[string]int
}

func (lg *ledger) handler(node int, kind archive.TriggerKind) Handler {
	return func(ctx context.Context, e archive.OutboxEntry) Outcome {
		key := fmt.Sprint(node, kind, e.StreamID)
		lg.mu.Lock()
		lg.inflight[key]++
		if lg.inflight[key] > 1 {
			lg.t.Errorf("node %d: stream %d has two %s rows in flight", node, e.StreamID, kind)
		}
		lg.attempts = append(lg.attempts, attempt{node, kind, e.StreamID, e.ID, e.Fragment, time.Now()})
		lg.mu.Unlock()
		defer func() {
			lg.mu.Lock()
			lg.inflight[key]--
			lg.mu.Unlock()
		}()
		select {
		case <-time.After(20 * time.Millisecond): // the work
			return Outcome{Destination: fmt.Sprint("node-", node)}
		case <-ctx.Done():
			return Outcome{Err: ctx.Err()}
		}
	}
}

func (lg *ledger) snapshot() []attempt {
	lg.mu.Lock()
	defer lg.mu.Unlock()
	return append([]attempt(nil), lg.attempts...)
}

// node is one node's background work.
type node struct {
	idx     archive.Index
	janitor *archive.Janitor
	wake    map[archive.TriggerKind]chan struct{}
	cancel  context.CancelFunc
	done    sync.WaitGroup
}

func startNode(t *testing.T, i int, idx archive.Index, mediaDir string, poll time.Duration, lg *ledger) *node {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	media, err := localfs.Open(mediaDir)
	if err != nil {
		t.Fatal(err)
	}
	a, err := archive.Open(ctx, idx, media, archive.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := &node{idx: idx, janitor: archive.NewJanitor(a, 50*time.Millisecond), wake: map[archive.TriggerKind]chan struct{}{}, cancel: cancel}
	n.done.Add(1)
	go func() { defer n.done.Done(); n.janitor.Run(ctx) }()
	for _, kind := range bothKinds {
		n.wake[kind] = make(chan struct{}, 1)
		w := New(Options{Kind: kind, Index: idx, Wake: n.wake[kind], PollInterval: poll, Name: string(kind),
			MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}, lg.handler(i, kind))
		n.done.Add(1)
		go func() { defer n.done.Done(); w.Run(ctx) }()
	}
	t.Cleanup(func() { n.cancel(); n.done.Wait(); media.Close() })
	return n
}

// commit stores n fragments of each stream with both trigger tags through
// the node, and wakes that node's workers as Archive.WatchTriggers would.
func (n *node) commit(t *testing.T, streams []*stream.Stream, count int) {
	t.Helper()
	for _, s := range streams {
		commitTagged(t, n.idx, s, count, bothTags...)
	}
	for _, c := range n.wake {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// waitDone waits until no row of either kind is pending.
func waitDone(t *testing.T, x archive.Index, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		left := 0
		for _, kind := range bothKinds {
			p, err := x.PendingOutbox(context.Background(), kind, 0, 10_000)
			if err != nil {
				t.Fatal(err)
			}
			left += len(p)
		}
		if left == 0 {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%d rows still pending after %v", left, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runNodes runs the janitor and both outbox kinds on every index handle
// (nodes sharing one database). Node 0 starts first and so takes every
// lease; rows are committed through the last node. With kill, node 0 then
// dies mid-way and the last node takes the work over.
func runNodes(t *testing.T, idxs []archive.Index, poll time.Duration, kill func()) {
	ctx := context.Background()
	lg := &ledger{t: t, inflight: map[string]int{}}
	mediaDir := filepath.Join(t.TempDir(), "media") // shared, as an S3 bucket is
	var streams []*stream.Stream
	for i := range 3 {
		s := &stream.Stream{Account: "000000000000", Region: "us-east-1", Name: fmt.Sprint("cam-", i), Version: "v1",
			Status: stream.StatusActive, Created: time.Now(), RetentionHours: 0}
		if err := idxs[0].CreateStream(ctx, s, nil); err != nil {
			t.Fatal(err)
		}
		streams = append(streams, s)
	}
	nodes := []*node{startNode(t, 0, idxs[0], mediaDir, poll, lg)}
	for deadline := time.Now().Add(5 * time.Second); nodes[0].janitor.Passes() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("node 0's janitor never ran")
		}
	}
	time.Sleep(100 * time.Millisecond) // the workers asked for their leases at once too
	for i := 1; i < len(idxs); i++ {
		nodes = append(nodes, startNode(t, i, idxs[i], mediaDir, poll, lg))
	}
	last := nodes[len(nodes)-1]

	// Rows committed through the last node are handled, once each, by the
	// node holding the work, within about the poll interval.
	last.commit(t, streams, 10)
	took := waitDone(t, idxs[0], 10*time.Second)
	t.Logf("phase 1: %d nodes, 60 rows handled %v after their commit", len(nodes), took)
	if took > poll+2*time.Second {
		t.Errorf("rows committed by another node waited %v (poll %v)", took, poll)
	}
	seen := map[int64]int{}
	for _, a := range lg.snapshot() {
		seen[a.id]++
		if a.node != 0 {
			t.Errorf("node %d made an attempt while node 0 holds the work", a.node)
		}
	}
	if len(seen) != 60 {
		t.Errorf("%d rows attempted, want 60", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("row %d handled %d times", id, n)
		}
	}
	// One janitor makes passes.
	before := passes(nodes)
	time.Sleep(400 * time.Millisecond)
	after := passes(nodes)
	for i := 1; i < len(nodes); i++ {
		if after[i] != before[i] {
			t.Errorf("node %d's janitor made passes while node 0 holds the lease", i)
		}
	}
	if after[0] == before[0] {
		t.Error("node 0's janitor stopped")
	}

	if kill != nil {
		// Rows keep coming through the last node; node 0 dies on the way.
		var killedAt time.Time
		for batch := range 10 {
			if batch == 4 {
				kill()
				killedAt = time.Now()
			}
			last.commit(t, streams, 2)
			time.Sleep(100 * time.Millisecond)
		}
		took := waitDone(t, idxs[len(idxs)-1], 15*time.Second)
		t.Logf("phase 2: every row handled %v after the last commit, %v after node 0 died", took, time.Since(killedAt))
		if d := time.Since(killedAt); d > 8*time.Second {
			t.Errorf("the surviving node needed %v to finish", d)
		}
		before := passes(nodes)
		time.Sleep(300 * time.Millisecond)
		if after := passes(nodes); after[len(nodes)-1] == before[len(nodes)-1] {
			t.Error("the surviving node's janitor makes no passes")
		}
		checkTakeover(t, lg.snapshot(), len(nodes)-1, killedAt)
	}
	checkOrder(t, lg.snapshot())
	// Every row is DELIVERED in the end: nothing was lost or given up.
	for _, kind := range bothKinds {
		es, err := idxs[len(idxs)-1].OutboxEntries(ctx, archive.OutboxQuery{Kind: kind, StartMs: 0, EndMs: 1 << 50, Limit: 10_000})
		if err != nil {
			t.Fatal(err)
		}
		want := 30
		if kill != nil {
			want += 60
		}
		if len(es) != want {
			t.Errorf("%d %s rows, want %d", len(es), kind, want)
		}
		for _, e := range es {
			if e.State != archive.OutboxDelivered {
				t.Errorf("row %d: %s", e.ID, e.State)
			}
		}
	}
}

func passes(nodes []*node) []int64 {
	out := make([]int64, len(nodes))
	for i, n := range nodes {
		out[i] = n.janitor.Passes()
	}
	return out
}

// checkOrder: each node handles a stream's rows of a kind in fragment
// order (retries repeat a row, nothing goes back further).
func checkOrder(t *testing.T, as []attempt) {
	t.Helper()
	last := map[string]stream.FragmentNumber{}
	for _, a := range as {
		key := fmt.Sprint(a.node, a.kind, a.streamID)
		if a.frag < last[key] {
			t.Errorf("node %d: %s of stream %d: fragment %d after %d", a.node, a.kind, a.streamID, a.frag, last[key])
		}
		last[key] = a.frag
	}
}

// checkTakeover: after node 0 died, the survivor handled every row node 0
// had not finished; node 0 made no attempt once it noticed; a row was
// handled twice only if node 0 had attempted it (at-least-once across a
// crash), and then at most once more.
func checkTakeover(t *testing.T, as []attempt, survivor int, killedAt time.Time) {
	t.Helper()
	by := map[int64][]attempt{}
	for _, a := range as {
		by[a.id] = append(by[a.id], a)
		if a.node == 0 && a.at.After(killedAt.Add(500*time.Millisecond)) {
			t.Errorf("node 0 attempted row %d %v after it lost its connection", a.id, a.at.Sub(killedAt))
		}
	}
	twice := 0
	for id, at := range by {
		if len(at) == 1 {
			continue
		}
		twice++
		if len(at) > 2 || at[0].node != 0 || at[1].node != survivor {
			t.Errorf("row %d attempted %+v", id, at)
		}
	}
	t.Logf("%d rows attempted, %d of them twice (in flight or not yet recorded when node 0 died)", len(by), twice)
}

// TestNodesOnPostgres: two nodes on one PostgreSQL schema. Each row is
// handled once by the node holding its kind's lease, whichever node
// committed it; when that node's connections are cut and it dies, the
// other takes the janitor and both kinds over within seconds, loses
// nothing, and keeps each stream's order.
func TestNodesOnPostgres(t *testing.T) {
	dsn := pgtest.Schema(t)
	app := fmt.Sprintf("kinema_nodes_%d", time.Now().UnixNano())
	var idxs []archive.Index
	for i := range 2 {
		x, err := pgindex.Open(context.Background(), pgtest.WithParam(dsn, "application_name", fmt.Sprint(app, "_", i)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { x.Close() })
		idxs = append(idxs, x)
	}
	runNodes(t, idxs, time.Second, func() {
		// What a crashed node looks like to PostgreSQL: its sessions end.
		pgtest.Terminate(t, app+"_0")
		// And it does not come back.
		idxs[0].Close()
	})
}

// TestNodesOnSQLite: the embedded index is one node's, which holds every
// lease; the work is as before.
func TestNodesOnSQLite(t *testing.T) {
	x, err := sqlindex.Open(context.Background(), filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	runNodes(t, []archive.Index{x}, 0, nil)
}
