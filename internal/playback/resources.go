package playback

import (
	"context"
	"strconv"

	"github.com/kinema/kinema/internal/apierr"
	"github.com/kinema/kinema/internal/media/fmp4"
	"github.com/kinema/kinema/internal/stream"
)

const (
	m3u8Type = "application/vnd.apple.mpegurl"
	mp4Type  = "video/mp4"
	tsType   = "video/mp2t"
)

func (p *Server) master(ctx context.Context, token string, s *Session, q map[string][]string) ([]byte, string, error) {
	w, err := p.window(ctx, s)
	if err != nil {
		return nil, "", apierr.Internal(err)
	}
	headerID, err := p.headerFor(ctx, s, w)
	if err != nil {
		return nil, "", err
	}
	ts, err := p.tracksOf(ctx, headerID)
	if err != nil {
		return nil, "", err
	}
	if lowLatency(s, q) {
		token += "&LowLatency=1" // the media playlists it lists are low-latency too
	}
	return []byte(masterPlaylist(token, s, ts.tracks, bandwidthOf(w.frags))), m3u8Type, nil
}

// headerFor picks the track set the master playlist describes: that of the
// window's newest fragment, else the stream's newest.
func (p *Server) headerFor(ctx context.Context, s *Session, w *window) (int64, error) {
	if n := len(w.frags); n > 0 {
		return w.frags[n-1].HeaderID, nil
	}
	id, _, err := p.Archive.Index.LastHeader(ctx, s.StreamID)
	if err != nil {
		return 0, apierr.NotFound("the stream has no media")
	}
	return id, nil
}

func (p *Server) media(ctx context.Context, token string, s *Session, q map[string][]string) ([]byte, string, error) {
	track, err := trackNumber(q)
	if err != nil {
		return nil, "", err
	}
	if lowLatency(s, q) {
		b, err := p.lowLatencyPlaylist(ctx, token, s, q, track)
		return b, m3u8Type, err
	}
	w, err := p.window(ctx, s)
	if err != nil {
		return nil, "", apierr.Internal(err)
	}
	if track == 0 {
		track = 1
	}
	return []byte(mediaPlaylist(token, s, w, track, nil)), m3u8Type, nil
}

func (p *Server) initSegment(ctx context.Context, s *Session, q map[string][]string) ([]byte, string, error) {
	track, err := trackNumber(q)
	if err != nil {
		return nil, "", err
	}
	headerID, err := strconv.ParseInt(first(q, "SequenceNumber"), 10, 64)
	if err != nil {
		id, _, lerr := p.Archive.Index.LastHeader(ctx, s.StreamID)
		if lerr != nil {
			return nil, "", apierr.NotFound("the stream has no media")
		}
		headerID = id
	}
	ts, err := p.tracksOf(ctx, headerID)
	if err == nil && ts.streamID != s.StreamID {
		err = apierr.NotFound("no init segment %d in this stream", headerID)
	}
	if err != nil {
		return nil, "", err
	}
	var tracks []*fmp4.Track
	for _, t := range ts.tracks {
		if track == 0 || t.Number == track {
			tracks = append(tracks, t)
		}
	}
	if len(tracks) == 0 {
		return nil, "", apierr.NotFound("the stream has no playable track %d", track)
	}
	b, err := fmp4.AppendInit(nil, tracks...)
	if err != nil {
		return nil, "", codecError(err)
	}
	return b, mp4Type, nil
}

// fragmentSamples loads the requested fragment and parses it into samples.
func (p *Server) fragmentSamples(ctx context.Context, s *Session, q map[string][]string) (*stream.Fragment, *trackSet, map[uint64][]fmp4.Sample, error) {
	f, data, err := p.fragment(ctx, s, q)
	if err != nil {
		return nil, nil, nil, err
	}
	ts, err := p.tracksOf(ctx, f.HeaderID)
	if err != nil {
		return nil, nil, nil, err
	}
	samples, err := fmp4.FragmentSamples(ts.header, ts.tracks, data, 0)
	if err != nil {
		return nil, nil, nil, apierr.New("InvalidMediaFrameException", "fragment %s: %v", f.Number, err)
	}
	return f, ts, samples, nil
}

// mediaSegment answers getMP4MediaFragment.mp4 as pieces: each track's
// moof and mdat header, then its samples straight from the buffer the
// fragment was read into (a 500 kB fragment is not copied again).
func (p *Server) mediaSegment(ctx context.Context, s *Session, q map[string][]string) ([][]byte, string, error) {
	track, err := trackNumber(q)
	if err != nil {
		return nil, "", err
	}
	if first(q, "PartNumber") != "" {
		pieces, err := p.partSegment(ctx, s, q, track)
		return pieces, mp4Type, err
	}
	f, ts, samples, err := p.fragmentSamples(ctx, s, q)
	if err != nil {
		return nil, "", err
	}
	var parts [][]byte
	for _, t := range ts.tracks {
		ss := samples[t.Number]
		if (track != 0 && t.Number != track) || len(ss) == 0 {
			continue
		}
		pieces, err := segmentPieces(f, t, ss)
		if err != nil {
			return nil, "", err
		}
		parts = append(parts, pieces...)
	}
	if len(parts) == 0 {
		return nil, "", apierr.NotFound("the fragment has no track %d", track)
	}
	return parts, mp4Type, nil
}

func (p *Server) tsSegment(ctx context.Context, s *Session, q map[string][]string) ([]byte, string, error) {
	f, ts, samples, err := p.fragmentSamples(ctx, s, q)
	if err != nil {
		return nil, "", err
	}
	var tracks []*fmp4.Track
	for _, t := range ts.tracks {
		if t.SupportsTS() {
			tracks = append(tracks, t)
		}
	}
	b, err := fmp4.AppendTS(nil, nil, tracks, samples)
	if err != nil {
		return nil, "", apierr.New("InvalidMediaFrameException", "fragment %s: %v", f.Number, err)
	}
	return b, tsType, nil
}
