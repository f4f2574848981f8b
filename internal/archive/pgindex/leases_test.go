package pgindex_test

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/archive/pgindex/pgtest"
)

// waitLease asks for the lease every 50 ms until it is granted.
func waitLease(t *testing.T, x archive.Index, name string, within time.Duration) archive.Lease {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(50 * time.Millisecond) {
		l, err := x.TryLease(context.Background(), name)
		if err != nil {
			t.Logf("asking for %s: %v", name, err)
		}
		if l != nil {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("lease %s not granted within %v", name, within)
		}
	}
}

func lostWithin(t *testing.T, l archive.Lease, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	select {
	case <-l.Lost():
		return time.Since(start)
	case <-time.After(d):
		t.Fatalf("the lease is not reported lost after %v", d)
		return 0
	}
}

// TestLeasesAcrossNodes: two nodes on one schema. A lease has one holder;
// when the server ends the holder's session (what it does when the node
// dies or is terminated) the holder hears at once that the lease is lost
// and the other node gets it; closing the index releases its leases; a
// node on another schema has leases of its own.
func TestLeasesAcrossNodes(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Schema(t)
	app := fmt.Sprintf("kinema_leases_%d", time.Now().UnixNano())
	a := open(t, pgtest.WithParam(dsn, "application_name", app))
	b := open(t, dsn)
	la := waitLease(t, a, archive.LeaseJanitor, time.Second)
	if l, err := b.TryLease(ctx, archive.LeaseJanitor); err != nil || l != nil {
		t.Fatalf("a second node took a held lease: %v %v", l, err)
	}
	if l, err := open(t, pgtest.Schema(t)).TryLease(ctx, archive.LeaseJanitor); err != nil || l == nil {
		t.Fatalf("a node on another schema: %v %v", l, err)
	}
	// Released: the other node takes it; then back.
	la.Release()
	lb := waitLease(t, b, archive.LeaseJanitor, time.Second)
	lb.Release()
	la = waitLease(t, a, archive.LeaseJanitor, time.Second)
	other := waitLease(t, a, archive.OutboxLease(archive.TriggerNotification), time.Second)

	admin, err := sql.Open("pgx", pgtest.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, app); err != nil {
		t.Fatal(err)
	}
	took := lostWithin(t, la, 2*time.Second)
	lostWithin(t, other, time.Second)
	t.Logf("the holder heard of its lost session after %v", took)
	lb = waitLease(t, b, archive.LeaseJanitor, 2*time.Second)
	// The former holder gets nothing while b holds it, over a new session.
	if l, err := a.TryLease(ctx, archive.LeaseJanitor); err != nil || l != nil {
		t.Fatalf("the former holder took the lease back: %v %v", l, err)
	}
	if l := waitLease(t, a, archive.OutboxLease(archive.TriggerNotification), time.Second); l == nil {
		t.Fatal("unreachable")
	}
	b.Close()
	lostWithin(t, lb, time.Second)
	waitLease(t, a, archive.LeaseJanitor, 2*time.Second)
}

// freezer is a TCP relay to the PostgreSQL server that can stop relaying
// while keeping both connections open: a network that drops every packet,
// as a cut cable or a hung server looks to the client.
type freezer struct {
	ln     net.Listener
	mu     sync.Mutex
	frozen bool
	thaw   chan struct{}
	conns  []net.Conn
}

func newFreezer(t *testing.T, target string) *freezer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln, thaw: make(chan struct{})}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			f.mu.Lock()
			f.conns = append(f.conns, c, s)
			f.mu.Unlock()
			go f.relay(c, s)
			go f.relay(s, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, c := range f.conns {
			c.Close()
		}
	})
	return f
}

func (f *freezer) relay(from, to net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if err != nil {
			to.Close()
			return
		}
		f.mu.Lock()
		frozen, thaw := f.frozen, f.thaw
		f.mu.Unlock()
		if frozen {
			<-thaw // the bytes are lost with the connection
			return
		}
		if _, err := to.Write(buf[:n]); err != nil {
			return
		}
	}
}

func (f *freezer) freeze() {
	f.mu.Lock()
	f.frozen = true
	f.mu.Unlock()
}

// TestLeaseLostWhenCutOff: a holder whose connection to the server stops
// answering gives its lease up within a few seconds, on its own (the
// server, which sees nothing wrong until its keepalives fail, releases the
// lock later: the holder has stopped by then).
func TestLeaseLostWhenCutOff(t *testing.T) {
	dsn := pgtest.Schema(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	f := newFreezer(t, u.Host)
	u.Host = f.ln.Addr().String()
	a := open(t, u.String())
	l := waitLease(t, a, archive.LeaseJanitor, time.Second)
	f.freeze()
	took := lostWithin(t, l, 5*time.Second)
	t.Logf("lease given up %v after the network froze", took)
	if took < 500*time.Millisecond {
		t.Errorf("lost after %v: before any ping could time out", took)
	}
}
