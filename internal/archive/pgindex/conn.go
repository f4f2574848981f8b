package pgindex

import (
	"context"
	"database/sql"
	"net"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// OpenDB opens a connection pool to the database at dsn; every Kinema
// store on PostgreSQL opens its pool here (openDB).
func OpenDB(dsn string) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	return openDB(cfg), nil
}

// openDB opens the pool for cfg. A pooled connection whose server
// process has gone (a PostgreSQL restart, pg_terminate_backend, a failover)
// is not noticed by database/sql until a statement fails on it: pgx then
// reads the server's farewell ("terminating connection due to administrator
// command") as that statement's error. Every idle connection of the pool
// would fail one statement that way after a restart. Before handing out a
// connection we therefore peek, without blocking, at its socket: an idle
// connection has nothing to read unless the server said goodbye or closed
// it, and then pgx's ping fails and database/sql takes another connection.
// The peek is one non-blocking syscall; connections idle for over a second
// are pinged anyway (pgx's default).
func openDB(cfg *pgx.ConnConfig) *sql.DB {
	return stdlib.OpenDB(*cfg, stdlib.OptionShouldPing(func(_ context.Context, p stdlib.ShouldPingParams) bool {
		return p.IdleDuration > time.Second || serverSaidGoodbye(p.Conn.PgConn().Conn())
	}))
}

// serverSaidGoodbye reports whether an idle connection's socket has bytes
// or end-of-file waiting. Connections it cannot peek at (TLS) report false
// and rely on the idle ping.
func serverSaidGoodbye(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	pending := false
	var b [1]byte
	// Control, not Read: Read first takes the socket's read lock, which
	// pgx's background reader holds while it waits for a message (pgx
	// starts one when a write is slow, over 15 ms on a loaded machine, and
	// it stays parked in Read after the query). Waiting for that lock
	// blocked BeginTx forever on an idle connection. A peek consumes
	// nothing, so it may run beside that reader.
	raw.Control(func(fd uintptr) {
		// No error: a message (n > 0) or end-of-file (n == 0).
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		pending = err == nil
	})
	return pending
}
