package playback

import (
	"context"
	"errors"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kinema/kinema/internal/apierr"
	"github.com/kinema/kinema/internal/archive"
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
	// PART-TARGET states the longest part listed, so a part a rounding
	// over the configured target is no violation.
	fit := max(1, int(p.partTarget().Seconds()*float64(t.Timescale)/float64(frameTicks)))
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
	ts        *trackSet
	track     *fmp4.Track
	parts     [][]part // of the window's last len(parts) fragments
	open      *stream.Fragment
	openParts []part
	// configured is the server's part target, stated while no part is
	// listed.
	configured time.Duration
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
	e := &liveEdge{configured: p.partTarget()}
	if len(w.frags) == 0 {
		return e, nil
	}
	last := w.frags[len(w.frags)-1]
	ts, t, err := p.trackSetOf(ctx, last.HeaderID, track)
	if err != nil {
		return nil, err
	}
	e.ts, e.track = ts, t
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
	if open, ok := p.Archive.Live.Open(s.StreamID); ok {
		if err := p.setOpen(e, w, open); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// setOpen lists the parts of the fragment being received so far. A
// fragment with a new track set needs its own init segment and a
// discontinuity; it is listed once complete.
func (p *Server) setOpen(e *liveEdge, w *window, open archive.OpenFragment) error {
	e.open, e.openParts = nil, nil
	last := w.frags[len(w.frags)-1]
	if open.Fragment.Number <= last.Number || open.Fragment.HeaderID != last.HeaderID {
		return nil
	}
	samples, err := fmp4.OpenFragmentSamples(e.ts.header, e.ts.tracks, open.Body)
	if err != nil {
		return apierr.New("InvalidMediaFrameException", "fragment %s: %v", open.Fragment.Number, err)
	}
	e.open = &open.Fragment
	e.openParts = p.partsOf(e.track, samples[e.track.Number], true)
	return nil
}

// target is PART-TARGET: the longest part listed (else the configured
// target), rounded up to the ms the playlist states it in.
func (e *liveEdge) target() time.Duration {
	var longest int64
	for _, ps := range e.parts {
		for _, pt := range ps {
			longest = max(longest, pt.ticks)
		}
	}
	for _, pt := range e.openParts {
		longest = max(longest, pt.ticks)
	}
	d := e.configured
	if longest > 0 {
		d = time.Duration(longest) * time.Second / time.Duration(e.track.Timescale)
	}
	return (d + time.Millisecond - 1).Truncate(time.Millisecond)
}

// completeParts splits a complete fragment into parts; they never change,
// so they are kept.
func (p *Server) completeParts(ctx context.Context, s *Session, f *stream.Fragment, ts *trackSet, t *fmp4.Track) ([]part, error) {
	key := partsKey{f.Number, t.Number}
	if ps, ok := p.parts.Get(key); ok {
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
	ps := p.partsOf(t, samples[t.Number], false)
	p.parts.Put(key, ps)
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

// lowLatencySession is the session as its LL-HLS playlists see it: with
// DiscontinuityMode ALWAYS, a discontinuity is marked only where the media
// has one (as ON_DISCONTINUITY does). A discontinuity before every segment
// cuts the parts of a live edge into separate timelines, and hls.js then
// fails with "discontinuity sequence mismatch" at the first segment
// boundary; the plain playlists of the same session keep ALWAYS.
func lowLatencySession(s *Session) *Session {
	if s.Discontinuity != DiscontinuityAlways {
		return s
	}
	ll := *s
	ll.Discontinuity = DiscontinuityOnGap
	return &ll
}

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
	s = lowLatencySession(s)
	var w *window
	var e *liveEdge
	err = p.hold(ctx, s.StreamID, func() (bool, time.Duration, error) {
		// Most wake-ups are one more block of the open fragment: then only
		// its parts change, and the window needs no index query.
		open, isOpen := p.Archive.Live.Open(s.StreamID)
		if e != nil && e.open != nil && isOpen && open.Fragment.Number == e.open.Number {
			if err := p.setOpen(e, w, open); err != nil {
				return false, 0, err
			}
		} else {
			var err error
			if w, err = p.window(ctx, s); err != nil {
				return false, 0, apierr.Internal(err)
			}
			if e, err = p.edge(ctx, s, w, track); err != nil {
				return false, 0, err
			}
		}
		if msn < 0 || e.has(w, msn, partIdx) {
			return true, 0, nil
		}
		if msn > w.nextMSN()+2 {
			return false, 0, apierr.InvalidArg("_HLS_msn %d is more than two segments past the playlist's last (%d)", msn, w.nextMSN()-1)
		}
		// Three target durations, as RFC 8216bis bounds the hold.
		return false, 3 * time.Duration(targetDuration(w)) * time.Second, nil
	})
	if err != nil {
		return nil, err
	}
	return []byte(mediaPlaylist(token, s, w, track, e)), nil
}

// hold runs try now and again after every change of the stream (a block or
// a fragment received) until it reports done or fails. The first limit it
// returns bounds the wait; past it the request gets errHoldExpired, which
// players retry.
func (p *Server) hold(ctx context.Context, streamID int64, try func() (done bool, limit time.Duration, err error)) error {
	var expire <-chan time.Time
	for {
		changed := p.Archive.Live.Changed(streamID) // before looking, so no change is missed
		done, limit, err := try()
		if done || err != nil {
			return err
		}
		if expire == nil {
			timer := time.NewTimer(limit)
			defer timer.Stop()
			expire = timer.C
		}
		select {
		case <-changed:
		case <-expire:
			return errHoldExpired
		case <-ctx.Done():
			return ctx.Err()
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
	var pieces [][]byte
	err = p.hold(ctx, s.StreamID, func() (bool, time.Duration, error) {
		if open, ok := p.Archive.Live.Open(s.StreamID); ok && open.Fragment.Number == n {
			var err error
			pieces, err = p.partOf(ctx, &open.Fragment, open.Body, true, track, k)
			if errors.Is(err, errPartAhead) {
				return false, partWait, nil // asked for ahead (a preload hint): wait for it
			}
			return true, 0, err
		}
		f, data, err := p.fragmentByNumber(ctx, s, n)
		if err == nil {
			pieces, err = p.partOf(ctx, f, data, false, track, k)
		}
		return true, 0, err
	})
	return pieces, err
}

// errPartAhead: the fragment is still open and has no such part yet.
var errPartAhead = errors.New("part not yet received")

// partOf packages part k of a track of a fragment: from its complete
// Cluster, or, when open, from the Cluster's content so far.
func (p *Server) partOf(ctx context.Context, f *stream.Fragment, data []byte, open bool, track uint64, k int) ([][]byte, error) {
	ts, t, err := p.trackSetOf(ctx, f.HeaderID, track)
	if err != nil {
		return nil, err
	}
	var samples map[uint64][]fmp4.Sample
	if open {
		samples, err = fmp4.OpenFragmentSamples(ts.header, ts.tracks, data)
	} else {
		samples, err = fmp4.FragmentSamples(ts.header, ts.tracks, data, 0)
	}
	if err != nil {
		return nil, apierr.New("InvalidMediaFrameException", "fragment %s: %v", f.Number, err)
	}
	ss := samples[t.Number]
	parts := p.partsOf(t, ss, open)
	switch {
	case k < len(parts):
		return segmentPieces(f, t, ss[parts[k].first:parts[k].end])
	case open:
		return nil, errPartAhead
	}
	return nil, apierr.NotFound("fragment %s has %d parts of track %d", f.Number, len(parts), track)
}

// trackSetOf returns a track set and its track number track.
func (p *Server) trackSetOf(ctx context.Context, headerID int64, track uint64) (*trackSet, *fmp4.Track, error) {
	ts, err := p.tracksOf(ctx, headerID)
	if err != nil {
		return nil, nil, err
	}
	i := slices.IndexFunc(ts.tracks, func(t *fmp4.Track) bool { return t.Number == track })
	if i < 0 {
		return nil, nil, apierr.NotFound("the stream has no playable track %d", track)
	}
	return ts, ts.tracks[i], nil
}

// segmentPieces is a media segment of samples of one track, as pieces: the
// moof and mdat header, then the samples as they lie in the fragment.
func segmentPieces(f *stream.Fragment, t *fmp4.Track, ss []fmp4.Sample) ([][]byte, error) {
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
