package pgindex

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/archive/sqlrows"
	"github.com/kinema/kinema/internal/stream"
)

// NewSegment registers a new, empty segment of this node.
func (x *Index) NewSegment(ctx context.Context) (int64, error) {
	var id int64
	err := x.db.QueryRowContext(ctx, `INSERT INTO segments (created_ms, node_id) VALUES ($1, $2) RETURNING id`,
		time.Now().UnixMilli(), x.node).Scan(&id)
	return id, err
}

// Segments lists every registered segment, of every node.
func (x *Index) Segments(ctx context.Context) ([]archive.SegmentInfo, error) {
	rows, err := x.db.QueryContext(ctx, `SELECT id, committed_bytes, live_fragments, created_ms, node_id FROM segments ORDER BY id`)
	return sqlrows.Collect(rows, err, func(r sqlrows.Scanner) (*archive.SegmentInfo, error) {
		var s archive.SegmentInfo
		return &s, r.Scan(&s.ID, &s.CommittedBytes, &s.LiveFragments, &s.CreatedMs, &s.Node)
	})
}

// CommitFragments records a durable batch. Each table gets one statement
// for the whole batch (arrays unnested server-side), so a commit costs a
// few round trips however many fragments it holds.
func (x *Index) CommitFragments(ctx context.Context, segmentID, end int64, frags []stream.Fragment) error {
	n := len(frags)
	var (
		ids, streams, producer, server, dur, hdr, segs, offs, sizes = make([]int64, n), make([]int64, n), make([]int64, n),
			make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		tags                 = make([][]byte, n)
		tableIDs             []int64
		tables               [][]byte
		obKinds              []string
		obStreams, obFrags   []int64
		obProducer, obServer []int64
		obTags               [][]byte
	)
	for i, f := range frags {
		ids[i], streams[i], producer[i], server[i], dur[i] = int64(f.Number), f.StreamID, f.ProducerMs, f.ServerMs, f.DurationMs
		hdr[i], segs[i], offs[i], sizes[i] = f.HeaderID, segmentID, f.Location.Offset, f.SizeBytes
		tags[i] = sqlrows.EncodeTags(f.Tags)
		if f.SampleTable != nil {
			tableIDs, tables = append(tableIDs, int64(f.Number)), append(tables, f.SampleTable)
		}
		for _, kind := range archive.Triggers(f.Tags) {
			obKinds, obStreams, obFrags = append(obKinds, string(kind)), append(obStreams, f.StreamID), append(obFrags, int64(f.Number))
			obProducer, obServer, obTags = append(obProducer, f.ProducerMs), append(obServer, f.ServerMs), append(obTags, tags[i])
		}
	}
	return x.tx(ctx, func(tx *sql.Tx) error {
		if n > 0 {
			if _, err := tx.ExecContext(ctx, `INSERT INTO fragments (`+sqlrows.FragmentCols+`)
				SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
					$7::bigint[], $8::bigint[], $9::bigint[], $10::bytea[])`,
				ids, streams, producer, server, dur, hdr, segs, offs, sizes, tags); err != nil {
				return err
			}
		}
		if len(tableIDs) > 0 {
			if _, err := tx.ExecContext(ctx, `INSERT INTO sample_tables (id, data) SELECT * FROM unnest($1::bigint[], $2::bytea[])`,
				tableIDs, tables); err != nil {
				return err
			}
		}
		if len(obKinds) > 0 {
			// Outbox ids must grow in commit order (see the package doc):
			// hold the outbox lock from taking the ids until the commit.
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(lockOutbox)); err != nil {
				return err
			}
			now := time.Now().UnixMilli()
			if _, err := tx.ExecContext(ctx, `INSERT INTO outbox (kind, stream_id, fragment, producer_ms, server_ms, tags, created_ms, next_ms)
				SELECT k, s, f, p, sv, t, $7, $7 FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bytea[])
					WITH ORDINALITY AS u(k, s, f, p, sv, t, i) ORDER BY i`,
				obKinds, obStreams, obFrags, obProducer, obServer, obTags, now); err != nil {
				return err
			}
		}
		// The segment must still be there: another node's janitor drops
		// empty segments it believes sealed, and a commit into one it
		// dropped would reference removed bytes.
		return sqlrows.Affected(tx.ExecContext(ctx, `UPDATE segments SET committed_bytes = $1, live_fragments = live_fragments + $2 WHERE id = $3`,
			end, n, segmentID))
	})
}

// ReserveFragmentNumbers moves the durable high-water mark of issued
// numbers in one statement: concurrent reservations (other nodes) queue on
// the counter row and never overlap.
func (x *Index) ReserveFragmentNumbers(ctx context.Context, n int64) (stream.FragmentNumber, error) {
	if n <= 0 {
		return 0, errors.New("reserving fragment numbers: the count must be positive")
	}
	var hw int64
	err := x.db.QueryRowContext(ctx, `INSERT INTO counters (name, value) VALUES ('fragment_high_water', $1)
		ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value RETURNING value`, n).Scan(&hw)
	return stream.FragmentNumber(hw - n + 1), err
}

