// Package s3media is the Media store on an S3-compatible object store, for
// nodes that share their media (docs/design/scale-out.md).
//
// A segment is not one object: S3 objects cannot be appended to. Each
// Append (one group commit of the archive: every fragment that arrived
// while the previous batch was being written, from every stream) becomes
// one object, a chunk of the segment, named by the segment and the offset
// it starts at:
//
//	<prefix>/seg/<segment id, 16 hex>/<start offset, 16 hex>.kchunk
//
// Chunks hold records in the segment format (segrec), so a segment's
// offsets are the same as in a local file and readers fetch one record
// with a byte-range GET. The archive's group commit is what keeps objects
// from being tiny: a PUT takes tens of milliseconds, and everything that
// arrives meanwhile goes into the next object, so the PUT rate of a node is
// bounded by 1/latency however many cameras it ingests, and objects grow
// with the load. Options.PutInterval bounds the rate further: an Append
// starts its PUT no sooner than that long after the previous one started,
// so a node makes at most 1/PutInterval PUTs a second and each object holds
// about PutInterval of the node's ingest, for up to two intervals more
// PERSISTED latency. Append returns only after the PUT succeeded:
// PERSISTED means the object store has the bytes.
//
// Every S3 call runs under the configuration's Timeout (s3conf.Config.Do):
// a store that stalls fails the Append (the archive answers ERROR 5001 and
// moves to a new segment, so a PUT that lands late never overwrites a
// later chunk) or the read, instead of leaving producers and readers
// waiting.
//
// Free cannot punch holes in an object: it deletes a chunk once every
// record in it has been freed. What was freed is remembered in memory
// only; after a restart the remaining chunks go when their segment is
// removed. A node reading a segment it does not write lists the segment's
// chunks once and again only when asked for an offset past what it knows.
package s3media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/archive/segrec"
	"github.com/kinema/kinema/internal/metrics"
	"github.com/kinema/kinema/internal/s3conf"
	"github.com/kinema/kinema/internal/stream"
)

// Store implements archive.Media in one bucket under a key prefix.
type Store struct {
	c      *s3.Client
	cfg    s3conf.Config // Do bounds every call by cfg.Timeout
	bucket string
	prefix string // "" or ending in "/"

	opt Options

	appendMu sync.Mutex // Appends and Truncates run one at a time
	lastPut  time.Time  // when the last Append's PUT started (under appendMu)

	mu   sync.Mutex
	segs map[int64]*segment
}

// segment is what the store knows of one segment's chunks.
type segment struct {
	chunks []chunk // by start
	end    int64   // where the next Append goes
}

type chunk struct {
	start, size int64
	freed       map[int64]int64 // record start -> record size, of freed records
	freedBytes  int64
}

var _ archive.Media = (*Store)(nil)

// Options tunes a Store.
type Options struct {
	// PutInterval is the least time between the starts of two Appends'
	// PUTs (see the package doc). 0: each Append PUTs at once.
	PutInterval time.Duration
	// Metrics counts PUTs and range GETs; nil: not counted.
	Metrics *metrics.S3Media
}

// ParseURL splits s3://bucket/prefix.
func ParseURL(u string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(u, "s3://")
	if !ok {
		return "", "", fmt.Errorf("media URL %q: want s3://bucket/prefix", u)
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("media URL %q has no bucket", u)
	}
	return bucket, strings.Trim(prefix, "/"), nil
}

// Open returns a store in the bucket under prefix and checks that the
// bucket is reachable.
func Open(ctx context.Context, cfg s3conf.Config, bucket, prefix string, opt Options) (*Store, error) {
	c, err := cfg.Client()
	if err != nil {
		return nil, err
	}
	if err := cfg.Do(ctx, func(ctx context.Context) error {
		_, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)})
		return err
	}); err != nil {
		return nil, fmt.Errorf("s3 media: bucket %s at %s: %w", bucket, cmpOr(cfg.Endpoint, "AWS"), err)
	}
	if prefix = strings.Trim(prefix, "/"); prefix != "" {
		prefix += "/"
	}
	return &Store{c: c, cfg: cfg, bucket: bucket, prefix: prefix, opt: opt, segs: map[int64]*segment{}}, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (s *Store) segPrefix(id int64) string { return fmt.Sprintf("%sseg/%016x/", s.prefix, id) }

