package images

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/kinema/kinema/internal/apierr"
	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/stream"
)

// Time-lapse limits.
const (
	// MaxTimelapseFrames bounds the samples of one time-lapse (a day at
	// one frame a second is 86,400).
	MaxTimelapseFrames  = 100_000
	DefaultTimelapseFPS = 25
	MaxTimelapseFPS     = 120
)

// TimelapseRequest asks for a video of one frame per Interval of a stream.
type TimelapseRequest struct {
	Stream     *stream.Stream
	Clock      archive.TimestampKind
	StartMs    int64
	EndMs      int64
	IntervalMs int64
	FPS        int // frames per second of the video (DefaultTimelapseFPS when 0)
	// Width and Height as in Output. With neither, no frame is re-encoded:
	// each sample shows the key frame at or before its time, copied.
	Width, Height int
}

// TimelapseSamplesHeader carries the number of sample times of a
// time-lapse response: the most frames it can have (samples without media,
// and samples that show the same frame as the one before, add none).
const TimelapseSamplesHeader = "x-kinema-timelapse-samples"

// TimelapseContentType is what a time-lapse is: a fragmented MP4 with one
// fragment per frame, so that it can be sent while it is made and a client
// can count frames as they arrive.
const TimelapseContentType = "video/mp4"

// Samples returns the request's sample times.
func (r *TimelapseRequest) samples() []int64 {
	var out []int64
	for t := r.StartMs; t <= r.EndMs; t += r.IntervalMs {
		out = append(out, t)
	}
	return out
}

// Check validates the request's numbers.
func (r *TimelapseRequest) Check() error {
	switch {
	case r.EndMs < r.StartMs:
		return apierr.InvalidArg("EndTimestamp must not be before StartTimestamp")
	case r.IntervalMs < MinSamplingInterval.Milliseconds() || r.IntervalMs > MaxSamplingInterval.Milliseconds():
		return apierr.InvalidArg("SamplingInterval must be %d to %d ms; got %d", MinSamplingInterval.Milliseconds(),
			MaxSamplingInterval.Milliseconds(), r.IntervalMs)
	case (r.EndMs-r.StartMs)/r.IntervalMs+1 > MaxTimelapseFrames:
		return apierr.InvalidArg("a time-lapse has at most %d samples; this range and interval make %d",
			MaxTimelapseFrames, (r.EndMs-r.StartMs)/r.IntervalMs+1)
	case r.FPS < 0 || r.FPS > MaxTimelapseFPS:
		return apierr.InvalidArg("FramesPerSecond must be 1 to %d; got %d", MaxTimelapseFPS, r.FPS)
	case r.Width < 0 || r.Width > MaxWidth || r.Height < 0 || r.Height > MaxHeight:
		return apierr.InvalidArg("WidthPixels must be 1 to %d and HeightPixels 1 to %d", MaxWidth, MaxHeight)
	}
	return nil
}

// timelapseArgs is the ffmpeg command for a time-lapse. Copying key frames
// needs no decoder; re-encoding keeps the wanted frames (odd fed
// timestamps), numbers them at the frame rate, and scales them.
func (r *TimelapseRequest) timelapseArgs() []string {
	fps := strconv.Itoa(r.fps())
	out := []string{"-f", "mp4", "-movflags", "frag_every_frame+empty_moov+default_base_moof", "pipe:1"}
	if r.copyKeyFrames() {
		// Probing stays on here: the MP4 muxer wants the codec's
		// parameters, which a stream copy never decodes to learn.
		in := []string{"-hide_banner", "-nostats", "-loglevel", "error", "-copyts", "-f", "matroska", "-i", "pipe:0"}
		return append(append(in, "-map", "0:v:0", "-c", "copy"), out...)
	}
	vf := selectTargets + ",setpts=N/(" + fps + "*TB)" + Output{Width: r.Width, Height: r.Height}.scaleFilter()
	args := append(inputArgs(), "-map", "0:v:0", "-vf", vf, "-fps_mode", "cfr", "-r", fps,
		"-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p")
	return append(args, out...)
}

