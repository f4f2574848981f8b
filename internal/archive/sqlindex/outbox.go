package sqlindex

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/archive/sqlrows"
)

const insertOutbox = `INSERT INTO outbox (kind, stream_id, fragment, producer_ms, server_ms, tags, created_ms, next_ms)
	VALUES (?,?,?,?,?,?,?,?)`

func queryOutbox(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string, args ...any) ([]archive.OutboxEntry, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	return sqlrows.Collect(rows, err, sqlrows.Outbox)
}

// PendingOutbox returns pending entries of a kind after an id.
func (x *Index) PendingOutbox(ctx context.Context, kind archive.TriggerKind, afterID int64, limit int) ([]archive.OutboxEntry, error) {
	return queryOutbox(ctx, x.r, `SELECT `+sqlrows.OutboxCols+` FROM outbox INDEXED BY outbox_pending
		WHERE kind = ? AND state = 'PENDING' AND id > ? ORDER BY id LIMIT ?`, string(kind), afterID, limit)
}

// UpdateOutbox records attempt outcomes of pending rows in one transaction.
func (x *Index) UpdateOutbox(ctx context.Context, updates []archive.OutboxUpdate) error {
	if len(updates) == 0 {
		return nil
	}
	return x.tx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `UPDATE outbox SET state = ?, attempts = ?, next_ms = ?, last_error = ?,
			last_attempt_ms = ?, done_ms = ?, destination = ? WHERE id = ? AND state = 'PENDING'`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, u := range updates {
			if _, err := st.ExecContext(ctx, string(u.State), u.Attempts, u.NextMs, u.LastError, u.LastAttemptMs, u.DoneMs,
				u.Destination, u.ID); err != nil {
				return err
			}
		}
		return nil
	})
}

// OutboxEntries runs an events query.
func (x *Index) OutboxEntries(ctx context.Context, q archive.OutboxQuery) ([]archive.OutboxEntry, error) {
	var sb strings.Builder
	var args []any
	sb.WriteString(`SELECT ` + sqlrows.OutboxCols + ` FROM outbox WHERE server_ms BETWEEN ? AND ?`)
	args = append(args, q.StartMs, q.EndMs)
	if q.StreamID != 0 {
		sb.WriteString(` AND stream_id = ?`)
		args = append(args, q.StreamID)
	}
	if q.Kind != "" {
		sb.WriteString(` AND kind = ?`)
		args = append(args, string(q.Kind))
	}
	if q.State != "" {
		sb.WriteString(` AND state = ?`)
		args = append(args, string(q.State))
	}
	if q.AfterID != 0 {
		sb.WriteString(` AND (server_ms > ? OR (server_ms = ? AND id > ?))`)
		args = append(args, q.AfterMs, q.AfterMs, q.AfterID)
	}
	sb.WriteString(` ORDER BY server_ms, id LIMIT ?`)
	args = append(args, q.Limit)
	return queryOutbox(ctx, x.r, sb.String(), args...)
}

// OutboxEntry returns one entry.
func (x *Index) OutboxEntry(ctx context.Context, id int64) (*archive.OutboxEntry, error) {
	return sqlrows.Outbox(x.r.QueryRowContext(ctx, `SELECT `+sqlrows.OutboxCols+` FROM outbox WHERE id = ?`, id))
}

// RedriveOutbox makes dead entries pending again.
func (x *Index) RedriveOutbox(ctx context.Context, kind archive.TriggerKind, streamID int64, ids []int64, nowMs int64) ([]archive.OutboxEntry, error) {
	var out []archive.OutboxEntry
	err := x.tx(ctx, func(tx *sql.Tx) error {
		q := `UPDATE outbox SET state = 'PENDING', attempts = 0, next_ms = ?, done_ms = 0
			WHERE kind = ? AND state = 'DEAD'`
		args := []any{nowMs, string(kind)}
		if streamID != 0 {
			q += ` AND stream_id = ?`
			args = append(args, streamID)
		}
		if len(ids) > 0 {
			q += ` AND id IN (` + strings.TrimSuffix(strings.Repeat("?,", len(ids)), ",") + `)`
			for _, id := range ids {
				args = append(args, id)
			}
		}
		var err error
		out, err = queryOutbox(ctx, tx, q+` RETURNING `+sqlrows.OutboxCols, args...)
		return err
	})
	return out, err
}

// PruneOutbox deletes finished entries older than a time.
func (x *Index) PruneOutbox(ctx context.Context, doneBeforeMs int64, limit int) (int, error) {
	res, err := x.w.ExecContext(ctx, `DELETE FROM outbox WHERE id IN (SELECT id FROM outbox INDEXED BY outbox_done
		WHERE state IN ('DELIVERED', 'SKIPPED') AND done_ms < ? LIMIT ?)`, doneBeforeMs, limit)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// NotificationConfig returns a stream's notification configuration.
func (x *Index) NotificationConfig(ctx context.Context, streamID int64) (*archive.NotificationConfig, error) {
	return sqlrows.NotificationConfig(x.r.QueryRowContext(ctx, `SELECT status, uri FROM notification_configs WHERE stream_id = ?`, streamID))
}

// SetNotificationConfig stores or (nil) deletes a stream's configuration.
func (x *Index) SetNotificationConfig(ctx context.Context, streamID int64, c *archive.NotificationConfig) error {
	if c == nil {
		_, err := x.w.ExecContext(ctx, `DELETE FROM notification_configs WHERE stream_id = ?`, streamID)
		return err
	}
	_, err := x.w.ExecContext(ctx, `INSERT INTO notification_configs (stream_id, status, uri, updated_ms) VALUES (?,?,?,?)
		ON CONFLICT (stream_id) DO UPDATE SET status = excluded.status, uri = excluded.uri, updated_ms = excluded.updated_ms`,
		streamID, c.Status, c.URI, time.Now().UnixMilli())
	return err
}
