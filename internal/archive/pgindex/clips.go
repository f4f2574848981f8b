package pgindex

import (
	"context"

	"github.com/kinema/kinema/internal/archive/sqlrows"
	"github.com/kinema/kinema/internal/clipmeta"
)

// The clip records of the clip-metadata API live in the index database, as
// in the embedded index, so a node needs no second store for them.

// PutClip upserts c on (client, device, stream, begin).
func (x *Index) PutClip(ctx context.Context, c *clipmeta.Clip) error {
	id, durMs, err := sqlrows.ClipRow(c)
	if err != nil {
		return err
	}
	return x.db.QueryRowContext(ctx, `INSERT INTO clips (`+sqlrows.ClipCols+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)
		ON CONFLICT (client_id, device_id, stream_name, begin_ms)
		DO UPDATE SET end_ms = excluded.end_ms, duration_ms = excluded.duration_ms
		RETURNING id, created_ms`,
		id, c.ClientID, c.DeviceID, c.StreamName, c.BeginMs, c.EndMs, durMs, c.CreatedMs,
	).Scan(&c.ID, &c.CreatedMs)
}

// GetClip finds the client's clip of the stream with exactly this range.
func (x *Index) GetClip(ctx context.Context, clientID, streamName string, beginMs, endMs int64) (*clipmeta.Clip, error) {
	return sqlrows.Clip(x.db.QueryRowContext(ctx, `SELECT `+sqlrows.ClipCols+` FROM clips
		WHERE client_id = $1 AND stream_name = $2 AND begin_ms = $3 AND end_ms = $4
		ORDER BY created_ms DESC, id LIMIT 1`, clientID, streamName, beginMs, endMs))
}

// ListClips pages through the client's clips that overlap [FromMs, ToMs].
func (x *Index) ListClips(ctx context.Context, q clipmeta.ListQuery) ([]clipmeta.Clip, error) {
	var a args
	s := `SELECT ` + sqlrows.ClipCols + ` FROM clips WHERE client_id = ` + a.add(q.ClientID)
	if q.DeviceID != "" {
		s += ` AND device_id = ` + a.add(q.DeviceID)
	}
	if q.StreamName != "" {
		s += ` AND stream_name = ` + a.add(q.StreamName)
	}
	// A clip that overlaps the range begins at most MaxClipMs before it, so
	// the scan is a range of an index, not everything before ToMs.
	s += ` AND begin_ms >= ` + a.add(q.FromMs-clipmeta.MaxClipMs) + ` AND begin_ms <= ` + a.add(q.ToMs) + ` AND end_ms >= ` + a.add(q.FromMs)
	if q.AfterID != "" {
		s += ` AND (begin_ms, id) > (` + a.add(q.AfterBeginMs) + `, ` + a.add(q.AfterID) + `)`
	}
	s += ` ORDER BY begin_ms, id LIMIT ` + a.add(q.Limit)
	rows, err := x.db.QueryContext(ctx, s, a...)
	return sqlrows.Collect(rows, err, sqlrows.Clip)
}

// DeleteClip deletes one of the client's clips.
func (x *Index) DeleteClip(ctx context.Context, clientID, id string) error {
	return sqlrows.Affected(x.db.ExecContext(ctx, `DELETE FROM clips WHERE id = $1 AND client_id = $2`, id, clientID))
}
