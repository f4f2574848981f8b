package sqlindex

import (
	"context"

	"github.com/kinema/kinema/internal/archive/sqlrows"
	"github.com/kinema/kinema/internal/clipmeta"
)

// The clip records of the clip-metadata API live in the index database
// (table clips), so the embedded server needs no second store.

var _ clipmeta.Store = (*Index)(nil)

// PutClip upserts c on (client, device, stream, begin).
func (x *Index) PutClip(ctx context.Context, c *clipmeta.Clip) error {
	id, durMs, err := sqlrows.ClipRow(c)
	if err != nil {
		return err
	}
	return x.w.QueryRowContext(ctx, `INSERT INTO clips (`+sqlrows.ClipCols+`) VALUES (?,?,?,?,?,?,?,?)
		ON CONFLICT (client_id, device_id, stream_name, begin_ms)
		DO UPDATE SET end_ms = excluded.end_ms, duration_ms = excluded.duration_ms
		RETURNING id, created_ms`,
		id, c.ClientID, c.DeviceID, c.StreamName, c.BeginMs, c.EndMs, durMs, c.CreatedMs,
	).Scan(&c.ID, &c.CreatedMs)
}

// GetClip finds the client's clip of the stream with exactly this range.
func (x *Index) GetClip(ctx context.Context, clientID, streamName string, beginMs, endMs int64) (*clipmeta.Clip, error) {
	return sqlrows.Clip(x.queryRow(ctx, `SELECT `+sqlrows.ClipCols+` FROM clips INDEXED BY clips_by_stream
		WHERE client_id = ? AND stream_name = ? AND begin_ms = ? AND end_ms = ?
		ORDER BY created_ms DESC, id LIMIT 1`, clientID, streamName, beginMs, endMs))
}

// ListClips pages through the client's clips that overlap [FromMs, ToMs].
func (x *Index) ListClips(ctx context.Context, q clipmeta.ListQuery) ([]clipmeta.Clip, error) {
	// A clip that overlaps the range begins at most MaxClipMs before it, so
	// the scan is a range of the index, not everything before ToMs.
	s := `SELECT ` + sqlrows.ClipCols + ` FROM clips INDEXED BY `
	args := []any{q.ClientID}
	switch {
	case q.DeviceID != "" && q.StreamName != "":
		s += `clips_key WHERE client_id = ? AND device_id = ? AND stream_name = ?`
		args = append(args, q.DeviceID, q.StreamName)
	case q.DeviceID != "":
		s += `clips_by_device WHERE client_id = ? AND device_id = ?`
		args = append(args, q.DeviceID)
	case q.StreamName != "":
		s += `clips_by_stream WHERE client_id = ? AND stream_name = ?`
		args = append(args, q.StreamName)
	default:
		s += `clips_by_client WHERE client_id = ?`
	}
	s += ` AND begin_ms >= ? AND begin_ms <= ? AND end_ms >= ?`
	args = append(args, q.FromMs-clipmeta.MaxClipMs, q.ToMs, q.FromMs)
	if q.AfterID != "" {
		s += ` AND (begin_ms, id) > (?, ?)`
		args = append(args, q.AfterBeginMs, q.AfterID)
	}
	s += ` ORDER BY begin_ms, id LIMIT ?`
	args = append(args, q.Limit)
	rows, err := x.query(ctx, s, args...)
	return sqlrows.Collect(rows, err, sqlrows.Clip)
}

// DeleteClip deletes one of the client's clips.
func (x *Index) DeleteClip(ctx context.Context, clientID, id string) error {
	return sqlrows.Affected(x.w.ExecContext(ctx, `DELETE FROM clips WHERE id = ? AND client_id = ?`, id, clientID))
}
