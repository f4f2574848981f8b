package sqlindex

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/archive/sqlrows"
	"github.com/kinema/kinema/internal/stream"
)

func (x *Index) queryFragments(ctx context.Context, q string, args ...any) ([]stream.Fragment, error) {
	rows, err := x.query(ctx, q, args...)
	return sqlrows.Collect(rows, err, sqlrows.Fragment)
}

// NewSegment registers a new, empty segment.
func (x *Index) NewSegment(ctx context.Context) (int64, error) {
	res, err := x.w.ExecContext(ctx, `INSERT INTO segments (created_ms) VALUES (?)`, time.Now().UnixMilli())
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// Segments lists every registered segment.
func (x *Index) Segments(ctx context.Context) ([]archive.SegmentInfo, error) {
	rows, err := x.query(ctx, `SELECT id, committed_bytes, live_fragments, created_ms FROM segments ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []archive.SegmentInfo
	for rows.Next() {
		var s archive.SegmentInfo
		if err := rows.Scan(&s.ID, &s.CommittedBytes, &s.LiveFragments, &s.CreatedMs); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// CommitFragments records a durable batch.
func (x *Index) CommitFragments(ctx context.Context, segmentID, end int64, frags []stream.Fragment) error {
	return x.tx(ctx, func(tx *sql.Tx) error {
		ins, err := tx.PrepareContext(ctx, `INSERT INTO fragments (`+sqlrows.FragmentCols+`) VALUES (?,?,?,?,?,?,?,?,?,?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		// Prepared only for a batch that needs them.
		var insTable, outbox *sql.Stmt
		defer func() {
			for _, st := range []*sql.Stmt{insTable, outbox} {
				if st != nil {
					st.Close()
				}
			}
		}()
		now := time.Now().UnixMilli()
		for _, f := range frags {
			tags := sqlrows.EncodeTags(f.Tags)
			if _, err := ins.ExecContext(ctx, int64(f.Number), f.StreamID, f.ProducerMs, f.ServerMs, f.DurationMs,
				f.HeaderID, segmentID, f.Location.Offset, f.SizeBytes, tags); err != nil {
				return err
			}
			if f.SampleTable != nil {
				if insTable == nil {
					if insTable, err = tx.PrepareContext(ctx, `INSERT INTO sample_tables (id, data) VALUES (?, ?)`); err != nil {
						return err
					}
				}
				if _, err := insTable.ExecContext(ctx, int64(f.Number), f.SampleTable); err != nil {
					return err
				}
			}
			for _, kind := range archive.Triggers(f.Tags) {
				if outbox == nil {
					if outbox, err = tx.PrepareContext(ctx, insertOutbox); err != nil {
						return err
					}
				}
				if _, err := outbox.ExecContext(ctx, string(kind), f.StreamID, int64(f.Number), f.ProducerMs, f.ServerMs, tags, now, now); err != nil {
					return err
				}
			}
		}
		return sqlrows.Affected(tx.ExecContext(ctx, `UPDATE segments SET committed_bytes = ?, live_fragments = live_fragments + ? WHERE id = ?`,
			end, len(frags), segmentID))
	})
}

// ReserveFragmentNumbers moves the durable high-water mark of issued numbers.
func (x *Index) ReserveFragmentNumbers(ctx context.Context, n int64) (stream.FragmentNumber, error) {
	var first int64
	err := x.tx(ctx, func(tx *sql.Tx) error {
		var hw sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'fragment_high_water'`).Scan(&hw)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		first = hw.Int64 + 1
		_, err = tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('fragment_high_water', ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, hw.Int64+n)
		return err
	})
	return stream.FragmentNumber(first), err
}

// Fragment finds one fragment of a live stream.
func (x *Index) Fragment(ctx context.Context, streamID int64, n stream.FragmentNumber) (*stream.Fragment, error) {
	return sqlrows.Fragment(x.queryRow(ctx, `SELECT `+sqlrows.FragmentCols+` FROM fragments WHERE id = ? AND stream_id = ?`, int64(n), streamID))
}

// Fragments runs a time-range query.
func (x *Index) Fragments(ctx context.Context, q archive.FragmentQuery) ([]stream.Fragment, error) {
	col := sqlrows.TimeColumn(q.Kind)
	var sb strings.Builder
	if q.Brief {
		sb.WriteString(`SELECT ` + sqlrows.BriefCols)
	} else {
		sb.WriteString(`SELECT ` + sqlrows.FragmentCols)
	}
	if q.SampleTables {
		sb.WriteString(`, (SELECT data FROM sample_tables t WHERE t.id = fragments.id)`)
	}
	sb.WriteString(` FROM fragments WHERE stream_id = ? AND ` + col + ` BETWEEN ? AND ?`)
	args := []any{q.StreamID, q.StartMs, q.EndMs}
	if q.AfterNumber != 0 {
		sb.WriteString(` AND (` + col + ` > ? OR (` + col + ` = ? AND id > ?))`)
		args = append(args, q.AfterMs, q.AfterMs, int64(q.AfterNumber))
	}
	sb.WriteString(` ORDER BY ` + col + `, id LIMIT ?`)
	args = append(args, q.Limit)
	scan, err := sqlrows.FragmentQueryScan(q)
	if err != nil {
		return nil, err
	}
	rows, err := x.query(ctx, sb.String(), args...)
	return sqlrows.Collect(rows, err, scan)
}

// FragmentsAfter returns fragments numbered above n, in number order.
func (x *Index) FragmentsAfter(ctx context.Context, streamID int64, n stream.FragmentNumber, limit int) ([]stream.Fragment, error) {
	return x.queryFragments(ctx, `SELECT `+sqlrows.FragmentCols+` FROM fragments WHERE stream_id = ? AND id > ? ORDER BY id LIMIT ?`,
		streamID, int64(n), limit)
}

// LatestFragments returns the newest n fragments, oldest first.
func (x *Index) LatestFragments(ctx context.Context, streamID int64, n int) ([]stream.Fragment, error) {
	fs, err := x.queryFragments(ctx, `SELECT `+sqlrows.FragmentCols+` FROM fragments WHERE stream_id = ? ORDER BY id DESC LIMIT ?`, streamID, n)
	for i, j := 0, len(fs)-1; i < j; i, j = i+1, j-1 {
		fs[i], fs[j] = fs[j], fs[i]
	}
	return fs, err
}

// CountFragments counts fragments starting in [fromMs, beforeMs) on a clock.
func (x *Index) CountFragments(ctx context.Context, streamID int64, kind archive.TimestampKind, fromMs, beforeMs int64, before stream.FragmentNumber) (int64, error) {
	col := sqlrows.TimeColumn(kind)
	var n int64
	err := x.queryRow(ctx, `SELECT count(*) FROM fragments WHERE stream_id = ? AND `+col+` >= ? AND `+col+` <= ?
		AND (`+col+` < ? OR id < ?)`, streamID, fromMs, beforeMs, beforeMs, int64(before)).Scan(&n)
	return n, err
}

// LatestFragment is the stream's last fragment in number order.
func (x *Index) LatestFragment(ctx context.Context, streamID int64) (*stream.Fragment, error) {
	return sqlrows.Fragment(x.queryRow(ctx, `SELECT `+sqlrows.FragmentCols+` FROM fragments WHERE stream_id = ? ORDER BY id DESC LIMIT 1`, streamID))
}

// FragmentAtOrBefore returns the fragment starting last at or before ms.
func (x *Index) FragmentAtOrBefore(ctx context.Context, streamID int64, kind archive.TimestampKind, ms int64) (*stream.Fragment, error) {
	col := sqlrows.TimeColumn(kind)
	return sqlrows.Fragment(x.r.QueryRowContext(ctx, `SELECT `+sqlrows.FragmentCols+` FROM fragments WHERE stream_id = ? AND `+col+` <= ?
		ORDER BY `+col+` DESC, id DESC LIMIT 1`, streamID, ms))
}

// ExpireFragments deletes old fragments and queues their bytes for reclaim,
// in one transaction so that no range is forgotten or freed twice.
func (x *Index) ExpireFragments(ctx context.Context, streamID int64, serverBeforeMs int64, limit int) (int, error) {
	var n int
	err := x.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id, segment_id, offset, size_bytes FROM fragments
			WHERE stream_id = ? AND server_ms < ? ORDER BY server_ms LIMIT ?`, streamID, serverBeforeMs, limit)
		if err != nil {
			return err
		}
		type victim struct{ id, seg, off, size int64 }
		var vs []victim
		for rows.Next() {
			var v victim
			if err := rows.Scan(&v.id, &v.seg, &v.off, &v.size); err != nil {
				rows.Close()
				return err
			}
			vs = append(vs, v)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, v := range vs {
			if _, err := tx.ExecContext(ctx, `DELETE FROM fragments WHERE id = ?`, v.id); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM sample_tables WHERE id = ?`, v.id); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO reclaims (segment_id, offset, length) VALUES (?,?,?)`, v.seg, v.off, v.size); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE segments SET live_fragments = live_fragments - 1 WHERE id = ?`, v.seg); err != nil {
				return err
			}
		}
		n = len(vs)
		return nil
	})
	return n, err
}

// RetentionStreams maps each live stream to its retention in hours.
func (x *Index) RetentionStreams(ctx context.Context) (map[int64]int, error) {
	rows, err := x.query(ctx, `SELECT id, retention_hours FROM streams WHERE deleted = 0`)
	return sqlrows.CollectMap[int64, int](rows, err)
}

// DeletedStreams lists streams whose purge is pending.
func (x *Index) DeletedStreams(ctx context.Context) ([]int64, error) {
	rows, err := x.query(ctx, `SELECT id FROM streams WHERE deleted = 1`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// PurgeStream forgets a deleted stream once its fragments are gone.
func (x *Index) PurgeStream(ctx context.Context, id int64) error {
	return x.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM fragments WHERE stream_id = ?`, id).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return errors.New("stream still has fragments")
		}
		for _, table := range []string{"headers", "outbox", "notification_configs"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE stream_id = ?`, id); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM streams WHERE id = ? AND deleted = 1`, id)
		return err
	})
}

