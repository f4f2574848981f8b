package pgindex

import (
	"cmp"
	"context"
	"database/sql"
	"slices"
	"time"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/archive/sqlrows"
)

type querier interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}

func queryOutbox(ctx context.Context, q querier, query string, args ...any) ([]archive.OutboxEntry, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	return sqlrows.Collect(rows, err, sqlrows.Outbox)
}

// PendingOutbox returns pending entries of a kind after an id. Only the
// node holding the kind's lease reads them (package doc).
func (x *Index) PendingOutbox(ctx context.Context, kind archive.TriggerKind, afterID int64, limit int) ([]archive.OutboxEntry, error) {
	return queryOutbox(ctx, x.db, `SELECT `+sqlrows.OutboxCols+` FROM outbox
		WHERE kind = $1 AND state = 'PENDING' AND id > $2 ORDER BY id LIMIT $3`, string(kind), afterID, limit)
}

// UpdateOutbox records attempt outcomes of pending rows in one statement.
func (x *Index) UpdateOutbox(ctx context.Context, updates []archive.OutboxUpdate) error {
	if len(updates) == 0 {
		return nil
	}
	n := len(updates)
	ids, attempts, next, last, done := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	states, errs, dests := make([]string, n), make([]string, n), make([]string, n)
	for i, u := range updates {
		ids[i], attempts[i], next[i], last[i], done[i] = u.ID, int64(u.Attempts), u.NextMs, u.LastAttemptMs, u.DoneMs
		states[i], errs[i], dests[i] = string(u.State), u.LastError, u.Destination
	}
	_, err := x.db.ExecContext(ctx, `UPDATE outbox o SET state = u.state, attempts = u.attempts, next_ms = u.next_ms,
		last_error = u.last_error, last_attempt_ms = u.last_attempt_ms, done_ms = u.done_ms, destination = u.destination
		FROM unnest($1::bigint[], $2::text[], $3::int[], $4::bigint[], $5::text[], $6::bigint[], $7::bigint[], $8::text[])
			AS u(id, state, attempts, next_ms, last_error, last_attempt_ms, done_ms, destination)
		WHERE o.id = u.id AND o.state = 'PENDING'`, ids, states, attempts, next, errs, last, done, dests)
	return err
}

// OutboxEntries runs an events query.
func (x *Index) OutboxEntries(ctx context.Context, q archive.OutboxQuery) ([]archive.OutboxEntry, error) {
	var a args
	s := `SELECT ` + sqlrows.OutboxCols + ` FROM outbox WHERE server_ms BETWEEN ` + a.add(q.StartMs) + ` AND ` + a.add(q.EndMs)
	if q.StreamID != 0 {
		s += ` AND stream_id = ` + a.add(q.StreamID)
	}
	if q.Kind != "" {
		s += ` AND kind = ` + a.add(string(q.Kind))
	}
	if q.State != "" {
		s += ` AND state = ` + a.add(string(q.State))
	}
	if q.AfterID != 0 {
		s += ` AND (server_ms, id) > (` + a.add(q.AfterMs) + `, ` + a.add(q.AfterID) + `)`
	}
	s += ` ORDER BY server_ms, id LIMIT ` + a.add(q.Limit)
	return queryOutbox(ctx, x.db, s, a...)
}

// OutboxEntry returns one entry.
func (x *Index) OutboxEntry(ctx context.Context, id int64) (*archive.OutboxEntry, error) {
	return sqlrows.Outbox(x.db.QueryRowContext(ctx, `SELECT `+sqlrows.OutboxCols+` FROM outbox WHERE id = $1`, id))
}

// RedriveOutbox makes dead entries pending again.
func (x *Index) RedriveOutbox(ctx context.Context, kind archive.TriggerKind, streamID int64, ids []int64, nowMs int64) ([]archive.OutboxEntry, error) {
	var a args
	s := `UPDATE outbox SET state = 'PENDING', attempts = 0, next_ms = ` + a.add(nowMs) + `, done_ms = 0
		WHERE kind = ` + a.add(string(kind)) + ` AND state = 'DEAD'`
	if streamID != 0 {
		s += ` AND stream_id = ` + a.add(streamID)
	}
	if len(ids) > 0 {
		s += ` AND id = ANY(` + a.add(ids) + `)`
	}
	out, err := queryOutbox(ctx, x.db, s+` RETURNING `+sqlrows.OutboxCols, a...)
	// RETURNING has no ORDER BY; callers get the rows in id order as from SQLite.
	slices.SortFunc(out, func(a, b archive.OutboxEntry) int { return cmp.Compare(a.ID, b.ID) })
	return out, err
}

// PruneOutbox deletes finished entries older than a time.
func (x *Index) PruneOutbox(ctx context.Context, doneBeforeMs int64, limit int) (int, error) {
	res, err := x.db.ExecContext(ctx, `DELETE FROM outbox WHERE id IN (SELECT id FROM outbox
		WHERE state IN ('DELIVERED', 'SKIPPED') AND done_ms < $1 LIMIT $2)`, doneBeforeMs, limit)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// NotificationConfig returns a stream's notification configuration.
func (x *Index) NotificationConfig(ctx context.Context, streamID int64) (*archive.NotificationConfig, error) {
	return sqlrows.NotificationConfig(x.db.QueryRowContext(ctx, `SELECT status, uri FROM notification_configs WHERE stream_id = $1`, streamID))
}

// SetNotificationConfig stores or (nil) deletes a stream's configuration.
func (x *Index) SetNotificationConfig(ctx context.Context, streamID int64, c *archive.NotificationConfig) error {
	if c == nil {
		_, err := x.db.ExecContext(ctx, `DELETE FROM notification_configs WHERE stream_id = $1`, streamID)
		return err
	}
	_, err := x.db.ExecContext(ctx, `INSERT INTO notification_configs (stream_id, status, uri, updated_ms) VALUES ($1,$2,$3,$4)
		ON CONFLICT (stream_id) DO UPDATE SET status = excluded.status, uri = excluded.uri, updated_ms = excluded.updated_ms`,
		streamID, c.Status, c.URI, time.Now().UnixMilli())
	return err
}
