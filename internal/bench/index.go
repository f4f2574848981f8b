package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/stream"
)

// IndexConfig shapes `kinema bench index`: an index filled with generated
// fragment rows, then the queries playback and listing make, timed.
type IndexConfig struct {
	Rows       int64 // fragment rows to generate (on top of what is there)
	Streams    int   // rows are spread round-robin over this many streams
	FragmentMs int64 // fragment length: consecutive rows of a stream are this far apart
	Queries    int   // timed calls of each query
	Batch      int   // rows per CommitFragments
	// Existing times the queries on rows an earlier run filled (with the
	// same Rows, Streams and FragmentMs) and writes nothing.
	Existing bool
	// Commit fills through CommitFragments even when the index can
	// generate rows itself (GenerateFragments): ingest's own path,
	// at tens of thousands of rows per second.
	Commit bool
}

// fragmentGenerator is an index that inserts generated rows itself
// (pgindex, sqlindex): no row crosses the driver.
type fragmentGenerator interface {
	GenerateFragments(ctx context.Context, g archive.GeneratedFragments) error
}

// generateChunk is the rows per GenerateFragments transaction: large
// enough that the statement's cost dwarfs its round trip, small enough
// to report progress.
const generateChunk = 1_000_000

// IndexResult holds the fill rate and each query's latency.
type IndexResult struct {
	Rows       int64
	Fill       time.Duration
	Generated  bool // filled inside the database (GenerateFragments), not through CommitFragments
	Queries    []QueryLatency
	SpanPerCam time.Duration // history each stream holds
	Vacuum     time.Duration // VACUUM ANALYZE after the fill, where the backend has one
}

// QueryLatency is one query's latency over IndexConfig.Queries calls.
type QueryLatency struct {
	Name          string
	P50, P99, Max time.Duration
}

// RunIndex fills x and times the queries. progress gets a line now and then.
func RunIndex(ctx context.Context, x archive.Index, cfg IndexConfig, progress io.Writer) (*IndexResult, error) {
	if cfg.Streams <= 0 || cfg.Rows <= 0 || cfg.Queries <= 0 {
		return nil, fmt.Errorf("bench index: rows, streams and queries must be positive")
	}
	cfg.Batch = max(cfg.Batch, 1)
	cfg.FragmentMs = max(cfg.FragmentMs, 1)
	res := &IndexResult{Rows: cfg.Rows}
	var ids []int64
	var err error
	if cfg.Existing {
		ids, err = benchStreams(ctx, x, cfg.Streams)
	} else {
		ids, err = fillIndex(ctx, x, cfg, res, progress)
	}
	if err != nil {
		return nil, err
	}
	perStream := cfg.Rows / int64(cfg.Streams)
	res.SpanPerCam = time.Duration(perStream*cfg.FragmentMs) * time.Millisecond
	span := max(perStream*cfg.FragmentMs, 1)
	pick := func() (int64, int64) { return ids[rand.IntN(len(ids))], benchT0 + rand.Int64N(span) }
	hour := int64(time.Hour / time.Millisecond)
	queries := []struct {
		name string
		run  func(id, ms int64) error
	}{
		{"Fragment (by number)", func(id, ms int64) error {
			f, err := x.FragmentAtOrBefore(ctx, id, archive.ServerTimestamp, ms)
			if err != nil {
				return err
			}
			_, err = x.Fragment(ctx, id, f.Number)
			return err
		}},
		{"FragmentAtOrBefore (a point in time)", func(id, ms int64) error {
			_, err := x.FragmentAtOrBefore(ctx, id, archive.ProducerTimestamp, ms)
			return err
		}},
		{"Fragments, 1 h of one stream, brief (a playlist)", func(id, ms int64) error {
			_, err := x.Fragments(ctx, archive.FragmentQuery{StreamID: id, Kind: archive.ProducerTimestamp, StartMs: ms, EndMs: ms + hour, Limit: 1000, Brief: true})
			return err
		}},
		{"Fragments, 100 of one stream (ListFragments page)", func(id, ms int64) error {
			_, err := x.Fragments(ctx, archive.FragmentQuery{StreamID: id, Kind: archive.ServerTimestamp, StartMs: ms, EndMs: ms + 24*hour, Limit: 100})
			return err
		}},
		{"CountFragments (playlist position)", func(id, ms int64) error {
			_, err := x.CountFragments(ctx, id, archive.ProducerTimestamp, ms, ms+hour, stream.FragmentNumber(1<<62))
			return err
		}},
		{"LatestFragments, 5 (live edge)", func(id, ms int64) error {
			_, err := x.LatestFragments(ctx, id, 5)
			return err
		}},
	}
	for _, q := range queries {
		lat := make([]time.Duration, cfg.Queries)
		for i := range lat {
			id, ms := pick()
			t := time.Now()
			if err := q.run(id, ms); err != nil {
				return nil, fmt.Errorf("%s: %w", q.name, err)
			}
			lat[i] = time.Since(t)
		}
		p50, p99, mx := percentiles(lat)
		res.Queries = append(res.Queries, QueryLatency{Name: q.name, P50: p50, P99: p99, Max: mx})
	}
	return res, nil
}

