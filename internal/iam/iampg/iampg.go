// Package iampg is the IAM store (iam.Store) on PostgreSQL: the accounts,
// users, access keys, policies, roles, role aliases and devices that every
// node of a cluster sharing one database must agree on. Each node's
// iam.Service keeps them in memory and follows this store's version
// (package iam explains how and how fast).
//
// Its tables have their own migrations (migrations/*.sql, recorded in
// iam_schema_migrations), applied by pgindex.Migrate under the lock every
// Kinema migration takes, so the index's and the IAM store's versions are
// numbered independently.
package iampg

import (
	"context"
	"database/sql"
	"embed"
	"fmt"

	"github.com/kinema/kinema/internal/archive/pgindex"
	"github.com/kinema/kinema/internal/iam"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store implements iam.Store on PostgreSQL.
type Store struct{ db *sql.DB }

var _ iam.Store = (*Store)(nil)

var dialect = iam.SQLDialect{
	Bump:   `UPDATE iam_version SET version = version + 1 WHERE id = 1 AND version = $1 RETURNING version`,
	Delete: `DELETE FROM iam_entities WHERE kind = $1 AND key = $2`,
	Put: `INSERT INTO iam_entities (kind, key, value) VALUES ($1, $2, $3)
		ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value`,
}

// Open connects to the database at dsn (as pgindex.Open reads it; the
// index's database and schema, in a cluster) and applies pending
// migrations.
func Open(ctx context.Context, dsn string) (*Store, error) {
	db, err := pgindex.OpenDB(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres iam store: %w", err)
	}
	// Reads are served from memory: the pool carries the version poll,
	// a reload now and then, and admin writes.
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(2)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres iam store: connecting: %w", err)
	}
	if err := pgindex.Migrate(ctx, db, migrations, "iam_schema_migrations"); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres iam store: schema migration: %w", err)
	}
	return &Store{db: db}, nil
}

// All implements iam.Store. REPEATABLE READ makes the version and the
// records one snapshot: a write committing between the two reads is in
// neither.
func (s *Store) All(ctx context.Context) ([]iam.Record, int64, error) {
	return iam.ReadAllSQL(ctx, s.db, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
}

// Version implements iam.Store.
func (s *Store) Version(ctx context.Context) (int64, error) { return iam.VersionSQL(ctx, s.db) }

// Apply implements iam.Store. The version row is the lock: a second
// writer from the same base waits for the first to commit, then finds the
// version moved and gets iam.ErrConflict.
func (s *Store) Apply(ctx context.Context, base int64, changes []iam.Record) (int64, error) {
	return iam.ApplySQL(ctx, s.db, base, changes, dialect)
}

// Close implements iam.Store.
func (s *Store) Close() error { return s.db.Close() }
