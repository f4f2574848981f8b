package sqlindex

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/clipmeta"
)

// The clip records of the clip-metadata API live in the index database
// (table clips), so the embedded server needs no second store.

var _ clipmeta.Store = (*Index)(nil)

const clipCols = `id, client_id, device_id, stream_name, begin_ms, end_ms, duration_ms, created_ms`

func scanClip(row scanner) (*clipmeta.Clip, error) {
	var c clipmeta.Clip
	var durMs int64
	err := row.Scan(&c.ID, &c.ClientID, &c.DeviceID, &c.StreamName, &c.BeginMs, &c.EndMs, &durMs, &c.CreatedMs)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, archive.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	c.DurationSec = float64(durMs) / 1000
	return &c, nil
}

// PutClip upserts c on (client, device, stream, begin).
func (x *Index) PutClip(ctx context.Context, c *clipmeta.Clip) error {
	// Listings bound their scans by the longest clip: never store a longer one.
	if c.EndMs <= c.BeginMs || c.EndMs-c.BeginMs > clipmeta.MaxClipMs {
		return fmt.Errorf("clip %d..%d: the end must be after the begin, by at most %v", c.BeginMs, c.EndMs, clipmeta.MaxClip)
	}
	if c.DurationSec < 0 || c.DurationSec > float64(clipmeta.MaxClipMs) || math.IsNaN(c.DurationSec) {
		return fmt.Errorf("clip duration %v s is out of range", c.DurationSec)
	}
	id := c.ID
	if id == "" {
		id = clipmeta.ClipID(c.ClientID, c.DeviceID, c.StreamName, c.BeginMs)
	}
	return x.w.QueryRowContext(ctx, `INSERT INTO clips (`+clipCols+`) VALUES (?,?,?,?,?,?,?,?)
		ON CONFLICT (client_id, device_id, stream_name, begin_ms)
		DO UPDATE SET end_ms = excluded.end_ms, duration_ms = excluded.duration_ms
		RETURNING id, created_ms`,
		id, c.ClientID, c.DeviceID, c.StreamName, c.BeginMs, c.EndMs, int64(math.Round(c.DurationSec*1000)), c.CreatedMs,
	).Scan(&c.ID, &c.CreatedMs)
}

// GetClip finds the client's clip of the stream with exactly this range.
func (x *Index) GetClip(ctx context.Context, clientID, streamName string, beginMs, endMs int64) (*clipmeta.Clip, error) {
	return scanClip(x.queryRow(ctx, `SELECT `+clipCols+` FROM clips INDEXED BY clips_by_stream
		WHERE client_id = ? AND stream_name = ? AND begin_ms = ? AND end_ms = ?
		ORDER BY created_ms DESC, id LIMIT 1`, clientID, streamName, beginMs, endMs))
}

// ListClips pages through the client's clips that overlap [FromMs, ToMs].
func (x *Index) ListClips(ctx context.Context, q clipmeta.ListQuery) ([]clipmeta.Clip, error) {
	// A clip that overlaps the range begins at most MaxClipMs before it, so
	// the scan is a range of the index, not everything before ToMs.
	s := `SELECT ` + clipCols + ` FROM clips INDEXED BY `
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
	return collect(rows, err, scanClip)
}

// DeleteClip deletes one of the client's clips.
func (x *Index) DeleteClip(ctx context.Context, clientID, id string) error {
	res, err := x.w.ExecContext(ctx, `DELETE FROM clips WHERE id = ? AND client_id = ?`, id, clientID)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return archive.ErrNotFound
	}
	return nil
}
