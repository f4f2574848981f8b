// Package sqlrows owns what the SQL indexes (sqlindex on SQLite, pgindex on
// PostgreSQL) have in common: the column lists, the row-to-struct scanning,
// the fragment tag encoding and the checks on rows before they are stored.
// The two dialects differ in their statements (placeholders, upserts,
// identities, locking), so each index writes its own SQL; what a row means
// is defined once, here, so the backends cannot drift apart on it.
package sqlrows

import (
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/clipmeta"
	"github.com/kinema/kinema/internal/stream"
)

// Scanner is a *sql.Row or *sql.Rows.
type Scanner interface{ Scan(...any) error }

// ErrRow is a Scanner that fails with err: a row whose query could not run.
type ErrRow struct{ Err error }

func (r ErrRow) Scan(...any) error { return r.Err }

// notFound maps "no row" to archive.ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return archive.ErrNotFound
	}
	return err
}

// Collect scans every row of a query (run with err) into a slice and
// closes the rows.
func Collect[T any](rows *sql.Rows, err error, scan func(Scanner) (*T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *v)
	}
	return out, rows.Err()
}

// StreamCols are the columns Stream scans.
const StreamCols = `id, account, region, name, device_name, media_type, kms_key_id, version, status, created_ms, retention_hours, storage_tier`

// Stream scans StreamCols.
func Stream(row Scanner) (*stream.Stream, error) {
	var s stream.Stream
	var created int64
	var status string
	err := row.Scan(&s.ID, &s.Account, &s.Region, &s.Name, &s.DeviceName, &s.MediaType, &s.KMSKeyID,
		&s.Version, &status, &created, &s.RetentionHours, &s.StorageTier)
	if err != nil {
		return nil, notFound(err)
	}
	s.Status = stream.Status(status)
	s.Created = time.UnixMilli(created)
	return &s, nil
}

// FragmentCols are the columns Fragment scans. "offset" is quoted: it is a
// keyword in PostgreSQL, and SQLite accepts the quoted form too.
const FragmentCols = `id, stream_id, producer_ms, server_ms, duration_ms, header_id, segment_id, "offset", size_bytes, tags`

// BriefCols are the columns of a FragmentQuery.Brief.
const BriefCols = `id, stream_id, producer_ms, server_ms, duration_ms, header_id, size_bytes`

// Fragment scans FragmentCols.
func Fragment(row Scanner) (*stream.Fragment, error) {
	return fragmentCols(row)
}

// FragmentWithTable scans FragmentCols followed by the sample table.
func FragmentWithTable(row Scanner) (*stream.Fragment, error) {
	var table []byte
	f, err := fragmentCols(row, &table)
	if err == nil {
		f.SampleTable = table
	}
	return f, err
}

// BriefFragment scans BriefCols.
func BriefFragment(row Scanner) (*stream.Fragment, error) {
	var f stream.Fragment
	if err := row.Scan(&f.Number, &f.StreamID, &f.ProducerMs, &f.ServerMs, &f.DurationMs, &f.HeaderID, &f.SizeBytes); err != nil {
		return nil, notFound(err)
	}
	return &f, nil
}

func fragmentCols(row Scanner, extra ...any) (*stream.Fragment, error) {
	var f stream.Fragment
	var tags []byte
	err := row.Scan(append([]any{&f.Number, &f.StreamID, &f.ProducerMs, &f.ServerMs, &f.DurationMs, &f.HeaderID,
		&f.Location.SegmentID, &f.Location.Offset, &f.SizeBytes, &tags}, extra...)...)
	if err != nil {
		return nil, notFound(err)
	}
	f.Location.Length = f.SizeBytes
	if f.Tags, err = DecodeTags(tags); err != nil {
		return nil, err
	}
	return &f, nil
}

// FragmentQueryScan picks the scanner of a time-range query's columns and
// refuses combinations no index serves.
func FragmentQueryScan(q archive.FragmentQuery) (func(Scanner) (*stream.Fragment, error), error) {
	switch {
	case q.Brief && q.SampleTables:
		return nil, errors.New("a Brief fragment query cannot ask for sample tables")
	case q.Brief:
		return BriefFragment, nil
	case q.SampleTables:
		return FragmentWithTable, nil
	}
	return Fragment, nil
}

// TimeColumn is the fragments column of a clock (each has its own index).
func TimeColumn(kind archive.TimestampKind) string {
	if kind == archive.ProducerTimestamp {
		return "producer_ms"
	}
	return "server_ms"
}

