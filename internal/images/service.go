package images

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/kinema/kinema/internal/apierr"
	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/stream"
)

// Service makes images from a stream's archive.
type Service struct {
	Archive *archive.Archive
	Decoder *Decoder
	Log     *slog.Logger

	mu     sync.Mutex
	tracks map[int64]*trackSet // stored track sets by header id
}

func (s *Service) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// Request asks for the images of a stream at sample times.
type Request struct {
	Stream *stream.Stream
	Clock  archive.TimestampKind // the clock Times are on
	Times  []int64               // epoch ms, in ascending order
	Output Output
	// Fragments, when set, are the only fragments sampled (in the order of
	// Clock): image generation samples the one fragment it was given.
	Fragments []stream.Fragment
}

// Image is one sample's result.
type Image struct {
	Time   int64 // the sample time
	Status Status
	Data   []byte // the encoded image when Status is OK
	// The frame shown (Status OK): its fragment and its own times.
	Fragment   *stream.Fragment
	ProducerMs int64
	ServerMs   int64
}

// Unavailable is the API error for a server without ffmpeg.
func Unavailable(err error) error {
	return apierr.New("ServiceUnavailableException", "%v", err)
}

// Render makes one image per sample time. Every frame needed goes through
// one ffmpeg process per stored track set in the range (one in all, unless
// the camera changed codec or size mid-range).
func (s *Service) Render(ctx context.Context, req Request) ([]Image, error) {
	if err := s.Decoder.Available(); err != nil {
		return nil, Unavailable(err)
	}
	began := time.Now()
	var planned, fed time.Duration // until the first run was planned, until every frame was fed
	sessions := 0
	p := &planner{svc: s, st: req.Stream, kind: req.Clock, times: req.Times, frags: req.Fragments}
	args := req.Output.renderArgs(len(req.Times))
	var sess *session
	var sessHeader int64
	var decoded map[int64][]byte
	var fedSamples map[int64][]int // per session: fed timestamp -> samples
	images := make([][]byte, len(req.Times))
	finish := func() error {
		if sess == nil {
			return nil
		}
		err := sess.finish()
		sess = nil
		if errors.Is(err, context.Canceled) || ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			// Whatever came out is still good; the rest is MEDIA_ERROR.
			s.log().Warn("decoding images failed", "stream", req.Stream.Name, "err", err)
		}
		for fed, samples := range fedSamples {
			for _, i := range samples {
				images[i] = decoded[fed]
			}
		}
		return nil
	}
	err := p.plan(ctx, func(r *run) error {
		if sess != nil && sessHeader != r.l.frag.HeaderID {
			if err := finish(); err != nil {
				return err
			}
		}
		if sess == nil {
			if sessions++; sessions == 1 {
				planned = time.Since(began)
			}
			decoded, fedSamples = map[int64][]byte{}, map[int64][]int{}
			var err error
			if sess, err = s.Decoder.startSession(ctx, args, r.l.ts.decoderTrack(), readImages(decoded)); err != nil {
				if errors.Is(err, ErrNoFFmpeg) {
					return Unavailable(err)
				}
				return apierr.Internal(err)
			}
			sessHeader = r.l.frag.HeaderID
		}
		fed := sess.feed(r.l.frames[r.key:r.end+1], func(i int) bool { return r.wanted[r.key+i] != nil }, true)
		for idx, samples := range r.wanted {
			fedSamples[fed[idx-r.key]] = samples
		}
		return nil
	})
	fed = time.Since(began)
	if err == nil {
		err = finish()
	}
	if err != nil {
		if sess != nil {
			sess.abort()
		}
		return nil, err
	}
	s.log().Debug("images rendered", "stream", req.Stream.Name, "samples", len(req.Times), "ffmpeg_runs", sessions,
		"first_run_planned", planned, "fed", fed, "total", time.Since(began))
	out := make([]Image, len(req.Times))
	for i, t := range req.Times {
		out[i] = Image{Time: t, Status: p.status[i]}
		if p.status[i] != OK {
			continue
		}
		if images[i] == nil {
			out[i].Status = MediaError
			continue
		}
		ref := &p.frame[i]
		out[i].Data, out[i].Fragment, out[i].ProducerMs, out[i].ServerMs = images[i], &ref.frag, ref.producerMs, ref.serverMs
	}
	return out, nil
}
