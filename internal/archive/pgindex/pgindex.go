// Package pgindex is the Index (and clip-metadata Store) on PostgreSQL: the
// index of Kinema nodes whose own disks hold nothing (docs/design/scale-out.md),
// and the base for several nodes sharing one database. It passes the same
// conformance suites as the embedded SQLite index (indextest, cliptest);
// rows are scanned by the shared sqlrows package, so only the SQL differs.
//
// Several nodes share one schema (Join): each registers itself, writes
// segments of its own, claims the streams it ingests (nodes.go), and its
// recovery touches only its own segments. A node whose media are on its
// own disk joins alone and keeps every other node out.
//
// Schema migrations (migrations/*.sql) are applied by Open in one
// transaction under an advisory lock, recorded in schema_migrations: nodes
// starting together apply each version exactly once. Other stores in the
// same database (the IAM store, iampg) apply theirs with the same Migrate,
// recorded in a table of their own. OpenDB is the connection pool every
// one of them uses.
//
// Several nodes write at once, so where the embedded index relied on its
// single writer connection this one says so in SQL:
//   - Fragment numbers come from a counter row updated in place, so a
//     reservation is one atomic statement and never overlaps another node's.
//   - Outbox ids must grow in commit order (a consumer resumes after the
//     highest id it has seen). An identity column hands ids out at insert,
//     not at commit, so commits that write outbox rows take a transaction
//     advisory lock first: they commit one at a time, in id order.
//     Commits without trigger tags, the common case, never take it.
//   - Read-modify-write operations (UpdateStream, TagStream) lock the
//     stream row.
//
// Background work across nodes (the janitor, notification delivery, image
// generation) runs on one node per kind at a time: the holder of the
// kind's lease (TryLease, leases.go), a session advisory lock on a
// connection the index keeps for its leases. That is a leader per kind
// rather than per-row leases (`UPDATE outbox SET lease_owner ... FOR
// UPDATE SKIP LOCKED`), because:
//   - the outbox consumer keeps each stream's rows in fragment order, one
//     at a time, and reads the outbox once and then past a cursor; per-row
//     leases would hand a stream's next row to another node while the
//     previous one is in flight, and a row lease that lapses mid-attempt
//     puts the row back behind the cursors of every node;
//   - PostgreSQL releases an advisory lock the moment the holder's session
//     ends, so a dead node's work moves on within a second or two, with no
//     expiry time to tune between "slow takeover" and "a slow attempt
//     loses its lease"; and a holder learns that its session ended from
//     its own socket (or a failed ping), so it stops before another node
//     can start, except in the short window after the server terminates a
//     session (outbox rows are delivered at least once; internal/outbox says
//     what can repeat);
//   - it needs no migration, and the outbox calls keep their shape.
//
// The price is that one node does each kind's work: image generation
// (CPU-bound decoding) does not spread over nodes. Partitioning the kind by
// stream (a lease per partition, a node taking its fair share) keeps the
// per-stream order and spreads it; docs/design/scale-out.md sketches it.
// A lease session needs a direct connection, or a pooler in session mode:
// advisory locks belong to the server session.
package pgindex

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/archive/sqlrows"
	"github.com/kinema/kinema/internal/clipmeta"
	"github.com/kinema/kinema/internal/stream"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Advisory lock keys (pg_advisory_xact_lock), arbitrary but fixed.
const (
	lockMigrations = 0x6b696e656d61_01 // "kinema" 1
	lockOutbox     = 0x6b696e656d61_02
	lockNode       = 0x6b6e_0003 // with the schema's hash (two-key form)
	lockLease      = 0x6b6e_0004 // with the hash of schema and lease name
)

// Index implements archive.Index and clipmeta.Store on PostgreSQL.
type Index struct {
	db     *sql.DB
	leases *leases
	lockMu sync.Mutex
	lock   *sql.Conn // holds the node lock, once joined (Join)
	node   string    // the node id joined as
}

var (
	_ archive.Index  = (*Index)(nil)
	_ clipmeta.Store = (*Index)(nil)
)

