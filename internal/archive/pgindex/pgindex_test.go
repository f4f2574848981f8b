package pgindex_test

import (
	"context"
	"database/sql"
	"errors"
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
	x := open(t, dsn)
	if v, err := x.SchemaVersion(context.Background()); err != nil || v != 1 {
		t.Fatalf("schema version %d %v", v, err)
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

// TestNodeLock: one node per schema until several are supported; the lock
// goes with the node.
func TestNodeLock(t *testing.T) {
	dsn := pgtest.Schema(t)
	a, b := open(t, dsn), open(t, dsn)
	if err := a.LockNode(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.LockNode(context.Background()); !errors.Is(err, pgindex.ErrNodeLocked) {
		t.Fatalf("a second node took the lock: %v", err)
	}
	other := open(t, pgtest.Schema(t))
	if err := other.LockNode(context.Background()); err != nil {
		t.Fatalf("a node on another schema: %v", err)
	}
	a.Close()
	if err := b.LockNode(context.Background()); err != nil {
		t.Fatalf("after the first node closed: %v", err)
	}
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
	admin, err := sql.Open("pgx", pgtest.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var killed int
	if err := admin.QueryRow(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&killed); err != nil || killed < 2 {
		t.Fatalf("terminated %d connections: %v", killed, err)
	}
	// pg_terminate_backend signals; wait until the processes are gone.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var left int
		admin.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&left)
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still there", left)
		}
	}
	for i := range 2 * killed {
		if _, err := x.StreamByName(ctx, "acct", "cam"); !errors.Is(err, archive.ErrNotFound) {
			t.Fatalf("statement %d after the server dropped %d connections: %v", i, killed, err)
		}
	}
}
