package sqlindex

import (
	"context"
	"database/sql"
	"sync"

	"github.com/kinema/kinema/internal/archive/sqlrows"
)

// readStmts keeps the reader pool's statements prepared, by SQL text. The
// driver parses and plans an unprepared statement on every call, which cost
// more than the lookup itself: a playback request's two point queries took
// 75 µs, most of it in the SQL parser (docs/benchmarks.md). The set of texts
// is small and fixed by the code, so the cache is never trimmed.
type readStmts struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

func (c *readStmts) get(ctx context.Context, q string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.m[q]; ok {
		return s, nil
	}
	s, err := c.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if c.m == nil {
		c.m = map[string]*sql.Stmt{}
	}
	c.m[q] = s
	return s, nil
}

func (c *readStmts) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.m {
		s.Close()
	}
	c.m = nil
	return nil
}

// query runs a read on the reader pool with a cached statement.
func (x *Index) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	s, err := x.reads.get(ctx, q)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(ctx, args...)
}

// queryRow is query for one row.
func (x *Index) queryRow(ctx context.Context, q string, args ...any) sqlrows.Scanner {
	s, err := x.reads.get(ctx, q)
	if err != nil {
		return sqlrows.ErrRow{Err: err}
	}
	return s.QueryRowContext(ctx, args...)
}