func (r *TimelapseRequest) fps() int {
	if r.FPS <= 0 {
		return DefaultTimelapseFPS
	}
	return r.FPS
}

func (r *TimelapseRequest) copyKeyFrames() bool { return r.Width == 0 && r.Height == 0 }

// Timelapse writes the time-lapse to w as it is made: an HTTP response
// (headers, then the MP4) when w is an http.ResponseWriter. It stops early,
// logging why, where the stream's track set changes (one video has one
// codec configuration), as GetClip does. Errors before the response begins
// are API errors; later ones end it short and are logged.
func (s *Service) Timelapse(ctx context.Context, w io.Writer, req TimelapseRequest) error {
	if err := req.Check(); err != nil {
		return err
	}
	if err := s.Decoder.Available(); err != nil {
		return Unavailable(err)
	}
	if req.Stream.RetentionHours == 0 {
		return apierr.New("NoDataRetentionException", "stream %s keeps no data", req.Stream.Name)
	}
	last, err := s.Archive.Index.FragmentAtOrBefore(ctx, req.Stream.ID, req.Clock, req.EndMs)
	if errors.Is(err, archive.ErrNotFound) || (err == nil && startOn(last, req.Clock)+last.DurationMs < req.StartMs) {
		return apierr.NotFound("stream %s has no media in the requested range", req.Stream.Name)
	}
	if err != nil {
		return apierr.Internal(err)
	}
	times := req.samples()
	if hw, ok := w.(http.ResponseWriter); ok {
		hw.Header().Set("Content-Type", TimelapseContentType)
		hw.Header().Set(TimelapseSamplesHeader, strconv.Itoa(len(times)))
		hw.WriteHeader(http.StatusOK)
	}
	p := &planner{svc: s, st: req.Stream, kind: req.Clock, times: times, keyOnly: req.copyKeyFrames()}
	args := req.timelapseArgs()
	var sess *session
	var header int64
	errTrackChange := errors.New("the track set changes")
	err = p.plan(ctx, func(r *run) error {
		if sess == nil {
			var err error
			if sess, err = s.Decoder.startSession(ctx, args, r.l.ts.decoderTrack(), copyOut(w)); err != nil {
				return err
			}
			sess.fps, header = int64(req.fps()), r.l.frag.HeaderID
		} else if r.l.frag.HeaderID != header {
			return errTrackChange
		}
		if req.copyKeyFrames() {
			sess.feed(r.l.frames[r.key:r.key+1], func(int) bool { return true }, false)
		} else {
			sess.feed(r.l.frames[r.key:r.end+1], func(i int) bool { return r.wanted[r.key+i] != nil }, true)
		}
		return nil
	})
	// The response has begun: from here on a failure can only end it short.
	if errors.Is(err, errTrackChange) {
		s.log().Info("time-lapse ends where the track set changes", "stream", req.Stream.Name)
		err = nil
	}
	if err != nil {
		s.log().Warn("time-lapse ended early", "stream", req.Stream.Name, "err", err)
		if sess != nil {
			sess.abort()
		}
		return nil
	}
	if sess != nil {
		if err := sess.finish(); err != nil {
			s.log().Warn("time-lapse ended early", "stream", req.Stream.Name, "err", err)
		}
	}
	return nil
}

// copyOut streams ffmpeg's output to w, flushing as it goes so that a
// client sees frames arrive.
func copyOut(w io.Writer) func(io.Reader) (int, error) {
	return func(r io.Reader) (int, error) {
		f, _ := w.(http.Flusher)
		buf := make([]byte, 256<<10)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return 0, fmt.Errorf("sending the time-lapse: %w", werr)
				}
				if f != nil {
					f.Flush()
				}
			}
			if err == io.EOF {
				return 0, nil
			}
			if err != nil {
				return 0, err
			}
		}
	}
}
