package playback

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kinema/kinema/internal/apierr"
	"github.com/kinema/kinema/internal/media/fmp4"
	"github.com/kinema/kinema/internal/stream"
)

// Low-Latency HLS is Kinema's extension for LIVE fMP4 sessions, asked for
// with LowLatency=1 on the master playlist URL that a session hands out (so
// URLs from the AWS SDKs and CLI, which know nothing of it, work as they
// are). Media playlists then carry partial segments (EXT-X-PART) of the
// newest fragments, including the one the camera is still sending, a
// preload hint for the next part, and they answer blocking reloads
// (_HLS_msn, _HLS_part) as soon as what was asked for has arrived
// (RFC 8216bis, section 6.2.5.2). Players without LL-HLS ignore those tags
// and play whole fragments.
//
// A part is a run of consecutive samples of one track, counted from the
// fragment's start: for video, the most frames that fit in the part target
// and divide a second of frames evenly (25 fps: 5 frames, 30 fps: 15), so
// that the whole-second GOPs cameras use split into equal parts; hls.js
// loses its timeline on a short trailing part (a 50-frame GOP cut into
// 12-frame parts). Audio takes as many frames as fit in the target. The
// frame duration is that of the fragment's first sample, so boundaries
// depend only on the samples, never on when a playlist was asked for, and
// a part served while its fragment is still open is the same part of the
// complete fragment.

// DefaultPartTarget is the LL-HLS part target when Server.PartTarget is 0:
// with the 3-part hold-back players keep, about 1.5 s behind the camera.
const DefaultPartTarget = 500 * time.Millisecond

// partHoldParts is PART-HOLD-BACK in part targets (RFC 8216bis asks for at
// least 2, and recommends 3).
const partHoldParts = 3

// partedFragments is how many of the newest complete fragments list their
// parts besides the open one: players joining at the live edge start
// within the last part hold-back, which these cover.
const partedFragments = 2

// partWait bounds how long a part request waits for its part (a preload
// hint is asked for about one part ahead; a camera that stalls longer
// than this gets its players a 503, which they retry).
const partWait = 10 * time.Second

// lowLatency reports whether a playlist request asks for LL-HLS and its
// session can have it.
func lowLatency(s *Session, q map[string][]string) bool {
	return s.Kind == HLS && s.Mode == Live && s.Container == FragmentedMP4 && first(q, "LowLatency") == "1"
}

func (p *Server) partTarget() time.Duration {
	if p.PartTarget > 0 {
		return p.PartTarget
	}
	return DefaultPartTarget
}

// part is one partial segment: samples [first, end) of a track's samples
// in a fragment.
type part struct {
	first, end  int
	ticks       int64 // duration in the track's timescale
	independent bool  // starts with a key frame
}

// partsOf splits a track's samples of one fragment into parts; with open
// set (the fragment is still arriving), only whole parts are returned.
func (p *Server) partsOf(t *fmp4.Track, ss []fmp4.Sample, open bool) []part {
	if len(ss) == 0 {
		return nil
	}
	n := p.partLength(t, ss[0].Duration)
	var parts []part
	for a := 0; a < len(ss); a += n {
		b := a + n
		if b > len(ss) {
			if open {
				break
			}
			b = len(ss)
		}
		pt := part{first: a, end: b, independent: ss[a].Keyframe}
		for i := a; i < b; i++ {
			pt.ticks += int64(ss[i].Duration)
		}
		parts = append(parts, pt)
	}
	return parts
}

// partLength is how many samples of frameTicks each make a part.
func (p *Server) partLength(t *fmp4.Track, frameTicks uint32) int {
	if frameTicks == 0 {
		return 1
	}
	// A 2 % margin keeps parts of slightly uneven frames under the target.
	fit := max(1, int(p.partTarget().Seconds()*0.98*float64(t.Timescale)/float64(frameTicks)))
	if t.Kind != fmp4.Video {
		return fit
	}
	fps := int(math.Round(float64(t.Timescale) / float64(frameTicks)))
	for n := min(fit, fps); n > 1; n-- {
		if fps%n == 0 {
			return n
		}
	}
	return 1
}

// liveEdge is what a low-latency playlist adds to the window: the parts of
// its newest fragments, and the fragment still being received.
type liveEdge struct {
	track     *fmp4.Track
	target    time.Duration // PART-TARGET: the longest part listed
	parts     [][]part      // of the window's last len(parts) fragments
	open      *stream.Fragment
	openParts []part
}