func (s *Store) key(id, start int64) string {
	return fmt.Sprintf("%s%016x.kchunk", s.segPrefix(id), start)
}

// list reads a segment's chunks from the bucket.
func (s *Store) list(ctx context.Context, id int64) (*segment, error) {
	seg := &segment{}
	p := s3.NewListObjectsV2Paginator(s.c, &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(s.segPrefix(id))})
	for p.HasMorePages() {
		var page *s3.ListObjectsV2Output
		err := s.cfg.Do(ctx, func(ctx context.Context) (err error) { page, err = p.NextPage(ctx); return err })
		if err != nil {
			return nil, fmt.Errorf("s3 media: listing segment %d: %w", id, err)
		}
		for _, o := range page.Contents {
			name := strings.TrimPrefix(aws.ToString(o.Key), s.segPrefix(id))
			start, err := strconv.ParseInt(strings.TrimSuffix(name, ".kchunk"), 16, 64)
			if err != nil || !strings.HasSuffix(name, ".kchunk") {
				continue // not ours
			}
			seg.chunks = append(seg.chunks, chunk{start: start, size: aws.ToInt64(o.Size)})
		}
	}
	sort.Slice(seg.chunks, func(i, j int) bool { return seg.chunks[i].start < seg.chunks[j].start })
	if n := len(seg.chunks); n > 0 {
		seg.end = seg.chunks[n-1].start + seg.chunks[n-1].size
	}
	return seg, nil
}

// segment returns what is known of a segment, listing it when nothing is
// or when refresh is set.
func (s *Store) segment(ctx context.Context, id int64, refresh bool) (*segment, error) {
	s.mu.Lock()
	seg := s.segs[id]
	s.mu.Unlock()
	if seg != nil && !refresh {
		return seg, nil
	}
	fresh, err := s.list(ctx, id)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.segs[id]; old != nil {
		// Keep what this node knows of freed records and of its own writes.
		fresh.end = max(fresh.end, old.end)
		for i := range fresh.chunks {
			if c := old.find(fresh.chunks[i].start); c != nil && c.start == fresh.chunks[i].start {
				fresh.chunks[i].freed, fresh.chunks[i].freedBytes = c.freed, c.freedBytes
			}
		}
	}
	s.segs[id] = fresh
	return fresh, nil
}

// find returns the chunk holding offset off, or nil. Callers hold s.mu.
func (g *segment) find(off int64) *chunk {
	i := sort.Search(len(g.chunks), func(i int) bool { return g.chunks[i].start > off }) - 1
	if i < 0 || off >= g.chunks[i].start+g.chunks[i].size {
		return nil
	}
	return &g.chunks[i]
}

// Append writes the records as one object and returns once it is stored.
func (s *Store) Append(ctx context.Context, segmentID int64, recs []archive.Record) ([]stream.Location, int64, error) {
	s.appendMu.Lock()
	defer s.appendMu.Unlock()
	seg, err := s.segment(ctx, segmentID, false)
	if err != nil {
		return nil, 0, err
	}
	s.mu.Lock()
	start := seg.end
	s.mu.Unlock()
	body, locs := segrec.Encode(nil, segmentID, start, recs)
	// Meanwhile the archive queues what arrives for the next Append.
	if wait := time.Until(s.lastPut.Add(s.opt.PutInterval)); wait > 0 {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
	s.lastPut = time.Now()
	if err := s.put(ctx, segmentID, start, body); err != nil {
		return nil, 0, err
	}
	s.mu.Lock()
	seg.chunks = append(seg.chunks, chunk{start: start, size: int64(len(body))})
	seg.end = start + int64(len(body))
	end := seg.end
	s.mu.Unlock()
	return locs, end, nil
}

func (s *Store) put(ctx context.Context, id, start int64, body []byte) error {
	t := time.Now()
	err := s.cfg.Do(ctx, func(ctx context.Context) error {
		_, err := s.c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key(id, start)),
			Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body)))})
		return err
	})
	s.opt.Metrics.Put(len(body), time.Since(t), err)
	if err != nil {
		return fmt.Errorf("s3 media: storing segment %d at %d: %w", id, start, err)
	}
	return nil
}

