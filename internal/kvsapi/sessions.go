package kvsapi

import (
	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/playback"
)

type hlsSessionInput struct {
	streamRef
	PlaybackMode                    *string           `json:"PlaybackMode"`
	HLSFragmentSelector             *fragmentSelector `json:"HLSFragmentSelector"`
	DASHFragmentSelector            *fragmentSelector `json:"DASHFragmentSelector"`
	ContainerFormat                 *string           `json:"ContainerFormat"`
	DiscontinuityMode               *string           `json:"DiscontinuityMode"`
	DisplayFragmentTimestamp        *string           `json:"DisplayFragmentTimestamp"`
	DisplayFragmentNumber           *string           `json:"DisplayFragmentNumber"`
	Expires                         *int64            `json:"Expires"`
	MaxMediaPlaylistFragmentResults *int64            `json:"MaxMediaPlaylistFragmentResults"`
	MaxManifestFragmentResults      *int64            `json:"MaxManifestFragmentResults"`
}

var modes = map[string]playback.Mode{"LIVE": playback.Live, "LIVE_REPLAY": playback.LiveReplay, "ON_DEMAND": playback.OnDemand}

// sessionRequest turns either session call's input into a playback.Request.
func (s *Server) sessionRequest(c *call, kind playback.Kind) (playback.Request, error) {
	var in hlsSessionInput
	if err := c.decode(&in); err != nil {
		return playback.Request{}, err
	}
	st, err := s.resolve(c.ctx, in.streamRef)
	if err != nil {
		return playback.Request{}, err
	}
	req := playback.Request{Stream: st, Kind: kind, ExpiresSec: in.Expires, Selector: archive.ServerTimestamp}
	if in.PlaybackMode != nil {
		if err := checkEnum("PlaybackMode", *in.PlaybackMode, "LIVE", "LIVE_REPLAY", "ON_DEMAND"); err != nil {
			return req, err
		}
		req.Mode = modes[*in.PlaybackMode]
	}
	sel, display, maxResults := in.HLSFragmentSelector, in.DisplayFragmentTimestamp, in.MaxMediaPlaylistFragmentResults
	if kind == playback.DASH {
		sel, maxResults = in.DASHFragmentSelector, in.MaxManifestFragmentResults
	}
	req.MaxFragments = maxResults
	if sel != nil {
		if sel.FragmentSelectorType != nil {
			if req.Selector, err = selectorKind("FragmentSelectorType", *sel.FragmentSelectorType); err != nil {
				return req, err
			}
		}
		if r := sel.TimestampRange; r != nil {
			if r.StartTimestamp != nil {
				v := r.StartTimestamp.Ms()
				req.StartMs = &v
			}
			if r.EndTimestamp != nil {
				v := r.EndTimestamp.Ms()
				req.EndMs = &v
			}
		}
	}
	if display != nil {
		if err := checkEnum("DisplayFragmentTimestamp", *display, "ALWAYS", "NEVER"); err != nil {
			return req, err
		}
		req.ShowTimestamp = *display == "ALWAYS"
	}
	if kind == playback.HLS {
		if in.ContainerFormat != nil {
			if err := checkEnum("ContainerFormat", *in.ContainerFormat, "FRAGMENTED_MP4", "MPEG_TS"); err != nil {
				return req, err
			}
			if *in.ContainerFormat == "MPEG_TS" {
				req.Container = playback.MPEGTS
			}
		}
		if in.DiscontinuityMode != nil {
			if err := checkEnum("DiscontinuityMode", *in.DiscontinuityMode, "ALWAYS", "NEVER", "ON_DISCONTINUITY"); err != nil {
				return req, err
			}
			req.Discontinuity = map[string]playback.Discontinuity{"ALWAYS": playback.DiscontinuityAlways,
				"NEVER": playback.DiscontinuityNever, "ON_DISCONTINUITY": playback.DiscontinuityOnGap}[*in.DiscontinuityMode]
		}
	} else {
		req.Discontinuity = playback.DiscontinuityNever
		if in.DisplayFragmentNumber != nil {
			if err := checkEnum("DisplayFragmentNumber", *in.DisplayFragmentNumber, "ALWAYS", "NEVER"); err != nil {
				return req, err
			}
			req.ShowNumber = *in.DisplayFragmentNumber == "ALWAYS"
		}
	}
	return req, nil
}

func (s *Server) getHLSStreamingSessionURL(c *call) (any, error) {
	req, err := s.sessionRequest(c, playback.HLS)
	if err != nil {
		return nil, err
	}
	sess, err := s.cfg.Playback.NewSession(c.ctx, req)
	if err != nil {
		return nil, err
	}
	url := s.publicURL(c.r) + playback.HLSPrefix + "getHLSMasterPlaylist.m3u8?SessionToken=" + s.cfg.Playback.Keys.Token(sess)
	return map[string]string{"HLSStreamingSessionURL": url}, nil
}

func (s *Server) getDASHStreamingSessionURL(c *call) (any, error) {
	req, err := s.sessionRequest(c, playback.DASH)
	if err != nil {
		return nil, err
	}
	sess, err := s.cfg.Playback.NewSession(c.ctx, req)
	if err != nil {
		return nil, err
	}
	url := s.publicURL(c.r) + playback.DASHPrefix + "getDASHManifest.mpd?SessionToken=" + s.cfg.Playback.Keys.Token(sess)
	return map[string]string{"DASHStreamingSessionURL": url}, nil
}

type getClipInput struct {
	streamRef
	ClipFragmentSelector *fragmentSelector `json:"ClipFragmentSelector"`
	Expires              *int64            `json:"Expires"` // GetClipSessionURL only
}

// clipRequest reads GetClip's input (GetClipSessionURL takes the same).
func (s *Server) clipRequest(c *call) (playback.ClipRequest, *int64, error) {
	var in getClipInput
	if err := c.decode(&in); err != nil {
		return playback.ClipRequest{}, nil, err
	}
	kind, start, end, err := in.ClipFragmentSelector.timeRange("ClipFragmentSelector")
	if err != nil {
		return playback.ClipRequest{}, nil, err
	}
	st, err := s.resolve(c.ctx, in.streamRef)
	if err != nil {
		return playback.ClipRequest{}, nil, err
	}
	return playback.ClipRequest{Stream: st, Selector: kind, StartMs: start, EndMs: end}, in.Expires, nil
}

func (s *Server) getClip(c *call) error {
	req, _, err := s.clipRequest(c)
	if err != nil {
		return err
	}
	return s.cfg.Playback.WriteClip(c.ctx, c.w, req)
}

func (s *Server) getClipSessionURL(c *call) (any, error) {
	req, expires, err := s.clipRequest(c)
	if err != nil {
		return nil, err
	}
	sess, err := s.cfg.Playback.NewClipSession(c.ctx, req, expires)
	if err != nil {
		return nil, err
	}
	url := s.publicURL(c.r) + playback.ClipPrefix + playback.ClipResource + "?SessionToken=" + s.cfg.Playback.Keys.Token(sess)
	return map[string]string{"ClipURL": url}, nil
}