// nextMSN is the media sequence number of the segment after the window's
// complete ones: the open fragment's.
func (w *window) nextMSN() int64 { return w.seq + int64(len(w.frags)) }

// has reports whether the playlist holds segment msn complete, or its part
// partIdx (-1: the whole segment).
func (e *liveEdge) has(w *window, msn int64, partIdx int) bool {
	next := w.nextMSN()
	switch {
	case msn < next:
		return true
	case msn == next && partIdx >= 0:
		return partIdx < len(e.openParts)
	}
	return false
}

// edge gathers the window's live edge for one track.
func (p *Server) edge(ctx context.Context, s *Session, w *window, track uint64) (*liveEdge, error) {
	e := &liveEdge{}
	if len(w.frags) == 0 {
		return e, nil
	}
	last := w.frags[len(w.frags)-1]
	ts, err := p.tracksOf(ctx, last.HeaderID)
	if err != nil {
		return nil, err
	}
	if e.track = trackOf(ts.tracks, track); e.track == nil {
		return nil, apierr.NotFound("the stream has no track %d", track)
	}
	for i := max(0, len(w.frags)-partedFragments); i < len(w.frags); i++ {
		f := &w.frags[i]
		if f.HeaderID != last.HeaderID {
			e.parts = nil // parts only after the last change of track set
			continue
		}
		ps, err := p.completeParts(ctx, s, f, ts, e.track)
		if err != nil {
			return nil, err
		}
		e.parts = append(e.parts, ps)
	}
	// A fragment with a new track set needs its own init segment and a
	// discontinuity; it is listed once complete.
	if open, ok := p.Archive.Live.Open(s.StreamID); ok && open.Fragment.Number > last.Number && open.Fragment.HeaderID == last.HeaderID {
		samples, err := fmp4.OpenFragmentSamples(ts.header, ts.tracks, open.Body)
		if err != nil {
			return nil, apierr.New("InvalidMediaFrameException", "fragment %s: %v", open.Fragment.Number, err)
		}
		e.open = &open.Fragment
		e.openParts = p.partsOf(e.track, samples[e.track.Number], true)
	}
	for _, ps := range append(e.parts, e.openParts) {
		for _, pt := range ps {
			e.target = max(e.target, time.Duration(pt.ticks)*time.Second/time.Duration(e.track.Timescale))
		}
	}
	if e.target == 0 {
		e.target = p.partTarget()
	}
	// Rounded up to the ms the playlist states it in.
	e.target = (e.target + time.Millisecond - 1).Truncate(time.Millisecond)
	return e, nil
}

func trackOf(tracks []*fmp4.Track, number uint64) *fmp4.Track {
	for _, t := range tracks {
		if t.Number == number {
			return t
		}
	}
	return nil
}

// completeParts splits a complete fragment into parts; they never change,
// so they are kept.
func (p *Server) completeParts(ctx context.Context, s *Session, f *stream.Fragment, ts *trackSet, t *fmp4.Track) ([]part, error) {
	key := partsKey{f.Number, t.Number}
	p.mu.Lock()
	ps, ok := p.parts[key]
	p.mu.Unlock()
	if ok {
		return ps, nil
	}
	_, data, err := p.fragmentByNumber(ctx, s, f.Number)
	if err != nil {
		return nil, err
	}
	samples, err := fmp4.FragmentSamples(ts.header, ts.tracks, data, 0)
	if err != nil {
		return nil, apierr.New("InvalidMediaFrameException", "fragment %s: %v", f.Number, err)
	}
	ps = p.partsOf(t, samples[t.Number], false)
	p.mu.Lock()
	if p.parts == nil || len(p.parts) > 4096 {
		p.parts = map[partsKey][]part{}
	}
	p.parts[key] = ps
	p.mu.Unlock()
	return ps, nil
}

type partsKey struct {
	fragment stream.FragmentNumber
	track    uint64
}