// Reclaims returns byte ranges waiting to be freed.
func (x *Index) Reclaims(ctx context.Context, limit int) ([]archive.Reclaim, error) {
	rows, err := x.query(ctx, `SELECT id, segment_id, offset, length FROM reclaims ORDER BY segment_id, offset LIMIT ?`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []archive.Reclaim
	for rows.Next() {
		var r archive.Reclaim
		if err := rows.Scan(&r.ID, &r.SegmentID, &r.Offset, &r.Length); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// ReclaimsDone forgets ranges that were freed.
func (x *Index) ReclaimsDone(ctx context.Context, ids []int64) error {
	return x.tx(ctx, func(tx *sql.Tx) error {
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `DELETE FROM reclaims WHERE id = ?`, id); err != nil {
				return err
			}
		}
		return nil
	})
}

// DropSegment forgets an empty segment.
func (x *Index) DropSegment(ctx context.Context, id int64) error {
	return x.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM segments WHERE id = ? AND live_fragments <= 0`, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM reclaims WHERE segment_id = ?`, id)
		return err
	})
}

// GenerateFragments inserts g's rows with one INSERT ... SELECT over a
// recursive counter, inside SQLite: no row crosses the driver, so a
// benchmark fills 100 million rows at the speed of the B-trees. The
// table's indexes stay in place and are maintained row by row, as
// ingest's are.
func (x *Index) GenerateFragments(ctx context.Context, g archive.GeneratedFragments) error {
	if g.Count <= 0 || len(g.Streams) == 0 {
		return errors.New("generating fragments: the count and the streams must be positive")
	}
	ids, err := json.Marshal(g.Streams)
	if err != nil {
		return err
	}
	end := g.SegmentOffset + (g.Count-1)*g.Stride + g.Size
	n := int64(len(g.Streams))
	return x.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO fragments (`+sqlrows.FragmentCols+`)
			WITH RECURSIVE rows(r) AS (SELECT 0 UNION ALL SELECT r + 1 FROM rows WHERE r + 1 < ?),
				streams(k, id) AS MATERIALIZED (SELECT key, value FROM json_each(?))
			SELECT ? + r, streams.id, t - ?, t, ?, ?, ?, ? + r * ?, ?, NULL
			FROM (SELECT r, ? + (? + r) / ? * ? AS t FROM rows) AS g
			JOIN streams ON streams.k = (? + g.r) % ?
			ORDER BY r`,
			g.Count, string(ids), int64(g.First), g.ProducerLagMs, g.DurationMs, g.HeaderID, g.SegmentID, g.SegmentOffset, g.Stride, g.Size,
			g.T0Ms, g.Row0, n, g.DurationMs, g.Row0, n); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE segments SET committed_bytes = max(committed_bytes, ?), live_fragments = live_fragments + ? WHERE id = ?`,
			end, g.Count, g.SegmentID)
		return err
	})
}
