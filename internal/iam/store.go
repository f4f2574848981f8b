package iam

import (
	"context"
	"database/sql"
	"errors"
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

// Store persists IAM entities. The Service keeps every entity in memory;
// several Services (one per node) may share one store. The store therefore
// keeps a version that every Apply moves, by whichever process: a Service
// polls Version, reloads with All when it moved, and writes with the
// version its memory is at, so a write decided on stale memory is refused
// (ErrConflict) instead of silently undoing another node's change.
type Store interface {
	// All returns every record and the version they are at, read as of
	// one moment.
	All(ctx context.Context) ([]Record, int64, error)
	// Version returns the store's current version. It is polled, so it
	// must be cheap.
	Version(ctx context.Context) (int64, error)
	// Apply writes a batch atomically if the store is still at version
	// base, and returns the new version (base+1): a record with a nil
	// Value is deleted, any other is inserted or replaced. If the store
	// is at another version, nothing is written and the error is
	// ErrConflict.
	Apply(ctx context.Context, base int64, changes []Record) (int64, error)
	Close() error
}

// ErrConflict is Apply's answer when another writer moved the store since
// the version the batch was decided on.
var ErrConflict = errors.New("iam store: changed by another writer since it was read")

// SQLiteStore keeps IAM entities in one table of an SQLite database; Kinema
// uses the index database, so one file holds the server's state.
type SQLiteStore struct{ db *sql.DB }

// OpenSQLite opens (creating the tables if needed) the store in the SQLite
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
	// iam_version is new in files made before stores were shared: it
	// starts at 0 under the existing entities.
	for _, stmt := range []string{`CREATE TABLE IF NOT EXISTS iam_entities (
		kind  TEXT NOT NULL,
		key   TEXT NOT NULL,
		value BLOB NOT NULL,
		PRIMARY KEY (kind, key)
	)`, `CREATE TABLE IF NOT EXISTS iam_version (
		id      INTEGER PRIMARY KEY CHECK (id = 1),
		version INTEGER NOT NULL
	)`, `INSERT OR IGNORE INTO iam_version (id, version) VALUES (1, 0)`} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			db.Close()
			return nil, fmt.Errorf("iam store schema: %w", err)
		}
	}
	return &SQLiteStore{db: db}, nil
}

// All implements Store.
func (s *SQLiteStore) All(ctx context.Context) ([]Record, int64, error) {
	return ReadAllSQL(ctx, s.db, nil)
}

// Version implements Store.
func (s *SQLiteStore) Version(ctx context.Context) (int64, error) { return VersionSQL(ctx, s.db) }

// VersionSQL is Version for a store in a SQL database.
func VersionSQL(ctx context.Context, db *sql.DB) (int64, error) {
	var v int64
	err := db.QueryRowContext(ctx, `SELECT version FROM iam_version WHERE id = 1`).Scan(&v)
	return v, err
}

// Apply implements Store.
func (s *SQLiteStore) Apply(ctx context.Context, base int64, changes []Record) (int64, error) {
	return ApplySQL(ctx, s.db, base, changes, SQLDialect{
		Bump:   `UPDATE iam_version SET version = version + 1 WHERE id = 1 AND version = ? RETURNING version`,
		Delete: `DELETE FROM iam_entities WHERE kind = ? AND key = ?`,
		Put:    `INSERT OR REPLACE INTO iam_entities (kind, key, value) VALUES (?, ?, ?)`,
	})
}

// Close implements Store.
func (s *SQLiteStore) Close() error { return s.db.Close() }

// SQLDialect is the statements a SQL store's Apply runs, in its database's
// placeholder syntax: Bump moves the version from base (one parameter) and
// returns the new one, or no row when the store is not at base; Delete
// takes kind and key; Put takes kind, key and value and replaces.
type SQLDialect struct{ Bump, Delete, Put string }

// ApplySQL is Apply for a store in a SQL database (SQLite here, PostgreSQL
// in another package): version check and changes in one transaction. The
// check is the transaction's first statement, a write: it takes the
// database's write lock (SQLite) or the version row's lock (PostgreSQL)
// before anything is read, so two writers from one base cannot both pass.
func ApplySQL(ctx context.Context, db *sql.DB, base int64, changes []Record, d SQLDialect) (int64, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	var v int64
	err = tx.QueryRowContext(ctx, d.Bump, base).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrConflict
	}
	if err != nil {
		return 0, err
	}
	for _, c := range changes {
		if c.Value == nil {
			_, err = tx.ExecContext(ctx, d.Delete, c.Kind, c.Key)
		} else {
			_, err = tx.ExecContext(ctx, d.Put, c.Kind, c.Key, c.Value)
		}
		if err != nil {
			return 0, err
		}
	}
	return v, tx.Commit()
}

// ReadAllSQL is All for a store in a SQL database whose tables are
// iam_entities and iam_version: the version and the records in one
// transaction (opts: the isolation that makes it a snapshot, nil where
// every transaction is one).
func ReadAllSQL(ctx context.Context, db *sql.DB, opts *sql.TxOptions) ([]Record, int64, error) {
	tx, err := db.BeginTx(ctx, opts)
	if err != nil {
		return nil, 0, err
	}
	defer tx.Rollback()
	var v int64
	if err := tx.QueryRowContext(ctx, `SELECT version FROM iam_version WHERE id = 1`).Scan(&v); err != nil {
		return nil, 0, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT kind, key, value FROM iam_entities`)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		var r Record
		if err := rows.Scan(&r.Kind, &r.Key, &r.Value); err != nil {
			return nil, 0, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	return out, v, tx.Commit()
}