// Open connects to the database at dsn (a postgres:// URL or key=value
// string as pgx reads it; search_path=... selects a schema) and applies
// pending migrations.
func Open(ctx context.Context, dsn string) (*Index, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres index: %w", err)
	}
	db := openDB(cfg)
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres index: connecting: %w", err)
	}
	x := &Index{db: db, leases: newLeases(cfg)}
	if err := x.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres index: schema migration: %w", err)
	}
	return x, nil
}

// Close closes the connection pool (releasing the node lock) and the
// lease session (ending the leases held).
func (x *Index) Close() error {
	x.leases.close()
	var err error
	x.lockMu.Lock()
	if x.lock != nil {
		// Unlock now: the server drops a closed session's locks only once
		// it has noticed the connection went, and a successor may be
		// starting at this very moment.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		x.lock.ExecContext(ctx, `SELECT pg_advisory_unlock_all()`)
		cancel()
		err = x.lock.Close()
	}
	x.lockMu.Unlock()
	return errors.Join(err, x.db.Close())
}

// Ping checks that the database answers (readiness).
func (x *Index) Ping(ctx context.Context) error { return x.db.PingContext(ctx) }

// Vacuum runs VACUUM ANALYZE on the big tables: what autovacuum does some
// time after a bulk load, done at once (a benchmark, an import). Until
// then index-only scans still read the table for visibility, and a count
// over a stream's hour reads a page per fragment.
func (x *Index) Vacuum(ctx context.Context) error {
	_, err := x.db.ExecContext(ctx, `VACUUM (ANALYZE) fragments, sample_tables, outbox, segments`)
	return err
}

// SchemaVersion returns the highest migration applied.
func (x *Index) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := x.db.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// migrate applies the index's embedded migrations not yet recorded.
func (x *Index) migrate(ctx context.Context) error {
	return Migrate(ctx, x.db, migrations, "schema_migrations")
}

// Migrate applies the migrations of fsys (files migrations/NNNN_what.sql,
// NNNN the version) not yet recorded in table, in one transaction under the
// advisory lock every Kinema migration takes: nodes starting together
// apply each version exactly once. Each owner of tables in the database
// (the index, the IAM store) keeps its own migrations and table, so their
// version numbers never collide.
func Migrate(ctx context.Context, db *sql.DB, fsys fs.FS, table string) error {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	return inTx(ctx, db, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(lockMigrations)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+table+` (
			version    INTEGER PRIMARY KEY,
			name       TEXT NOT NULL,
			applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`); err != nil {
			return err
		}
		var current int
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM `+table).Scan(&current); err != nil {
			return err
		}
		for _, name := range names {
			base := strings.TrimPrefix(name, "migrations/")
			v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
			if err != nil {
				return fmt.Errorf("migration %s: the name must start with its version", base)
			}
			if v <= current {
				continue
			}
			body, err := fs.ReadFile(fsys, name)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return fmt.Errorf("migration %s: %w", base, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO `+table+` (version, name) VALUES ($1, $2)`, v, base); err != nil {
				return err
			}
		}
		return nil
	})
}

func (x *Index) tx(ctx context.Context, fn func(*sql.Tx) error) error { return inTx(ctx, x.db, fn) }

// inTx runs fn in a transaction, committed if fn succeeds.
func inTx(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// args numbers the placeholders of a statement built piece by piece.
type args []any

func (a *args) add(v any) string {
	*a = append(*a, v)
	return "$" + strconv.Itoa(len(*a))
}

// CreateStream inserts s (setting s.ID) with its tags.
func (x *Index) CreateStream(ctx context.Context, s *stream.Stream, tags map[string]string) error {
	return x.tx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `INSERT INTO streams (account, region, name, device_name, media_type, kms_key_id,
			version, status, created_ms, retention_hours, storage_tier) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) RETURNING id`,
			s.Account, s.Region, s.Name, s.DeviceName, s.MediaType, s.KMSKeyID, s.Version, string(s.Status),
			s.Created.UnixMilli(), s.RetentionHours, s.StorageTier).Scan(&s.ID)
		if isUniqueViolation(err) {
			return archive.ErrExists
		}
		if err != nil {
			return err
		}
		for k, v := range tags {
			if _, err := tx.ExecContext(ctx, `INSERT INTO stream_tags (stream_id, key, value) VALUES ($1,$2,$3)`, s.ID, k, v); err != nil {
				return err
			}
		}
		return nil
	})
}

