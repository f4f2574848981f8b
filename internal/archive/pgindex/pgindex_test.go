package pgindex_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/archive/indextest"
	"github.com/kinema/kinema/internal/archive/pgindex"
	"github.com/kinema/kinema/internal/archive/pgindex/pgtest"
	"github.com/kinema/kinema/internal/clipmeta"
	"github.com/kinema/kinema/internal/clipmeta/cliptest"
)

func open(t *testing.T, dsn string) *pgindex.Index {
	t.Helper()
	x, err := pgindex.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

func TestConformance(t *testing.T) {
	indextest.Run(t, func(t *testing.T) archive.Index { return open(t, pgtest.Schema(t)) })
}

func TestClipStore(t *testing.T) {
	cliptest.Run(t, func(t *testing.T) clipmeta.Store { return open(t, pgtest.Schema(t)) })
}

// TestMigrationsOnce: nodes starting together on one database apply the
// schema once, and reopening applies nothing.
func TestMigrationsOnce(t *testing.T) {
	dsn := pgtest.Schema(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x, err := pgindex.Open(context.Background(), dsn)
			if err == nil {
				x.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	files, _ := filepath.Glob("migrations/*.sql")
	x := open(t, dsn)
	if v, err := x.SchemaVersion(context.Background()); err != nil || v != len(files) || v < 2 {
		t.Fatalf("schema version %d %v, want %d", v, err, len(files))
	}
}

// TestReservationsAcrossNodes: two indexes on one database (two nodes)
// never hand out the same fragment number.
func TestReservationsAcrossNodes(t *testing.T) {
	dsn := pgtest.Schema(t)
	a, b := open(t, dsn), open(t, dsn)
	seen := map[int64]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, x := range []*pgindex.Index{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				n, err := x.ReserveFragmentNumbers(context.Background(), 10)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for i := int64(0); i < 10; i++ {
					if seen[int64(n)+i] {
						t.Errorf("number %d handed out twice", int64(n)+i)
					}
					seen[int64(n)+i] = true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestUnreachable: a server that does not answer is an error from Open.
func TestUnreachable(t *testing.T) {
	if _, err := pgindex.Open(context.Background(), "postgres://postgres@127.0.0.1:1/none?connect_timeout=2"); err == nil {
		t.Fatal("opened an index on a closed port")
	}
}

// TestJoin: a node alone (local media) keeps every other node out; nodes
// sharing the schema exclude only another process with their own id; the
// locks go with the node.
func TestJoin(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Schema(t)
	alone, other := open(t, dsn), open(t, dsn)
	if err := alone.Join(ctx, "", "", true); err != nil {
		t.Fatal(err)
	}
	if err := other.Join(ctx, "", "", true); !errors.Is(err, pgindex.ErrNodeLocked) {
		t.Fatalf("a second node alone: %v", err)
	}
	if err := other.Join(ctx, "n1", "http://n1", false); !errors.Is(err, pgindex.ErrNodeLocked) {
		t.Fatalf("a shared node next to a node alone: %v", err)
	}
	if err := open(t, pgtest.Schema(t)).Join(ctx, "", "", true); err != nil {
		t.Fatalf("a node alone on another schema: %v", err)
	}
	alone.Close()
	n1, n2, n1again := open(t, dsn), open(t, dsn), open(t, dsn)
	if err := n1.Join(ctx, "n1", "http://n1", false); err != nil {
		t.Fatalf("after the node alone left: %v", err)
	}
	if err := n2.Join(ctx, "n2", "http://n2", false); err != nil {
		t.Fatal(err)
	}
	if err := n1again.Join(ctx, "n1", "http://n1", false); !errors.Is(err, pgindex.ErrNodeLocked) {
		t.Fatalf("a second process as n1: %v", err)
	}
	if err := open(t, dsn).Join(ctx, "", "", true); !errors.Is(err, pgindex.ErrNodeLocked) {
		t.Fatalf("a node alone next to shared nodes: %v", err)
	}
	seg1, _ := n1.NewSegment(ctx)
	seg2, _ := n2.NewSegment(ctx)
	segs, _ := n1.Segments(ctx)
	owners := map[int64]string{}
	for _, s := range segs {
		owners[s.ID] = s.Node
	}
	if owners[seg1] != "n1" || owners[seg2] != "n2" {
		t.Fatalf("segment owners %v", owners)
	}
	n1.Close()
	if err := n1again.Join(ctx, "n1", "http://n1", false); err != nil {
		t.Fatalf("n1 restarted: %v", err)
	}
}

// TestIngestClaims: one node ingests a stream at a time; the claim moves
// when released, and when its node stops beating.
func TestIngestClaims(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Schema(t)
	a, b := open(t, dsn), open(t, dsn)
	if err := a.Join(ctx, "a", "http://a", false); err != nil {
		t.Fatal(err)
	}
	if err := b.Join(ctx, "b", "http://b", false); err != nil {
		t.Fatal(err)
	}
	claim := func(x *pgindex.Index, stream int64, wantOK bool, wantOwner string) {
		t.Helper()
		ok, owner, err := x.ClaimIngest(ctx, stream)
		if err != nil || ok != wantOK || owner != wantOwner {
			t.Fatalf("claim %d by %s: ok %v owner %q err %v; want %v %q", stream, x.Node(), ok, owner, err, wantOK, wantOwner)
		}
	}
	claim(a, 1, true, "")
	claim(a, 1, true, "") // again: the same node
	claim(b, 1, false, "http://a")
	if url, ok, err := b.IngestOwner(ctx, 1); err != nil || !ok || url != "http://a" {
		t.Fatalf("owner of 1: %q %v %v", url, ok, err)
	}
	if err := a.ReleaseIngest(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := b.IngestOwner(ctx, 1); ok {
		t.Fatal("a released claim still has an owner")
	}
	claim(b, 1, true, "")

	// A node that keeps beating keeps its claims past LiveFor; one that
	// stops (it died) loses them.
	claim(a, 2, true, "")
	for deadline := time.Now().Add(pgindex.LiveFor + time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if err := a.Heartbeat(ctx); err != nil {
			t.Fatal(err)
		}
		if err := b.Heartbeat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	claim(b, 2, false, "http://a")
	a.Close() // a dies: its node row is no longer renewed
	time.Sleep(pgindex.LiveFor + 200*time.Millisecond)
	if _, ok, _ := b.IngestOwner(ctx, 2); ok {
		t.Fatal("a dead node still owns a stream")
	}
	claim(b, 2, true, "")
}

// TestTerminatedConnections: every connection of the pool is killed by the
// server (what a PostgreSQL restart does). The next statements run on new
// connections instead of failing one per dead pooled connection.
func TestTerminatedConnections(t *testing.T) {
	const app = "kinema_terminated_test"
	x := open(t, pgtest.WithParam(pgtest.Schema(t), "application_name", app))
	ctx := context.Background()
	// Fill the pool with idle connections, each used more than once (pgx
	// pings a connection on its first reuse anyway).
	for range 3 {
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := x.StreamByName(ctx, "acct", "cam"); !errors.Is(err, archive.ErrNotFound) {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	killed := pgtest.Terminate(t, app)
	if killed < 2 {
		t.Fatalf("terminated %d connections", killed)
	}
	for i := range 2 * killed {
		if _, err := x.StreamByName(ctx, "acct", "cam"); !errors.Is(err, archive.ErrNotFound) {
			t.Fatalf("statement %d after the server dropped %d connections: %v", i, killed, err)
		}
	}
}

// TestNodeLockTakenAgain: the server drops every connection of a node (a
// restart), and with them its node lock; the node's next heartbeat takes
// the lock again, so a second process as the same node is still refused.
func TestNodeLockTakenAgain(t *testing.T) {
	const app = "kinema_relock_test"
	ctx := context.Background()
	dsn := pgtest.Schema(t)
	n1 := open(t, pgtest.WithParam(dsn, "application_name", app))
	if err := n1.Join(ctx, "n1", "http://n1", false); err != nil {
		t.Fatal(err)
	}
	pgtest.Terminate(t, app)
	if err := n1.Heartbeat(ctx); err != nil {
		t.Fatalf("heartbeat after the connections were dropped: %v", err)
	}
	if err := open(t, dsn).Join(ctx, "n1", "http://n1", false); !errors.Is(err, pgindex.ErrNodeLocked) {
		t.Fatalf("a second process as n1 after n1's connections were dropped: %v", err)
	}
}
