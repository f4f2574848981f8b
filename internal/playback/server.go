package playback

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kinema/kinema/internal/apierr"
	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/media/fmp4"
	"github.com/kinema/kinema/internal/media/mkv"
	"github.com/kinema/kinema/internal/memo"
	"github.com/kinema/kinema/internal/metrics"
	"github.com/kinema/kinema/internal/stream"
)

// Server serves session URLs' resources. Requests carry no signature, only
// the SessionToken; a forged, altered or expired token gets 403.
type Server struct {
	Archive *archive.Archive
	Keys    *Keyring
	Now     func() time.Time
	Log     *slog.Logger

	// PartTarget is the LL-HLS part duration; 0 means DefaultPartTarget.
	PartTarget time.Duration
	// Readers counts live sessions' playlist requests; nil: not counted.
	Readers *metrics.Readers

	tracks  memo.Map[int64, *trackSet] // by header id
	parts   memo.Map[partsKey, []part] // LL-HLS parts of complete fragments
	plans   planCache
	streams memo.Map[int64, checkedStream]
}

// checkedStream is a session's stream as looked up at a time.
type checkedStream struct {
	st *stream.Stream
	at time.Time
}

// streamRecheck is how long a session's stream, once found, is taken to
// still exist: a player fetching a fragment every few hundred ms then costs
// one index query a second instead of one per request, and a deleted
// stream stops playing within this long.
const streamRecheck = time.Second

// sessionStream returns the session's stream, or an error if it was deleted
// (or deleted and created again) since the session began.
func (p *Server) sessionStream(ctx context.Context, s *Session) (*stream.Stream, *apierr.Error) {
	now := p.now()
	if c, ok := p.streams.Get(s.StreamID); ok && now.Sub(c.at) < streamRecheck && c.st.Created.UnixMilli() == s.StreamCreatedMs {
		return c.st, nil
	}
	st, err := p.Archive.Index.StreamByID(ctx, s.StreamID)
	if err != nil || st.Created.UnixMilli() != s.StreamCreatedMs {
		return nil, apierr.NotFound("the session's stream no longer exists")
	}
	p.streams.Put(s.StreamID, checkedStream{st, now})
	return st, nil
}

type trackSet struct {
	streamID int64
	header   mkv.Header
	tracks   []*fmp4.Track
	err      error
}

// Prefixes of the resources Server answers.
const (
	HLSPrefix  = "/hls/v1/"
	DASHPrefix = "/dash/v1/"
)

// ServeHTTP answers GETs under HLSPrefix and DASHPrefix.
func (p *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Browser players on another origin must be able to read everything.
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Range, Content-Type")
	h.Set("Access-Control-Expose-Headers", "Content-Length, Content-Range, ETag, x-amzn-ErrorType")
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		apierr.Write(w, apierr.New("MethodNotAllowedException", "playback resources take GET"))
		return
	}
	q := r.URL.Query()
	s, err := p.Keys.Parse(q.Get("SessionToken"), p.now())
	if err != nil {
		apierr.Write(w, &apierr.Error{Type: "NotAuthorizedException", Status: http.StatusForbidden, Message: err.Error()})
		return
	}
	ctx := r.Context()
	st, gone := p.sessionStream(ctx, s)
	if gone != nil {
		apierr.Write(w, gone)
		return
	}
	token := q.Get("SessionToken")
	var resource string
	switch {
	case s.Kind == ClipKind && r.URL.Path == ClipPrefix+ClipResource:
		p.serveClip(w, r, token, s, st)
		return
	case s.Kind == HLS && strings.HasPrefix(r.URL.Path, HLSPrefix):
		resource = strings.TrimPrefix(r.URL.Path, HLSPrefix)
	case s.Kind == DASH && strings.HasPrefix(r.URL.Path, DASHPrefix):
		resource = strings.TrimPrefix(r.URL.Path, DASHPrefix)
	default:
		apierr.Write(w, &apierr.Error{Type: "NotAuthorizedException", Status: http.StatusForbidden, Message: "the session token is for another protocol"})
		return
	}
	var body []byte
	var parts [][]byte // a body in pieces, written without joining them
	var ctype string
	switch {
	case resource == "getHLSMasterPlaylist.m3u8" && s.Kind == HLS:
		body, ctype, err = p.master(ctx, token, s, q)
	case resource == "getHLSMediaPlaylist.m3u8" && s.Kind == HLS:
		if s.Mode != OnDemand {
			p.Readers.LivePlaylist(false)
		}
		body, ctype, err = p.media(ctx, token, s, q)
	case resource == "getMP4InitFragment.mp4":
		body, ctype, err = p.initSegment(ctx, s, q)
	case resource == "getMP4MediaFragment.mp4":
		parts, ctype, err = p.mediaSegment(ctx, s, q)
	case resource == "getDASHManifest.mpd" && s.Kind == DASH:
		if s.Mode != OnDemand {
			p.Readers.LivePlaylist(true)
		}
		body, ctype, err = p.manifest(ctx, token, s)
	case resource == "getTSFragment.ts" && s.Kind == HLS:
		body, ctype, err = p.tsSegment(ctx, s, q)
	default:
		err = apierr.NotFound("no playback resource %s", r.URL.Path)
	}
	if err != nil {
		e := apierr.As(err)
		if e.Status >= 500 {
			p.Log.Error("playback resource failed", "path", r.URL.Path, "err", err)
		}
		apierr.Write(w, e)
		return
	}
	if parts == nil {
		parts = [][]byte{body}
	}
	size := 0
	for _, part := range parts {
		size += len(part)
	}
	h.Set("Content-Type", ctype)
	h.Set("Content-Length", strconv.Itoa(size))
	if s.Mode != OnDemand && (strings.HasSuffix(resource, ".m3u8") || strings.HasSuffix(resource, ".mpd")) {
		h.Set("Cache-Control", "no-cache")
	}
	if r.Method == http.MethodHead {
		return
	}
	writeParts(w, parts)
}