// Report formats the result.
func (r *IndexResult) Report() string {
	var b strings.Builder
	how := "through CommitFragments"
	if r.Generated {
		how = "inside the database (GenerateFragments)"
	}
	if r.Fill == 0 {
		fmt.Fprintf(&b, "queries on %d rows an earlier run filled; each stream holds %v of fragments\n", r.Rows, r.SpanPerCam.Round(time.Minute))
	} else {
		fmt.Fprintf(&b, "filled %d rows %s in %v (%.0f rows/s); each stream holds %v of fragments\n",
			r.Rows, how, r.Fill.Round(time.Second), float64(r.Rows)/r.Fill.Seconds(), r.SpanPerCam.Round(time.Minute))
	}
	if r.Vacuum > 0 {
		fmt.Fprintf(&b, "then VACUUM ANALYZE in %v\n", r.Vacuum.Round(time.Second))
	}
	for _, q := range r.Queries {
		fmt.Fprintf(&b, "  %-50s p50 %v, p99 %v, max %v\n", q.Name, q.P50.Round(time.Microsecond), q.P99.Round(time.Microsecond), q.Max.Round(time.Microsecond))
	}
	return b.String()
}

// benchPrefix begins the names of the streams fillIndex creates; their
// rows start at benchT0 (epoch ms).
const (
	benchPrefix = "bench-"
	benchT0     = int64(1_700_000_000_000)
)

// fillIndex creates the streams and fills cfg.Rows rows over them, timing
// the fill (and the vacuum after it) into res.
func fillIndex(ctx context.Context, x archive.Index, cfg IndexConfig, res *IndexResult, progress io.Writer) ([]int64, error) {
	ids := make([]int64, cfg.Streams)
	created := time.Now()
	prefix := fmt.Sprintf("%s%d-", benchPrefix, created.UnixNano())
	for i := range ids {
		s := &stream.Stream{Account: "000000000000", Region: "us-east-1", Name: fmt.Sprintf("%s%06d", prefix, i), Version: "1",
			Status: stream.StatusActive, Created: created, RetentionHours: 24 * 365, StorageTier: "HOT"}
		if err := x.CreateStream(ctx, s, nil); err != nil {
			return nil, err
		}
		ids[i] = s.ID
	}
	header, err := x.PutHeader(ctx, ids[0], []byte("bench tracks"))
	if err != nil {
		return nil, err
	}
	seg, err := x.NewSegment(ctx)
	if err != nil {
		return nil, err
	}
	gen, generate := x.(fragmentGenerator)
	generate = generate && !cfg.Commit
	start := time.Now()
	var offset int64
	var last time.Time
	for done := int64(0); done < cfg.Rows; {
		n := min(int64(cfg.Batch), cfg.Rows-done)
		if generate {
			n = min(generateChunk, cfg.Rows-done)
		}
		first, err := x.ReserveFragmentNumbers(ctx, n)
		if err != nil {
			return nil, err
		}
		if generate {
			err = gen.GenerateFragments(ctx, archive.GeneratedFragments{First: first, Count: n, Row0: done, Streams: ids,
				T0Ms: benchT0, DurationMs: cfg.FragmentMs, ProducerLagMs: 150, HeaderID: header, SegmentID: seg,
				SegmentOffset: offset + 32, Stride: 500_032, Size: 500_000})
			offset += n * 500_032
		} else {
			frags := make([]stream.Fragment, n)
			for i := range frags {
				row := done + int64(i)
				ms := benchT0 + row/int64(cfg.Streams)*cfg.FragmentMs
				frags[i] = stream.Fragment{Number: first + stream.FragmentNumber(i), StreamID: ids[row%int64(cfg.Streams)],
					ServerMs: ms, ProducerMs: ms - 150, DurationMs: cfg.FragmentMs, HeaderID: header, SizeBytes: 500_000,
					Location: stream.Location{SegmentID: seg, Offset: offset + 32, Length: 500_000}}
				offset += 500_032
			}
			err = x.CommitFragments(ctx, seg, offset, frags)
		}
		if err != nil {
			return nil, err
		}
		done += n
		if time.Since(last) > 10*time.Second {
			last = time.Now()
			fmt.Fprintf(progress, "  %d rows in %v (%.0f rows/s)\n", done, time.Since(start).Round(time.Second), float64(done)/time.Since(start).Seconds())
		}
	}
	res.Fill, res.Generated = time.Since(start), generate
	// A database that has been running has vacuumed its tables; a freshly
	// filled one would time its catch-up instead of the queries.
	if v, ok := x.(interface{ Vacuum(context.Context) error }); ok {
		t := time.Now()
		if err := v.Vacuum(ctx); err != nil {
			return nil, err
		}
		res.Vacuum = time.Since(t)
	}
	return ids, nil
}

// benchStreams finds the streams an earlier fill created: Existing runs
// time the queries again on an index already filled, without writing.
func benchStreams(ctx context.Context, x archive.Index, want int) ([]int64, error) {
	var ids []int64
	for after := ""; ; {
		page, err := x.ListStreams(ctx, "000000000000", benchPrefix, after, 1000)
		if err != nil {
			return nil, err
		}
		for _, s := range page {
			ids = append(ids, s.ID)
		}
		if len(page) < 1000 {
			break
		}
		after = page[len(page)-1].Name
	}
	if len(ids) != want {
		return nil, fmt.Errorf("bench index: the index holds %d benchmark streams, want %d (one earlier fill with the same --streams)", len(ids), want)
	}
	return ids, nil
}
