package playback

import (
	"context"
	"sort"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/stream"
)

// maxFragmentMs is the longest fragment PutMedia accepts; it bounds how far
// back N fragments can reach.
const maxFragmentMs = 20_000

// window is what a media playlist lists right now.
type window struct {
	frags []stream.Fragment
	seq   int64 // media sequence number of frags[0]
	// discSeq is the discontinuity sequence number of frags[0]: how many
	// discontinuities came before it since the session's origin.
	ended   bool // nothing will be added: EXT-X-ENDLIST / static MPD
	discSeq int64
}

// fragmentTime is a fragment's start on the session's clock.
func (s *Session) fragmentTime(f *stream.Fragment) int64 {
	if s.Selector == archive.ProducerTimestamp {
		return f.ProducerMs
	}
	return f.ServerMs
}

// origin is where the session's media sequence counts from: fixed for the
// session's life, so a fragment keeps its number across playlist reloads.
func (s *Session) origin() int64 {
	if s.Mode != Live {
		return s.StartMs
	}
	return s.CreatedMs - int64(s.MaxFragments)*maxFragmentMs - liveFreshness.Milliseconds()
}

// window computes the fragments to list.
func (p *Server) window(ctx context.Context, s *Session) (*window, error) {
	idx := p.Archive.Index
	w := &window{}
	switch s.Mode {
	case OnDemand:
		frags, err := idx.Fragments(ctx, archive.FragmentQuery{StreamID: s.StreamID, Kind: s.Selector,
			StartMs: s.StartMs, EndMs: s.EndMs, Limit: s.MaxFragments, Brief: true})
		if err != nil {
			return nil, err
		}
		w.frags, w.ended = frags, true
		return w, nil
	case LiveReplay:
		// One fragment is added per fragment duration of wall time since the
		// session began: the recorded stream plays as if it were live.
		virtualNow := s.StartMs + (p.now().UnixMilli() - s.CreatedMs)
		end := virtualNow
		if s.EndMs != 0 && s.EndMs < end {
			end, w.ended = s.EndMs, true
		}
		from := max(s.StartMs, end-int64(s.MaxFragments)*maxFragmentMs)
		frags, err := idx.Fragments(ctx, archive.FragmentQuery{StreamID: s.StreamID, Kind: s.Selector,
			StartMs: from, EndMs: end, Limit: maxPlaylistSize, Brief: true})
		if err != nil {
			return nil, err
		}
		w.frags = lastN(frags, s.MaxFragments)
	case Live:
		frags, err := idx.LatestFragments(ctx, s.StreamID, s.MaxFragments)
		if err != nil {
			return nil, err
		}
		// Fragments appear as soon as they are RECEIVED, before the archive
		// has them.
		seen := map[stream.FragmentNumber]bool{}
		for _, f := range frags {
			seen[f.Number] = true
		}
		for _, lf := range p.Archive.Live.Recent(s.StreamID) {
			if !seen[lf.Fragment.Number] && lf.Fragment.ServerMs >= s.origin() {
				frags = append(frags, lf.Fragment)
			}
		}
		sort.Slice(frags, func(i, j int) bool { return frags[i].Number < frags[j].Number })
		w.frags = lastN(frags, s.MaxFragments)
	}
	if len(w.frags) > 0 {
		// LIVE selects by arrival, so it counts on the server clock.
		clock, at := s.Selector, s.fragmentTime(&w.frags[0])
		if s.Mode == Live {
			clock, at = archive.ServerTimestamp, w.frags[0].ServerMs
		}
		n, err := idx.CountFragments(ctx, s.StreamID, clock, s.origin(), at, w.frags[0].Number)
		if err != nil {
			return nil, err
		}
		w.seq = n
		if w.discSeq, err = p.discontinuitiesBefore(ctx, s, w); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// discontinuitiesBefore counts the discontinuities between the session's
// origin and the window's first fragment, so the count stays right as the
// window slides. ALWAYS has one per fragment; otherwise the fragments before
// the window are walked (a playlist that starts at the origin has none).
func (p *Server) discontinuitiesBefore(ctx context.Context, s *Session, w *window) (int64, error) {
	if s.Discontinuity == DiscontinuityAlways {
		return w.seq, nil
	}
	if w.seq == 0 {
		return 0, nil
	}
	first := &w.frags[0]
	clock, at := s.Selector, s.fragmentTime(first)
	if s.Mode == Live {
		clock, at = archive.ServerTimestamp, first.ServerMs
	}
	q := archive.FragmentQuery{StreamID: s.StreamID, Kind: clock, StartMs: s.origin(), EndMs: at, Limit: 5000, Brief: true}
	var n int64
	var prev *stream.Fragment
	for {
		page, err := p.Archive.Index.Fragments(ctx, q)
		if err != nil {
			return 0, err
		}
		for i := range page {
			f := &page[i]
			if f.Number == first.Number {
				break
			}
			if prev != nil && s.discontinuity(prev, f) {
				n++
			}
			prev = f
		}
		if len(page) < q.Limit {
			break
		}
		last := page[len(page)-1]
		q.AfterNumber, q.AfterMs = last.Number, s.fragmentTime(&last)
		if s.Mode == Live {
			q.AfterMs = last.ServerMs
		}
	}
	if prev != nil && s.discontinuity(prev, first) {
		n++
	}
	return n, nil
}

func lastN(fs []stream.Fragment, n int) []stream.Fragment {
	if len(fs) > n {
		return fs[len(fs)-n:]
	}
	return fs
}