func (x *Index) queryFragments(ctx context.Context, q string, args ...any) ([]stream.Fragment, error) {
	rows, err := x.db.QueryContext(ctx, q, args...)
	return sqlrows.Collect(rows, err, sqlrows.Fragment)
}

// Fragment finds one fragment of a stream.
func (x *Index) Fragment(ctx context.Context, streamID int64, n stream.FragmentNumber) (*stream.Fragment, error) {
	return sqlrows.Fragment(x.db.QueryRowContext(ctx, `SELECT `+sqlrows.FragmentCols+` FROM fragments WHERE id = $1 AND stream_id = $2`,
		int64(n), streamID))
}

// Fragments runs a time-range query.
func (x *Index) Fragments(ctx context.Context, q archive.FragmentQuery) ([]stream.Fragment, error) {
	scan, err := sqlrows.FragmentQueryScan(q)
	if err != nil {
		return nil, err
	}
	col := sqlrows.TimeColumn(q.Kind)
	cols := sqlrows.FragmentCols
	if q.Brief {
		cols = sqlrows.BriefCols
	}
	if q.SampleTables {
		cols += `, (SELECT data FROM sample_tables t WHERE t.id = fragments.id)`
	}
	var a args
	s := `SELECT ` + cols + ` FROM fragments WHERE stream_id = ` + a.add(q.StreamID) +
		` AND ` + col + ` BETWEEN ` + a.add(q.StartMs) + ` AND ` + a.add(q.EndMs)
	if q.AfterNumber != 0 {
		s += ` AND (` + col + `, id) > (` + a.add(q.AfterMs) + `, ` + a.add(int64(q.AfterNumber)) + `)`
	}
	s += ` ORDER BY ` + col + `, id LIMIT ` + a.add(q.Limit)
	rows, err := x.db.QueryContext(ctx, s, a...)
	return sqlrows.Collect(rows, err, scan)
}

// FragmentsAfter returns fragments numbered above n, in number order.
func (x *Index) FragmentsAfter(ctx context.Context, streamID int64, n stream.FragmentNumber, limit int) ([]stream.Fragment, error) {
	return x.queryFragments(ctx, `SELECT `+sqlrows.FragmentCols+` FROM fragments WHERE stream_id = $1 AND id > $2 ORDER BY id LIMIT $3`,
		streamID, int64(n), limit)
}

// LatestFragments returns the newest n fragments, oldest first.
func (x *Index) LatestFragments(ctx context.Context, streamID int64, n int) ([]stream.Fragment, error) {
	return x.queryFragments(ctx, `SELECT * FROM (SELECT `+sqlrows.FragmentCols+` FROM fragments WHERE stream_id = $1
		ORDER BY id DESC LIMIT $2) newest ORDER BY id`, streamID, n)
}

// CountFragments counts fragments before (beforeMs, before) from fromMs on a clock.
func (x *Index) CountFragments(ctx context.Context, streamID int64, kind archive.TimestampKind, fromMs, beforeMs int64, before stream.FragmentNumber) (int64, error) {
	col := sqlrows.TimeColumn(kind)
	var n int64
	err := x.db.QueryRowContext(ctx, `SELECT count(*) FROM fragments WHERE stream_id = $1 AND `+col+` >= $2
		AND (`+col+`, id) < ($3, $4)`, streamID, fromMs, beforeMs, int64(before)).Scan(&n)
	return n, err
}

// LatestFragment is the stream's last fragment in number order.
func (x *Index) LatestFragment(ctx context.Context, streamID int64) (*stream.Fragment, error) {
	return sqlrows.Fragment(x.db.QueryRowContext(ctx, `SELECT `+sqlrows.FragmentCols+` FROM fragments WHERE stream_id = $1
		ORDER BY id DESC LIMIT 1`, streamID))
}

// FragmentAtOrBefore returns the fragment starting last at or before ms.
func (x *Index) FragmentAtOrBefore(ctx context.Context, streamID int64, kind archive.TimestampKind, ms int64) (*stream.Fragment, error) {
	col := sqlrows.TimeColumn(kind)
	return sqlrows.Fragment(x.db.QueryRowContext(ctx, `SELECT `+sqlrows.FragmentCols+` FROM fragments WHERE stream_id = $1 AND `+col+` <= $2
		ORDER BY `+col+` DESC, id DESC LIMIT 1`, streamID, ms))
}

