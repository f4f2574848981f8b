package iam

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Entity kinds as stored.
const (
	kindAccount   = "account"
	kindUser      = "user"
	kindKey       = "key"
	kindPolicy    = "policy"
	kindRole      = "role"
	kindRoleAlias = "role-alias"
	kindDevice    = "device"
)

// Record is one stored entity: its kind, its key within the kind, and its
// JSON value (secrets inside are already encrypted).
type Record struct {
	Kind, Key string
	Value     []byte // nil in a Change deletes the record
}

// Store persists IAM entities. The Service keeps every entity in memory and
// reads the store only at start, so the interface is deliberately tiny: a
// PostgreSQL (or any transactional) backend implements three methods.
type Store interface {
	// All returns every record.
	All(ctx context.Context) ([]Record, error)
	// Apply writes a batch atomically: a record with a nil Value is
	// deleted, any other is inserted or replaced.
	Apply(ctx context.Context, changes []Record) error
	Close() error
}

// SQLiteStore keeps IAM entities in one table of an SQLite database; Kinema
// uses the index database, so one file holds the server's state.
type SQLiteStore struct{ db *sql.DB }

// OpenSQLite opens (creating the table if needed) the store in the SQLite
// database at path. It may be the index database: its own connection waits
// out the index's writer (busy_timeout) for the rare admin write.
func OpenSQLite(ctx context.Context, path string) (*SQLiteStore, error) {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "busy_timeout(10000)")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS iam_entities (
		kind  TEXT NOT NULL,
		key   TEXT NOT NULL,
		value BLOB NOT NULL,
		PRIMARY KEY (kind, key)
	)`); err != nil {
		db.Close()
		return nil, fmt.Errorf("iam store schema: %w", err)
	}
	return &SQLiteStore{db: db}, nil
}

// All implements Store.
func (s *SQLiteStore) All(ctx context.Context) ([]Record, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT kind, key, value FROM iam_entities`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		var r Record
		if err := rows.Scan(&r.Kind, &r.Key, &r.Value); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Apply implements Store.
func (s *SQLiteStore) Apply(ctx context.Context, changes []Record) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, c := range changes {
		if c.Value == nil {
			_, err = tx.ExecContext(ctx, `DELETE FROM iam_entities WHERE kind = ? AND key = ?`, c.Kind, c.Key)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO iam_entities (kind, key, value) VALUES (?, ?, ?)`, c.Kind, c.Key, c.Value)
		}
		if err != nil {
			return err
		}
	}
	return tx.Commit()
}

// Close implements Store.
func (s *SQLiteStore) Close() error { return s.db.Close() }
