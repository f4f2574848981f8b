package images

import (
	"context"
	"errors"
	"fmt"

	"github.com/kinema/kinema/internal/apierr"
	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/stream"
)

// Status says whether a sample got a picture.
type Status int

// Sample statuses; NoMedia and MediaError are GetImages's NO_MEDIA and MEDIA_ERROR.
const (
	OK         Status = iota
	NoMedia           // no stored fragment covers the sample time
	MediaError        // one does, but no picture can be made from it
)

func (s Status) String() string {
	switch s {
	case NoMedia:
		return "NO_MEDIA"
	case MediaError:
		return "MEDIA_ERROR"
	}
	return "OK"
}

// loaded is a stored fragment with its video frames read.
type loaded struct {
	frag   stream.Fragment
	ts     *trackSet
	frames []frame
}

// run is frames of one fragment to decode in one go: from a key frame to
// the last wanted frame in decode order. wanted maps a frame (index into
// frames) to the samples that show it.
type run struct {
	l        *loaded
	key, end int
	wanted   map[int][]int
}

// cursor walks a stream's fragments in the order of a clock, starting with
// the one a time falls in.
type cursor struct {
	idx  archive.Index
	q    archive.FragmentQuery
	cur  *stream.Fragment
	page []stream.Fragment
	done bool
}

func startOn(f *stream.Fragment, kind archive.TimestampKind) int64 {
	if kind == archive.ProducerTimestamp {
		return f.ProducerMs
	}
	return f.ServerMs
}

func newCursor(ctx context.Context, idx archive.Index, streamID int64, kind archive.TimestampKind, from, to int64) (*cursor, error) {
	c := &cursor{idx: idx, q: archive.FragmentQuery{StreamID: streamID, Kind: kind, StartMs: from, EndMs: to, Limit: 256}}
	f, err := idx.FragmentAtOrBefore(ctx, streamID, kind, from)
	switch {
	case errors.Is(err, archive.ErrNotFound):
	case err != nil:
		return nil, err
	default:
		c.cur = f
		c.q.AfterMs, c.q.AfterNumber = startOn(f, kind), f.Number
	}
	return c, nil
}

// at moves to the last fragment starting at or before t (t never
// decreases) and returns it when t falls inside it.
func (c *cursor) at(ctx context.Context, t int64) (*stream.Fragment, error) {
	for {
		if len(c.page) == 0 && !c.done {
			page, err := c.idx.Fragments(ctx, c.q)
			if err != nil {
				return nil, err
			}
			c.page, c.done = page, len(page) < c.q.Limit
			if n := len(page); n > 0 {
				c.q.AfterMs, c.q.AfterNumber = startOn(&page[n-1], c.q.Kind), page[n-1].Number
			}
		}
		if len(c.page) == 0 || startOn(&c.page[0], c.q.Kind) > t {
			break
		}
		f := c.page[0]
		c.cur, c.page = &f, c.page[1:]
	}
	// A sample on the end of a fragment still shows its last frame.
	if c.cur == nil || t > startOn(c.cur, c.q.Kind)+c.cur.DurationMs {
		return nil, nil
	}
	return c.cur, nil
}

// fixedCursor walks the given fragments only (ordered by the clock).
func fixedCursor(frags []stream.Fragment, kind archive.TimestampKind) *cursor {
	return &cursor{page: frags, done: true, q: archive.FragmentQuery{Kind: kind}}
}

// planner places sample times on stored frames and groups them into runs.
type planner struct {
	svc    *Service
	st     *stream.Stream
	kind   archive.TimestampKind
	times  []int64
	frags  []stream.Fragment // when set, the only fragments to use
	status []Status
	frame  []frameRef // where each OK sample's picture is

	// keyOnly places a sample on the key frame at or before its frame (a
	// time-lapse that copies key frames instead of decoding).
	keyOnly bool
}

// frameRef is the frame a sample shows. The fragment is a copy, so that a
// result does not hold the fragment's media in memory.
type frameRef struct {
	frag                 stream.Fragment
	producerMs, serverMs int64
}