// deliveryDirectives parses _HLS_msn and _HLS_part; -1 means absent.
func deliveryDirectives(q map[string][]string) (msn int64, partIdx int, err error) {
	msn, partIdx = -1, -1
	if v := first(q, "_HLS_msn"); v != "" {
		if msn, err = strconv.ParseInt(v, 10, 64); err != nil || msn < 0 {
			return 0, 0, apierr.InvalidArg("_HLS_msn %q is not a media sequence number", v)
		}
	}
	if v := first(q, "_HLS_part"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, 0, apierr.InvalidArg("_HLS_part %q is not a part index", v)
		}
		if msn < 0 {
			return 0, 0, apierr.InvalidArg("_HLS_part needs _HLS_msn")
		}
		partIdx = n
	}
	return msn, partIdx, nil
}

// errHoldExpired answers a blocking request whose segment or part did not
// arrive in time; players retry (RFC 8216bis asks for 503).
var errHoldExpired = &apierr.Error{Type: "ServiceUnavailableException", Status: http.StatusServiceUnavailable,
	Message: "the requested segment or part did not arrive in time"}

// lowLatencyPlaylist answers a media playlist request of an LL-HLS session,
// holding a blocking reload until its segment or part is there.
func (p *Server) lowLatencyPlaylist(ctx context.Context, token string, s *Session, q map[string][]string, track uint64) ([]byte, error) {
	msn, partIdx, err := deliveryDirectives(q)
	if err != nil {
		return nil, err
	}
	if track == 0 {
		track = 1
	}
	var expire <-chan time.Time
	for {
		changed := p.Archive.Live.Changed(s.StreamID) // before looking, so no change is missed
		w, err := p.window(ctx, s)
		if err != nil {
			return nil, apierr.Internal(err)
		}
		e, err := p.edge(ctx, s, w, track)
		if err != nil {
			return nil, err
		}
		if msn < 0 || e.has(w, msn, partIdx) {
			return []byte(mediaPlaylist(token, s, w, track, e)), nil
		}
		if msn > w.nextMSN()+2 {
			return nil, apierr.InvalidArg("_HLS_msn %d is more than two segments past the playlist's last (%d)", msn, w.nextMSN()-1)
		}
		if expire == nil {
			// Three target durations, as RFC 8216bis bounds the hold.
			timer := time.NewTimer(3 * time.Duration(targetDuration(w)) * time.Second)
			defer timer.Stop()
			expire = timer.C
		}
		select {
		case <-changed:
		case <-expire:
			return nil, errHoldExpired
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// writeLowLatencyHeader writes the playlist tags of LL-HLS.
func writeLowLatencyHeader(b *strings.Builder, partTarget time.Duration) {
	b.WriteString("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=")
	b.WriteString(strconv.FormatFloat(partHoldParts*partTarget.Seconds(), 'f', 3, 64))
	b.WriteString("\n#EXT-X-PART-INF:PART-TARGET=")
	b.WriteString(strconv.FormatFloat(partTarget.Seconds(), 'f', 3, 64))
	b.WriteByte('\n')
}

// writePartLines writes the EXT-X-PART lines of fragment n.
func writePartLines(b *strings.Builder, n stream.FragmentNumber, t *fmp4.Track, parts []part, tail string) {
	for k, pt := range parts {
		b.WriteString("#EXT-X-PART:DURATION=")
		b.WriteString(strconv.FormatFloat(float64(pt.ticks)/float64(t.Timescale), 'f', 5, 64))
		b.WriteString(`,URI="getMP4MediaFragment.mp4?FragmentNumber=`)
		b.WriteString(n.String())
		b.WriteString("&PartNumber=")
		b.WriteString(strconv.Itoa(k))
		b.WriteString(tail)
		b.WriteByte('"')
		if pt.independent {
			b.WriteString(",INDEPENDENT=YES")
		}
		b.WriteByte('\n')
	}
}

// writeOpenFragment writes the parts of the fragment being received and the
// preload hint for its next part.
func writeOpenFragment(b *strings.Builder, s *Session, prev *stream.Fragment, e *liveEdge, tail string) {
	if s.discontinuity(prev, e.open) {
		b.WriteString("#EXT-X-DISCONTINUITY\n")
	}
	if s.ShowTimestamp {
		writeProgramDateTime(b, s.fragmentTime(e.open))
	}
	writePartLines(b, e.open.Number, e.track, e.openParts, tail)
	b.WriteString(`#EXT-X-PRELOAD-HINT:TYPE=PART,URI="getMP4MediaFragment.mp4?FragmentNumber=`)
	b.WriteString(e.open.Number.String())
	b.WriteString("&PartNumber=")
	b.WriteString(strconv.Itoa(len(e.openParts)))
	b.WriteString(tail)
	b.WriteString("\"\n")
}

// targetDuration is EXT-X-TARGETDURATION: the longest fragment, in whole
// seconds rounded up.
func targetDuration(w *window) int64 {
	target := int64(1)
	for _, f := range w.frags {
		target = max(target, int64(math.Ceil(float64(f.DurationMs)/1000)))
	}
	return target
}

// partSegment answers getMP4MediaFragment.mp4 with a PartNumber: one part
// of one track, from the fragment still being received (held until the
// part is complete: players fetch the preload hint ahead) or from a
// complete one.
func (p *Server) partSegment(ctx context.Context, s *Session, q map[string][]string, track uint64) ([][]byte, error) {
	v := first(q, "FragmentNumber")
	n, err := stream.ParseFragmentNumber(v)
	if err != nil {
		return nil, apierr.InvalidArg("FragmentNumber: %v", err)
	}
	k, err := strconv.Atoi(first(q, "PartNumber"))
	if err != nil || k < 0 {
		return nil, apierr.InvalidArg("PartNumber %q is not a part index", first(q, "PartNumber"))
	}
	if track == 0 {
		track = 1
	}
	var expire <-chan time.Time
	for {
		changed := p.Archive.Live.Changed(s.StreamID)
		if open, ok := p.Archive.Live.Open(s.StreamID); ok && open.Fragment.Number == n {
			ts, t, err := p.trackSetOf(ctx, open.Fragment.HeaderID, track)
			if err != nil {
				return nil, err
			}
			samples, err := fmp4.OpenFragmentSamples(ts.header, ts.tracks, open.Body)
			if err != nil {
				return nil, apierr.New("InvalidMediaFrameException", "fragment %s: %v", n, err)
			}
			ss := samples[t.Number]
			if parts := p.partsOf(t, ss, true); k < len(parts) {
				return segmentPieces(&open.Fragment, t, ss[parts[k].first:parts[k].end])
			}
		} else {
			f, data, err := p.fragmentByNumber(ctx, s, n)
			if err != nil {
				return nil, err
			}
			ts, t, err := p.trackSetOf(ctx, f.HeaderID, track)
			if err != nil {
				return nil, err
			}
			samples, err := fmp4.FragmentSamples(ts.header, ts.tracks, data, 0)
			if err != nil {
				return nil, apierr.New("InvalidMediaFrameException", "fragment %s: %v", n, err)
			}
			ss := samples[t.Number]
			parts := p.partsOf(t, ss, false)
			if k >= len(parts) {
				return nil, apierr.NotFound("fragment %s has %d parts of track %d", n, len(parts), track)
			}
			return segmentPieces(f, t, ss[parts[k].first:parts[k].end])
		}
		if expire == nil {
			timer := time.NewTimer(partWait)
			defer timer.Stop()
			expire = timer.C
		}
		select {
		case <-changed:
		case <-expire:
			return nil, errHoldExpired
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// trackSetOf returns a track set and its track number track.
func (p *Server) trackSetOf(ctx context.Context, headerID int64, track uint64) (*trackSet, *fmp4.Track, error) {
	ts, err := p.tracksOf(ctx, headerID)
	if err != nil {
		return nil, nil, err
	}
	t := trackOf(ts.tracks, track)
	if t == nil {
		return nil, nil, apierr.NotFound("the fragment has no track %d", track)
	}
	return ts, t, nil
}

var errNoSamples = errors.New("no samples")

// segmentPieces is a media segment of samples of one track, as pieces: the
// moof and mdat header, then the samples as they lie in the fragment.
func segmentPieces(f *stream.Fragment, t *fmp4.Track, ss []fmp4.Sample) ([][]byte, error) {
	if len(ss) == 0 {
		return nil, errNoSamples
	}
	hdr, err := fmp4.AppendMediaSegmentHeader(nil, uint32(f.Number), t, ss)
	if err != nil {
		return nil, apierr.New("InvalidMediaFrameException", "fragment %s: %v", f.Number, err)
	}
	pieces := make([][]byte, 0, len(ss)+1)
	pieces = append(pieces, hdr)
	for i := range ss {
		pieces = append(pieces, ss[i].Data)
	}
	return pieces, nil
}