// writeParts writes large pieces as they are and gathers small ones (box
// headers, audio frames) so that a fragment does not cost a write per sample.
func writeParts(w http.ResponseWriter, parts [][]byte) {
	const small, batch = 16 << 10, 64 << 10
	var pending []byte
	for _, part := range parts {
		if len(part) < small {
			if pending == nil {
				pending = make([]byte, 0, batch+small)
			}
			if pending = append(pending, part...); len(pending) < batch {
				continue
			}
		}
		if len(pending) > 0 {
			if _, err := w.Write(pending); err != nil {
				return
			}
			pending = pending[:0]
		}
		if len(part) >= small {
			if _, err := w.Write(part); err != nil {
				return
			}
		}
	}
	if len(pending) > 0 {
		w.Write(pending)
	}
}

// tracksOf returns the playable tracks of a stored track set.
func (p *Server) tracksOf(ctx context.Context, headerID int64) (*trackSet, error) {
	if ts, ok := p.tracks.Get(headerID); ok {
		return ts, ts.err
	}
	streamID, data, err := p.Archive.Index.Header(ctx, headerID)
	if errors.Is(err, archive.ErrNotFound) {
		return nil, apierr.NotFound("no track set %d", headerID)
	}
	if err != nil {
		return nil, apierr.Internal(err)
	}
	h, err := mkv.DecodeHeaderTracks(data)
	if err != nil {
		return nil, apierr.Internal(err)
	}
	ts := &trackSet{header: *h, streamID: streamID}
	ts.tracks, err = fmp4.TracksFromHeader(*h)
	if err != nil {
		ts.err = codecError(err)
	}
	p.tracks.Put(headerID, ts)
	return ts, ts.err
}

func codecError(err error) error {
	switch {
	case errors.Is(err, fmp4.ErrMissingCodecPrivate):
		return apierr.New("MissingCodecPrivateDataException", "%v", err)
	case errors.Is(err, fmp4.ErrInvalidCodecPrivate):
		return apierr.New("InvalidCodecPrivateDataException", "%v", err)
	}
	return apierr.New("UnsupportedStreamMediaTypeException", "%v", err)
}

// checkCodecs refuses a session whose newest track set cannot be played.
func (p *Server) checkCodecs(ctx context.Context, streamID int64) error {
	id, _, err := p.Archive.Index.LastHeader(ctx, streamID)
	if errors.Is(err, archive.ErrNotFound) {
		return apierr.NotFound("the stream has no media")
	}
	if err != nil {
		return apierr.Internal(err)
	}
	_, err = p.tracksOf(ctx, id)
	return err
}

// fragment finds a fragment of the session's stream, received or persisted,
// and its bytes; it must lie within what the session grants.
func (p *Server) fragment(ctx context.Context, s *Session, q map[string][]string) (*stream.Fragment, []byte, error) {
	v := first(q, "FragmentNumber")
	n, err := stream.ParseFragmentNumber(v)
	if err != nil {
		return nil, nil, apierr.InvalidArg("FragmentNumber: %v", err)
	}
	return p.fragmentByNumber(ctx, s, n)
}

// fragmentByNumber is fragment for a parsed number.
func (p *Server) fragmentByNumber(ctx context.Context, s *Session, n stream.FragmentNumber) (*stream.Fragment, []byte, error) {
	for _, lf := range p.Archive.Live.Recent(s.StreamID) {
		if lf.Fragment.Number == n && lf.Data != nil {
			f := lf.Fragment
			return p.granted(s, &f, lf.Data)
		}
	}
	f, err := p.Archive.Index.Fragment(ctx, s.StreamID, n)
	if errors.Is(err, archive.ErrNotFound) {
		return nil, nil, apierr.NotFound("fragment %s is not in this stream", n)
	}
	if err != nil {
		return nil, nil, apierr.Internal(err)
	}
	data, err := p.Archive.Read(ctx, f)
	if err != nil {
		return nil, nil, apierr.Internal(err)
	}
	return p.granted(s, f, data)
}

func (p *Server) granted(s *Session, f *stream.Fragment, data []byte) (*stream.Fragment, []byte, error) {
	if s.Mode != Live {
		t := s.fragmentTime(f)
		if t < s.StartMs || (s.EndMs != 0 && t > s.EndMs) {
			return nil, nil, apierr.NotFound("fragment %s is outside this session's range", f.Number)
		}
	}
	return f, data, nil
}

func first(q map[string][]string, k string) string {
	if v := q[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func trackNumber(q map[string][]string) (uint64, error) {
	v := first(q, "TrackNumber")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 {
		return 0, apierr.InvalidArg("TrackNumber %q is not a track number", v)
	}
	return n, nil
}