// ExpireFragments deletes old fragments and queues their bytes for reclaim
// in one statement. Two nodes expiring the same stream at once cannot
// free a range twice: a row one of them deleted is skipped by the other.
func (x *Index) ExpireFragments(ctx context.Context, streamID int64, serverBeforeMs int64, limit int) (int, error) {
	var n int
	err := x.db.QueryRowContext(ctx, `WITH
		gone AS (DELETE FROM fragments WHERE id IN (SELECT id FROM fragments WHERE stream_id = $1 AND server_ms < $2
			ORDER BY server_ms LIMIT $3) RETURNING id, segment_id, "offset", size_bytes),
		tables AS (DELETE FROM sample_tables WHERE id IN (SELECT id FROM gone)),
		queued AS (INSERT INTO reclaims (segment_id, "offset", length) SELECT segment_id, "offset", size_bytes FROM gone),
		counted AS (UPDATE segments SET live_fragments = live_fragments - c.n
			FROM (SELECT segment_id, count(*) AS n FROM gone GROUP BY segment_id) c WHERE segments.id = c.segment_id)
		SELECT count(*) FROM gone`, streamID, serverBeforeMs, limit).Scan(&n)
	return n, err
}

// RetentionStreams maps each live stream to its retention in hours.
func (x *Index) RetentionStreams(ctx context.Context) (map[int64]int, error) {
	rows, err := x.db.QueryContext(ctx, `SELECT id, retention_hours FROM streams WHERE NOT deleted`)
	return sqlrows.CollectMap[int64, int](rows, err)
}

// DeletedStreams lists streams whose purge is pending.
func (x *Index) DeletedStreams(ctx context.Context) ([]int64, error) {
	return x.ids(ctx, `SELECT id FROM streams WHERE deleted ORDER BY id`)
}

func (x *Index) ids(ctx context.Context, q string, args ...any) ([]int64, error) {
	rows, err := x.db.QueryContext(ctx, q, args...)
	return sqlrows.Collect(rows, err, func(r sqlrows.Scanner) (*int64, error) {
		var id int64
		return &id, r.Scan(&id)
	})
}

// PurgeStream forgets a deleted stream once its fragments are gone.
func (x *Index) PurgeStream(ctx context.Context, id int64) error {
	return x.tx(ctx, func(tx *sql.Tx) error {
		var left bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM fragments WHERE stream_id = $1)`, id).Scan(&left); err != nil {
			return err
		}
		if left {
			return errors.New("stream still has fragments")
		}
		for _, table := range []string{"headers", "outbox", "notification_configs"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE stream_id = $1`, id); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM streams WHERE id = $1 AND deleted`, id)
		return err
	})
}

// Reclaims returns byte ranges waiting to be freed.
func (x *Index) Reclaims(ctx context.Context, limit int) ([]archive.Reclaim, error) {
	rows, err := x.db.QueryContext(ctx, `SELECT id, segment_id, "offset", length FROM reclaims ORDER BY segment_id, "offset" LIMIT $1`, limit)
	return sqlrows.Collect(rows, err, func(r sqlrows.Scanner) (*archive.Reclaim, error) {
		var c archive.Reclaim
		return &c, r.Scan(&c.ID, &c.SegmentID, &c.Offset, &c.Length)
	})
}

// ReclaimsDone forgets ranges that were freed.
func (x *Index) ReclaimsDone(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := x.db.ExecContext(ctx, `DELETE FROM reclaims WHERE id = ANY($1)`, ids)
	return err
}

// DropSegment forgets an empty segment.
func (x *Index) DropSegment(ctx context.Context, id int64) error {
	return x.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM segments WHERE id = $1 AND live_fragments <= 0`, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM reclaims WHERE segment_id = $1`, id)
		return err
	})
}

// GenerateFragments inserts g's rows with one INSERT ... SELECT over
// generate_series, so the rows never cross the network: the fill of a
// benchmark at 100 million rows takes minutes, not an hour. The table's
// indexes stay in place and are maintained row by row, as ingest's are.
func (x *Index) GenerateFragments(ctx context.Context, g archive.GeneratedFragments) error {
	if g.Count <= 0 || len(g.Streams) == 0 {
		return errors.New("generating fragments: the count and the streams must be positive")
	}
	end := g.SegmentOffset + (g.Count-1)*g.Stride + g.Size
	return x.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO fragments (`+sqlrows.FragmentCols+`)
			SELECT $1::bigint + r, ($2::bigint[])[(($3::bigint + r) % $4::bigint) + 1], t - $5::bigint, t, $6::bigint,
				$7::bigint, $8::bigint, $9::bigint + r * $10::bigint, $11::bigint, NULL::bytea
			FROM generate_series(0::bigint, $12::bigint - 1) AS r,
				LATERAL (SELECT $13::bigint + ($3::bigint + r) / $4::bigint * $6::bigint AS t) AS ts`,
			int64(g.First), g.Streams, g.Row0, int64(len(g.Streams)), g.ProducerLagMs, g.DurationMs, g.HeaderID, g.SegmentID,
			g.SegmentOffset, g.Stride, g.Size, g.Count, g.T0Ms); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE segments SET committed_bytes = greatest(committed_bytes, $1), live_fragments = live_fragments + $2 WHERE id = $3`,
			end, g.Count, g.SegmentID)
		return err
	})
}