// ErrMissing is returned for a location no stored chunk holds.
var ErrMissing = errors.New("s3 media: no stored chunk holds these bytes")

// ReadAt fetches one record with a byte-range GET and checks it.
func (s *Store) ReadAt(ctx context.Context, loc stream.Location) ([]byte, error) {
	if err := segrec.CheckLocation(loc); err != nil {
		return nil, err
	}
	recStart := loc.Offset - segrec.HeaderSize
	var c chunk
	for refresh := false; ; refresh = true {
		seg, err := s.segment(ctx, loc.SegmentID, refresh)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		found := seg.find(recStart)
		if found != nil {
			c = *found
		}
		s.mu.Unlock()
		if found != nil {
			break
		}
		if refresh {
			return nil, ErrMissing
		}
	}
	from := recStart - c.start
	to := from + segrec.HeaderSize + loc.Length - 1
	if to >= c.size {
		return nil, segrec.ErrCorrupt
	}
	var rec []byte
	err := s.cfg.Do(ctx, func(ctx context.Context) error {
		out, err := s.c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key(loc.SegmentID, c.start)),
			Range: aws.String(fmt.Sprintf("bytes=%d-%d", from, to))})
		if err != nil {
			return err
		}
		defer out.Body.Close()
		rec, err = io.ReadAll(io.LimitReader(out.Body, segrec.HeaderSize+loc.Length+1))
		return err
	})
	s.opt.Metrics.GetRange(err)
	if err != nil {
		var nk *types.NoSuchKey
		if errors.As(err, &nk) {
			return nil, ErrMissing
		}
		return nil, fmt.Errorf("s3 media: reading segment %d at %d: %w", loc.SegmentID, loc.Offset, err)
	}
	return segrec.Check(rec, loc.Length)
}

// Free deletes the chunks all of whose records have been freed.
func (s *Store) Free(ctx context.Context, segmentID int64, ranges [][2]int64) error {
	seg, err := s.segment(ctx, segmentID, false)
	if err != nil {
		return err
	}
	var empty []int64
	s.mu.Lock()
	for _, r := range ranges {
		start, size := r[0]-segrec.HeaderSize, segrec.HeaderSize+r[1]
		c := seg.find(start)
		if c == nil {
			continue
		}
		if c.freed == nil {
			c.freed = map[int64]int64{}
		}
		if _, dup := c.freed[start]; dup {
			continue
		}
		c.freed[start] = size
		c.freedBytes += size
		if c.freedBytes >= c.size {
			empty = append(empty, c.start)
		}
	}
	s.mu.Unlock()
	for _, start := range empty {
		if err := s.delete(ctx, segmentID, start); err != nil {
			return fmt.Errorf("s3 media: freeing segment %d at %d: %w", segmentID, start, err)
		}
		s.mu.Lock()
		seg.chunks = slicesDelete(seg.chunks, start)
		s.mu.Unlock()
	}
	return nil
}

// delete removes one chunk's object.
func (s *Store) delete(ctx context.Context, segmentID, start int64) error {
	return s.cfg.Do(ctx, func(ctx context.Context) error {
		_, err := s.c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key(segmentID, start))})
		return err
	})
}

func slicesDelete(cs []chunk, start int64) []chunk {
	for i := range cs {
		if cs[i].start == start {
			return append(cs[:i], cs[i+1:]...)
		}
	}
	return cs
}