// StreamByName finds a live stream.
func (x *Index) StreamByName(ctx context.Context, account, name string) (*stream.Stream, error) {
	return sqlrows.Stream(x.db.QueryRowContext(ctx, `SELECT `+sqlrows.StreamCols+` FROM streams
		WHERE account = $1 AND name = $2 AND NOT deleted`, account, name))
}

// StreamByID finds a live stream.
func (x *Index) StreamByID(ctx context.Context, id int64) (*stream.Stream, error) {
	return sqlrows.Stream(x.db.QueryRowContext(ctx, `SELECT `+sqlrows.StreamCols+` FROM streams WHERE id = $1 AND NOT deleted`, id))
}

// ListStreams pages through an account's live streams by name.
func (x *Index) ListStreams(ctx context.Context, account, prefix, after string, limit int) ([]stream.Stream, error) {
	var a args
	q := `SELECT ` + sqlrows.StreamCols + ` FROM streams WHERE account = ` + a.add(account) + ` AND NOT deleted AND name > ` + a.add(after)
	if prefix != "" {
		// Names are [a-zA-Z0-9_.-] in byte order (collation "C"): a range scan is exact.
		q += ` AND name >= ` + a.add(prefix) + ` AND name < ` + a.add(prefix+"\x7f")
	}
	q += ` ORDER BY name LIMIT ` + a.add(limit)
	rows, err := x.db.QueryContext(ctx, q, a...)
	return sqlrows.Collect(rows, err, sqlrows.Stream)
}

// UpdateStream applies fn to the locked stream row in one transaction.
func (x *Index) UpdateStream(ctx context.Context, id int64, fn func(*stream.Stream) error) (*stream.Stream, error) {
	var out *stream.Stream
	err := x.tx(ctx, func(tx *sql.Tx) error {
		s, err := sqlrows.Stream(tx.QueryRowContext(ctx, `SELECT `+sqlrows.StreamCols+` FROM streams
			WHERE id = $1 AND NOT deleted FOR UPDATE`, id))
		if err != nil {
			return err
		}
		if err := fn(s); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE streams SET device_name=$1, media_type=$2, kms_key_id=$3, version=$4, status=$5,
			retention_hours=$6, storage_tier=$7 WHERE id=$8`, s.DeviceName, s.MediaType, s.KMSKeyID, s.Version,
			string(s.Status), s.RetentionHours, s.StorageTier, id)
		out = s
		return err
	})
	return out, err
}

// DeleteStream marks the stream deleted.
func (x *Index) DeleteStream(ctx context.Context, id int64) error {
	return x.tx(ctx, func(tx *sql.Tx) error {
		if err := sqlrows.Affected(tx.ExecContext(ctx, `UPDATE streams SET deleted = true, status = 'DELETING' WHERE id = $1 AND NOT deleted`, id)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM stream_tags WHERE stream_id = $1`, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM image_generation WHERE stream_id = $1`, id)
		return err
	})
}

// StreamTags returns the stream's tags.
func (x *Index) StreamTags(ctx context.Context, id int64) (map[string]string, error) {
	rows, err := x.db.QueryContext(ctx, `SELECT key, value FROM stream_tags WHERE stream_id = $1`, id)
	return sqlrows.CollectMap[string, string](rows, err)
}

// TagStream sets and removes tags, refusing a result over max tags. The
// stream row is locked so that two nodes tagging at once cannot both pass
// the count.
func (x *Index) TagStream(ctx context.Context, id int64, set map[string]string, remove []string, max int) error {
	return x.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `SELECT 1 FROM streams WHERE id = $1 FOR UPDATE`, id); err != nil {
			return err
		}
		for k, v := range set {
			if _, err := tx.ExecContext(ctx, `INSERT INTO stream_tags (stream_id, key, value) VALUES ($1,$2,$3)
				ON CONFLICT (stream_id, key) DO UPDATE SET value = excluded.value`, id, k, v); err != nil {
				return err
			}
		}
		if len(remove) > 0 {
			if _, err := tx.ExecContext(ctx, `DELETE FROM stream_tags WHERE stream_id = $1 AND key = ANY($2)`, id, remove); err != nil {
				return err
			}
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM stream_tags WHERE stream_id = $1`, id).Scan(&n); err != nil {
			return err
		}
		if n > max {
			return archive.ErrTooManyTags
		}
		return nil
	})
}

