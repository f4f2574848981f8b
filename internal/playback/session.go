package playback

import (
	"context"
	"errors"
	"time"

	"github.com/kinema/kinema/internal/apierr"
	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/stream"
)

// Request is a GetHLSStreamingSessionURL or GetDASHStreamingSessionURL call,
// its enums already checked by the API layer. Nil means "not given".
type Request struct {
	Stream        *stream.Stream
	Kind          Kind
	Mode          Mode
	Selector      archive.TimestampKind
	StartMs       *int64
	EndMs         *int64
	Container     Container
	Discontinuity Discontinuity // 0: the KVS default for the selector
	ShowTimestamp bool
	ShowNumber    bool
	ExpiresSec    *int64
	MaxFragments  *int64
}

// Limits from the KVS API.
const (
	minExpires      = 300
	maxExpires      = 43200
	maxRange        = 24 * time.Hour
	liveFreshness   = 30 * time.Second
	maxPlaylistSize = 5000
)

// NewSession checks a request against the KVS rules and the archive and
// returns the session to sign. Errors are *apierr.Error.
func (p *Server) NewSession(ctx context.Context, req Request) (*Session, error) {
	st := req.Stream
	if st.RetentionHours == 0 {
		return nil, apierr.New("NoDataRetentionException", "stream %s keeps no data (DataRetentionInHours is 0)", st.Name)
	}
	now := p.now()
	s := &Session{Kind: req.Kind, StreamID: st.ID, StreamCreatedMs: st.Created.UnixMilli(), Mode: req.Mode,
		Selector: req.Selector, Container: req.Container, ShowTimestamp: req.ShowTimestamp, ShowNumber: req.ShowNumber,
		CreatedMs: now.UnixMilli()}
	if s.Mode == 0 {
		s.Mode = Live
	}
	if s.Container == 0 {
		s.Container = FragmentedMP4
	}
	s.Discontinuity = req.Discontinuity
	if s.Discontinuity == 0 {
		s.Discontinuity = DiscontinuityAlways
		if s.Selector == archive.ProducerTimestamp {
			s.Discontinuity = DiscontinuityNever
		}
	}
	expires := int64(minExpires)
	if req.ExpiresSec != nil {
		if *req.ExpiresSec < minExpires || *req.ExpiresSec > maxExpires {
			return nil, apierr.InvalidArg("Expires must be %d to %d seconds; got %d", minExpires, maxExpires, *req.ExpiresSec)
		}
		expires = *req.ExpiresSec
	}
	s.ExpiresMs = now.UnixMilli() + expires*1000
	s.MaxFragments = 5
	if s.Mode == OnDemand {
		s.MaxFragments = 1000
	}
	if req.MaxFragments != nil {
		if *req.MaxFragments < 1 || *req.MaxFragments > maxPlaylistSize {
			return nil, apierr.InvalidArg("the maximum number of fragments must be 1 to %d; got %d", maxPlaylistSize, *req.MaxFragments)
		}
		s.MaxFragments = int(*req.MaxFragments)
	}
	switch s.Mode {
	case Live:
		if req.StartMs != nil || req.EndMs != nil {
			return nil, apierr.InvalidArg("a TimestampRange is not allowed with PlaybackMode LIVE")
		}
		latest, err := p.Archive.Newest(ctx, st.ID)
		if err != nil && !errors.Is(err, archive.ErrNotFound) {
			return nil, apierr.Internal(err)
		}
		if latest == nil || now.UnixMilli()-latest.ServerMs > liveFreshness.Milliseconds() {
			return nil, apierr.NotFound("no fragment of stream %s arrived in the last %v", st.Name, liveFreshness)
		}
	case LiveReplay, OnDemand:
		if req.StartMs == nil {
			return nil, apierr.InvalidArg("PlaybackMode %s needs a fragment selector with a StartTimestamp", modeName(s.Mode))
		}
		if s.Mode == OnDemand && req.EndMs == nil {
			return nil, apierr.InvalidArg("PlaybackMode ON_DEMAND needs a fragment selector with an EndTimestamp")
		}
		s.StartMs = *req.StartMs
		if req.EndMs != nil {
			s.EndMs = *req.EndMs
			if s.EndMs <= s.StartMs {
				return nil, apierr.InvalidArg("EndTimestamp must be after StartTimestamp")
			}
			if s.EndMs-s.StartMs > maxRange.Milliseconds() {
				return nil, apierr.InvalidArg("the range may span at most %v", maxRange)
			}
		}
		if s.Selector == archive.ServerTimestamp && s.StartMs > now.UnixMilli() {
			return nil, apierr.InvalidArg("StartTimestamp is in the future")
		}
		end := s.EndMs
		if end == 0 {
			end = 1 << 62
		}
		first, err := p.Archive.Index.Fragments(ctx, archive.FragmentQuery{StreamID: st.ID, Kind: s.Selector,
			StartMs: s.StartMs, EndMs: end, Limit: 1})
		if err != nil {
			return nil, apierr.Internal(err)
		}
		if len(first) == 0 && s.Mode == OnDemand {
			return nil, apierr.NotFound("stream %s has no fragment in the requested range", st.Name)
		}
	}
	if err := p.checkCodecs(ctx, st.ID); err != nil {
		return nil, err
	}
	return s, nil
}

func modeName(m Mode) string {
	switch m {
	case Live:
		return "LIVE"
	case LiveReplay:
		return "LIVE_REPLAY"
	}
	return "ON_DEMAND"
}

func (p *Server) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}