// Truncate cuts a segment back to size: chunks past it are deleted, a
// chunk across it rewritten shorter.
func (s *Store) Truncate(ctx context.Context, segmentID int64, size int64) error {
	s.appendMu.Lock()
	defer s.appendMu.Unlock()
	seg, err := s.segment(ctx, segmentID, true)
	if err != nil {
		return err
	}
	s.mu.Lock()
	chunks := append([]chunk(nil), seg.chunks...)
	s.mu.Unlock()
	kept := chunks[:0]
	for _, c := range chunks {
		switch {
		case c.start+c.size <= size:
			kept = append(kept, c)
		case c.start >= size:
			if err := s.delete(ctx, segmentID, c.start); err != nil {
				return fmt.Errorf("s3 media: truncating segment %d: %w", segmentID, err)
			}
		default:
			var body []byte
			err := s.cfg.Do(ctx, func(ctx context.Context) error {
				out, err := s.c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key(segmentID, c.start)),
					Range: aws.String(fmt.Sprintf("bytes=0-%d", size-c.start-1))})
				if err != nil {
					return err
				}
				defer out.Body.Close()
				body, err = io.ReadAll(out.Body)
				return err
			})
			if err != nil {
				return fmt.Errorf("s3 media: truncating segment %d: %w", segmentID, err)
			}
			if err := s.put(ctx, segmentID, c.start, body); err != nil {
				return err
			}
			c.size = int64(len(body))
			kept = append(kept, c)
		}
	}
	s.mu.Lock()
	seg.chunks = kept
	seg.end = min(seg.end, size)
	if n := len(kept); n > 0 {
		seg.end = max(seg.end, kept[n-1].start+kept[n-1].size)
	}
	s.mu.Unlock()
	return nil
}

// Remove deletes every chunk of a segment.
func (s *Store) Remove(ctx context.Context, segmentID int64) error {
	seg, err := s.list(ctx, segmentID)
	if err != nil {
		return err
	}
	for i := 0; i < len(seg.chunks); i += 1000 {
		var objs []types.ObjectIdentifier
		for _, c := range seg.chunks[i:min(i+1000, len(seg.chunks))] {
			objs = append(objs, types.ObjectIdentifier{Key: aws.String(s.key(segmentID, c.start))})
		}
		var out *s3.DeleteObjectsOutput
		err := s.cfg.Do(ctx, func(ctx context.Context) (err error) {
			out, err = s.c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(s.bucket), Delete: &types.Delete{Objects: objs, Quiet: aws.Bool(true)}})
			return err
		})
		if err != nil {
			return fmt.Errorf("s3 media: removing segment %d: %w", segmentID, err)
		}
		if len(out.Errors) > 0 {
			e := out.Errors[0]
			return fmt.Errorf("s3 media: removing segment %d: %s: %s", segmentID, aws.ToString(e.Key), aws.ToString(e.Message))
		}
	}
	s.mu.Lock()
	delete(s.segs, segmentID)
	s.mu.Unlock()
	return nil
}

// List returns the ids of the segments with chunks in the bucket.
func (s *Store) List(ctx context.Context) ([]int64, error) {
	var ids []int64
	p := s3.NewListObjectsV2Paginator(s.c, &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(s.prefix + "seg/"),
		Delimiter: aws.String("/")})
	for p.HasMorePages() {
		var page *s3.ListObjectsV2Output
		err := s.cfg.Do(ctx, func(ctx context.Context) (err error) { page, err = p.NextPage(ctx); return err })
		if err != nil {
			return nil, fmt.Errorf("s3 media: listing segments: %w", err)
		}
		for _, cp := range page.CommonPrefixes {
			name := strings.TrimSuffix(strings.TrimPrefix(aws.ToString(cp.Prefix), s.prefix+"seg/"), "/")
			if id, err := strconv.ParseInt(name, 16, 64); err == nil {
				ids = append(ids, id)
			}
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids, nil
}

// Ping checks that the bucket answers (readiness).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.cfg.Do(ctx, func(ctx context.Context) error {
		_, err := s.c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.bucket)})
		return err
	}); err != nil {
		return fmt.Errorf("s3 media: bucket %s: %w", s.bucket, err)
	}
	return nil
}

// Close forgets the cached chunk lists; the client holds no open handles.
func (s *Store) Close() error {
	s.mu.Lock()
	s.segs = map[int64]*segment{}
	s.mu.Unlock()
	return nil
}