// PutHeader stores a track set once per distinct content and returns its id.
func (x *Index) PutHeader(ctx context.Context, streamID int64, data []byte) (int64, error) {
	sum := sha256.Sum256(data)
	var id int64
	// ON CONFLICT DO NOTHING returns no row when another writer (or an
	// earlier session) stored the same content: then read its id.
	err := x.db.QueryRowContext(ctx, `INSERT INTO headers (stream_id, sha256, data) VALUES ($1,$2,$3)
		ON CONFLICT (stream_id, sha256) DO NOTHING RETURNING id`, streamID, sum[:], data).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		err = x.db.QueryRowContext(ctx, `SELECT id FROM headers WHERE stream_id = $1 AND sha256 = $2`, streamID, sum[:]).Scan(&id)
	}
	return id, err
}

// Header returns a stored track set and its stream.
func (x *Index) Header(ctx context.Context, id int64) (int64, []byte, error) {
	var streamID int64
	var data []byte
	err := x.db.QueryRowContext(ctx, `SELECT stream_id, data FROM headers WHERE id = $1`, id).Scan(&streamID, &data)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, archive.ErrNotFound
	}
	return streamID, data, err
}

// LastHeader returns the newest track set stored for the stream.
func (x *Index) LastHeader(ctx context.Context, streamID int64) (int64, []byte, error) {
	var id int64
	var data []byte
	err := x.db.QueryRowContext(ctx, `SELECT id, data FROM headers WHERE stream_id = $1 ORDER BY id DESC LIMIT 1`, streamID).Scan(&id, &data)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, archive.ErrNotFound
	}
	return id, data, err
}

// ImageGenerationConfig returns the stream's configuration.
func (x *Index) ImageGenerationConfig(ctx context.Context, streamID int64) (*stream.ImageGenerationConfig, error) {
	return sqlrows.ImageGenerationConfig(x.db.QueryRowContext(ctx, `SELECT `+sqlrows.ImageGenerationCols+`
		FROM image_generation g JOIN streams s ON s.id = g.stream_id WHERE g.stream_id = $1 AND NOT s.deleted`, streamID))
}

// SetImageGenerationConfig replaces (or, with nil, deletes) the stream's
// configuration. The stream row is share-locked so that a concurrent
// DeleteStream cannot leave a configuration behind.
func (x *Index) SetImageGenerationConfig(ctx context.Context, streamID int64, c *stream.ImageGenerationConfig) error {
	return x.tx(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM streams WHERE id = $1 AND NOT deleted FOR SHARE`, streamID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return archive.ErrNotFound
		}
		if err != nil {
			return err
		}
		if c == nil {
			_, err := tx.ExecContext(ctx, `DELETE FROM image_generation WHERE stream_id = $1`, streamID)
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO image_generation (stream_id, status, selector, destination_uri,
			destination_region, sampling_ms, format, jpeg_quality, width_pixels, height_pixels) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)
			ON CONFLICT (stream_id) DO UPDATE SET status = excluded.status, selector = excluded.selector,
			destination_uri = excluded.destination_uri, destination_region = excluded.destination_region,
			sampling_ms = excluded.sampling_ms, format = excluded.format, jpeg_quality = excluded.jpeg_quality,
			width_pixels = excluded.width_pixels, height_pixels = excluded.height_pixels`,
			streamID, c.Status, c.ImageSelectorType, c.DestinationURI, c.DestinationRegion, c.SamplingIntervalMs,
			c.Format, c.JPEGQuality, c.WidthPixels, c.HeightPixels)
		return err
	})
}