// OutboxCols are the columns Outbox scans.
const OutboxCols = `id, kind, stream_id, fragment, producer_ms, server_ms, tags, created_ms, state, attempts, next_ms,
	last_error, last_attempt_ms, done_ms, destination`

// Outbox scans OutboxCols.
func Outbox(row Scanner) (*archive.OutboxEntry, error) {
	var e archive.OutboxEntry
	var kind, state string
	var tags []byte
	err := row.Scan(&e.ID, &kind, &e.StreamID, &e.Fragment, &e.ProducerMs, &e.ServerMs, &tags, &e.CreatedMs, &state,
		&e.Attempts, &e.NextMs, &e.LastError, &e.LastAttemptMs, &e.DoneMs, &e.Destination)
	if err != nil {
		return nil, notFound(err)
	}
	e.Kind, e.State = archive.TriggerKind(kind), archive.OutboxState(state)
	if e.Tags, err = DecodeTags(tags); err != nil {
		return nil, err
	}
	return &e, nil
}

// ClipCols are the columns Clip scans.
const ClipCols = `id, client_id, device_id, stream_name, begin_ms, end_ms, duration_ms, created_ms`

// Clip scans ClipCols.
func Clip(row Scanner) (*clipmeta.Clip, error) {
	var c clipmeta.Clip
	var durMs int64
	err := row.Scan(&c.ID, &c.ClientID, &c.DeviceID, &c.StreamName, &c.BeginMs, &c.EndMs, &durMs, &c.CreatedMs)
	if err != nil {
		return nil, notFound(err)
	}
	c.DurationSec = float64(durMs) / 1000
	return &c, nil
}

// ClipRow checks a clip before it is stored and returns its id (derived
// from its key when c has none) and its duration in whole milliseconds.
func ClipRow(c *clipmeta.Clip) (id string, durationMs int64, err error) {
	// Listings bound their scans by the longest clip: never store a longer one.
	if c.EndMs <= c.BeginMs || c.EndMs-c.BeginMs > clipmeta.MaxClipMs {
		return "", 0, fmt.Errorf("clip %d..%d: the end must be after the begin, by at most %v", c.BeginMs, c.EndMs, clipmeta.MaxClip)
	}
	if c.DurationSec < 0 || c.DurationSec > float64(clipmeta.MaxClipMs) || math.IsNaN(c.DurationSec) {
		return "", 0, fmt.Errorf("clip duration %v s is out of range", c.DurationSec)
	}
	id = c.ID
	if id == "" {
		id = clipmeta.ClipID(c.ClientID, c.DeviceID, c.StreamName, c.BeginMs)
	}
	return id, int64(math.Round(c.DurationSec * 1000)), nil
}

// CollectMap scans two-column rows (run with err) into a map and closes
// the rows: stream tags, retention by stream.
func CollectMap[K comparable, V any](rows *sql.Rows, err error) (map[K]V, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[K]V{}
	for rows.Next() {
		var k K
		var v V
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, rows.Err()
}

// Affected turns the result of a statement that must change a row into
// archive.ErrNotFound when it changed none.
func Affected(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return archive.ErrNotFound
	}
	return nil
}

// ImageGenerationCols are the image_generation columns (aliased g) that
// ImageGenerationConfig scans.
const ImageGenerationCols = `g.status, g.selector, g.destination_uri, g.destination_region, g.sampling_ms,
	g.format, g.jpeg_quality, g.width_pixels, g.height_pixels`

// ImageGenerationConfig scans ImageGenerationCols.
func ImageGenerationConfig(row Scanner) (*stream.ImageGenerationConfig, error) {
	var c stream.ImageGenerationConfig
	err := row.Scan(&c.Status, &c.ImageSelectorType, &c.DestinationURI, &c.DestinationRegion, &c.SamplingIntervalMs,
		&c.Format, &c.JPEGQuality, &c.WidthPixels, &c.HeightPixels)
	if err != nil {
		return nil, notFound(err)
	}
	return &c, nil
}

// NotificationConfig scans status, uri.
func NotificationConfig(row Scanner) (*archive.NotificationConfig, error) {
	var c archive.NotificationConfig
	if err := row.Scan(&c.Status, &c.URI); err != nil {
		return nil, notFound(err)
	}
	return &c, nil
}