// plan walks the samples in order and hands each run to emit as soon as
// it is complete; a run's fragment is in memory only until then.
func (p *planner) plan(ctx context.Context, emit func(*run) error) error {
	n := len(p.times)
	p.status, p.frame = make([]Status, n), make([]frameRef, n)
	if n == 0 {
		return nil
	}
	c := fixedCursor(p.frags, p.kind)
	if p.frags == nil {
		var err error
		if c, err = newCursor(ctx, p.svc.Archive.Index, p.st.ID, p.kind, p.times[0], p.times[n-1]); err != nil {
			return apierr.Internal(err)
		}
	}
	var l *loaded
	var r *run
	flush := func() error {
		if r == nil {
			return nil
		}
		err := emit(r)
		r = nil
		return err
	}
	for i, t := range p.times {
		f, err := c.at(ctx, t)
		if err != nil {
			return apierr.Internal(err)
		}
		if f == nil {
			p.status[i] = NoMedia
			continue
		}
		if l == nil || l.frag.Number != f.Number {
			if err := flush(); err != nil {
				return err
			}
			if l, err = p.svc.load(ctx, f); err != nil {
				return err
			}
		}
		if l.frames == nil {
			p.status[i] = MediaError
			continue
		}
		tp := t // the sample time on the producer clock, which frames carry
		if p.kind == archive.ServerTimestamp {
			tp = f.ProducerMs + (t - f.ServerMs)
		}
		idx, key := pick(l.frames, tp)
		if key < 0 {
			p.status[i] = MediaError
			continue
		}
		if p.keyOnly {
			idx = key
		}
		ms := l.frames[idx].ptsMs()
		p.frame[i] = frameRef{frag: l.frag, producerMs: ms, serverMs: f.ServerMs + (ms - f.ProducerMs)}
		if r != nil && r.key != key {
			if err := flush(); err != nil {
				return err
			}
		}
		if r == nil {
			r = &run{l: l, key: key, end: idx, wanted: map[int][]int{}}
		}
		r.end = max(r.end, idx)
		r.wanted[idx] = append(r.wanted[idx], i)
	}
	return flush()
}

// pick returns the frame shown at producer time tp (ms): the one with the
// latest presentation time at or before it, or the first one shown when tp
// comes before every frame of the fragment; and the key frame to decode it
// from (-1 when none precedes it in the fragment).
func pick(frames []frame, tp int64) (idx, key int) {
	idx = -1
	limit := (tp + 1) * 1e6 // frames are ns; tp is a whole ms
	for i := range frames {
		f := &frames[i]
		if f.pts < limit && (idx < 0 || f.pts >= frames[idx].pts) {
			idx = i
		}
	}
	if idx < 0 {
		idx = 0
		for i := range frames {
			if frames[i].pts < frames[idx].pts {
				idx = i
			}
		}
	}
	for key = idx; key >= 0 && !frames[key].key; key-- {
	}
	return idx, key
}

// load reads a fragment and its video frames. A fragment whose media
// cannot be read as video comes back with no frames (MEDIA_ERROR for its
// samples); only a storage failure is an error.
func (s *Service) load(ctx context.Context, f *stream.Fragment) (*loaded, error) {
	l := &loaded{frag: *f}
	ts, err := s.trackSet(ctx, f.HeaderID)
	if err != nil {
		return nil, err
	}
	l.ts = ts
	data, err := s.Archive.Read(ctx, f)
	if err != nil {
		return nil, apierr.Internal(fmt.Errorf("reading fragment %s: %w", f.Number, err))
	}
	if l.frames, err = fragmentFrames(ts, data); err != nil {
		s.log().Info("no picture from a fragment", "fragment", f.Number.String(), "err", err)
		l.frames = nil
	}
	return l, nil
}

// trackSet returns a stored track set, read once.
func (s *Service) trackSet(ctx context.Context, headerID int64) (*trackSet, error) {
	s.mu.Lock()
	ts := s.tracks[headerID]
	s.mu.Unlock()
	if ts != nil {
		return ts, nil
	}
	_, data, err := s.Archive.Index.Header(ctx, headerID)
	if err != nil {
		return nil, apierr.Internal(fmt.Errorf("track set %d: %w", headerID, err))
	}
	if ts, err = newTrackSet(data); err != nil {
		// Unreadable track data: no fragment of it has a picture.
		ts = &trackSet{}
	}
	s.mu.Lock()
	if s.tracks == nil || len(s.tracks) > 1024 {
		s.tracks = map[int64]*trackSet{}
	}
	s.tracks[headerID] = ts
	s.mu.Unlock()
	return ts, nil
}
