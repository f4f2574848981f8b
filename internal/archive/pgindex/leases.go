package pgindex

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kinema/kinema/internal/archive"
)

// Leases across nodes are session advisory locks, all held on one
// connection of the index's own, outside the pool (the pool would hand the
// session to other statements, and close it when idle). PostgreSQL
// releases them the moment that connection ends, so a node that dies or is
// cut off loses them without anyone having to expire anything; the watch
// below makes the node notice it has lost them:
//
//   - The server ended the session (pg_terminate_backend, a restart): its
//     farewell or end-of-file is waiting on the socket. A peek every
//     watchPeek notices, so the node stops within that long of the server
//     releasing the locks, typically before another node, asking once a
//     second, takes one.
//   - The network is cut, or the server hangs: a ping every watchPing that
//     takes longer than pingTimeout declares the session gone, at most
//     watchPing + pingTimeout (3 s) after the cut. The server notices the
//     dead connection by TCP keepalives, which the session asks for
//     (serverKeepalive: 5 s idle, then 3 probes 1 s apart, so about 7 s
//     after the cut), or when unacknowledged data has waited 8 s: later
//     than the node stops, so another node takes over only after this one
//     has stopped. (PostgreSQL 12 or later, for tcp_user_timeout.)
const (
	watchPeek   = 100 * time.Millisecond
	watchPing   = time.Second
	pingTimeout = 2 * time.Second
	// connectTimeout bounds opening the lease session and asking for a lock.
	connectTimeout = 5 * time.Second
)

// serverKeepalive is what the lease session asks the server for (the
// server's own defaults are the operating system's: two hours).
var serverKeepalive = map[string]string{
	"tcp_keepalives_idle":     "5",
	"tcp_keepalives_interval": "1",
	"tcp_keepalives_count":    "3",
	"tcp_user_timeout":        "8000", // ms
}

var errClosed = errors.New("postgres index: closed")

// leases is the lease session of an Index.
type leases struct {
	cfg   *pgx.ConnConfig
	local archive.LocalLeases // one holder per name within the process too

	mu     sync.Mutex // serialises use of conn
	conn   *pgx.Conn  // nil until needed, and after it was lost
	closed bool
}

func newLeases(cfg *pgx.ConnConfig) *leases {
	c := cfg.Copy()
	for k, v := range serverKeepalive {
		c.RuntimeParams[k] = v
	}
	return &leases{cfg: c}
}

// pgLease is a lease held on one session.
type pgLease struct {
	*archive.HeldLease
	s    *leases
	conn *pgx.Conn
	name string
}

// Release unlocks the lease, if its session is still the one in use, and
// ends it.
func (l *pgLease) Release() {
	l.s.mu.Lock()
	if l.s.conn != nil && l.s.conn == l.conn {
		ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
		_, err := l.conn.Exec(ctx, `SELECT pg_advisory_unlock($1, hashtext(current_schema() || '/' || $2))`, int32(lockLease), l.name)
		cancel()
		if err != nil {
			// Unsure whether the lock went: end the session, which
			// releases it for sure.
			l.s.dropLocked()
		}
	}
	l.s.mu.Unlock()
	l.HeldLease.Release()
}

// TryLease takes the advisory lock of name (per schema) on the lease
// session, opening the session if needed.
func (x *Index) TryLease(ctx context.Context, name string) (archive.Lease, error) {
	s := x.leases
	hl := s.local.TryLease(name)
	if hl == nil {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		hl.Release()
		return nil, errClosed
	}
	// Bounded: the session's lock is held meanwhile, and an unreachable
	// server can take minutes to refuse a connection.
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if s.conn == nil {
		c, err := pgx.ConnectConfig(ctx, s.cfg)
		if err != nil {
			hl.Release()
			return nil, err
		}
		s.conn = c
		go s.watch(c)
	}
	var ok bool
	err := s.conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext(current_schema() || '/' || $2))`, int32(lockLease), name).Scan(&ok)
	if err != nil {
		// A failed statement may have left the session in any state.
		s.dropLocked()
	}
	if err != nil || !ok {
		hl.Release()
		return nil, err
	}
	return &pgLease{HeldLease: hl, s: s, conn: s.conn, name: name}, nil
}

// watch declares the session c gone when the server has closed it or it
// stops answering; see the comment at the top.
func (s *leases) watch(c *pgx.Conn) {
	peek := time.NewTicker(watchPeek)
	defer peek.Stop()
	lastPing := time.Now()
	for range peek.C {
		s.mu.Lock()
		if s.conn != c {
			s.mu.Unlock()
			return
		}
		gone := serverSaidGoodbye(c.PgConn().Conn())
		if !gone && time.Since(lastPing) >= watchPing {
			ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
			gone = c.Ping(ctx) != nil
			cancel()
			lastPing = time.Now()
		}
		if gone {
			s.dropLocked()
		}
		s.mu.Unlock()
	}
}

// dropLocked ends the session and every lease held on it.
func (s *leases) dropLocked() {
	if s.conn == nil {
		return
	}
	c := s.conn
	s.conn = nil
	s.local.LoseAll()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
		defer cancel()
		c.Close(ctx)
	}()
}

func (s *leases) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.conn != nil {
		c := s.conn
		s.conn = nil
		s.local.LoseAll()
		ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
		defer cancel()
		c.Close(ctx)
	}
}
