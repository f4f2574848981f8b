package producer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
	"sync/atomic"
	"time"

	"github.com/kinema/kinema/internal/media/mkv"
)

// schedule is a validated body: the plans, repeated Loop times, with the
// wire timecode and send time of everything. Put and MarshalBody share it.
type schedule struct {
	cfg     Config
	plans   []FragmentPlan
	header  mkv.Header
	sendAt  [][]int64 // per plan and frame: media time at which the frame goes out
	base    int64     // plans[0].StartMs: media time 0 on the wire
	period  int64     // media time one repeat lasts
	startMs int64     // producer start, epoch ms
}

func newSchedule(cfg Config, plans []FragmentPlan, header mkv.Header) (*schedule, error) {
	if len(plans) == 0 {
		return nil, errors.New("producer: no fragments to send")
	}
	if len(header.Tracks) == 0 {
		return nil, errors.New("producer: the header has no tracks")
	}
	if header.TimecodeScale != 0 && header.TimecodeScale != mkv.DefaultTimecodeScale {
		return nil, fmt.Errorf("producer: TimecodeScale %d; frames are timed in ms, so it must be 1000000", header.TimecodeScale)
	}
	header.TimecodeScale = mkv.DefaultTimecodeScale
	if len(header.SegmentUID) == 0 {
		// One random UID per session, as the SDK makes one per stream.
		header.SegmentUID = make([]byte, 16)
		rand.Read(header.SegmentUID)
	}
	declared := map[uint64]bool{}
	for _, t := range header.Tracks {
		declared[t.Number] = true
	}
	s := &schedule{cfg: cfg, plans: plans, header: header, base: plans[0].StartMs, startMs: cfg.StartTime.UnixMilli()}
	s.sendAt = make([][]int64, len(plans))
	for i, p := range plans {
		if len(p.Frames) == 0 {
			return nil, fmt.Errorf("producer: fragment %d has no frames", i)
		}
		if i > 0 && p.StartMs <= plans[i-1].StartMs {
			return nil, fmt.Errorf("producer: fragment %d starts at %d ms, not after fragment %d (%d ms)", i, p.StartMs, i-1, plans[i-1].StartMs)
		}
		at := make([]int64, len(p.Frames))
		next := int64(math.MaxInt64)
		for j := len(p.Frames) - 1; j >= 0; j-- {
			f := p.Frames[j]
			if !declared[f.Track] {
				return nil, fmt.Errorf("producer: fragment %d has a frame of track %d, which the header does not declare", i, f.Track)
			}
			if rel := f.PTSms - p.StartMs; rel < math.MinInt16 || rel > math.MaxInt16 {
				return nil, fmt.Errorf("producer: a frame of fragment %d lies %d ms from its start; a SimpleBlock "+
					"reaches only ±32767 ms and KVS takes fragments up to 20 s: use shorter GOPs (ffmpeg -g)", i, rel)
			}
			// A frame goes out no earlier than every frame after it is due:
			// a monotone send time, which decode order with B-frames lacks.
			next = min(next, f.PTSms)
			at[j] = next
		}
		s.sendAt[i] = at
	}
	last := plans[len(plans)-1]
	end := last.StartMs + last.DurationMs
	if last.DurationMs <= 0 {
		end = last.StartMs + 1
		for _, f := range last.Frames {
			end = max(end, f.PTSms+1)
		}
	}
	s.period = end - s.base
	return s, nil
}

func (s *schedule) total() int { return len(s.plans) * s.cfg.Loop }

// timecode is the Cluster Timecode of plan pi in repeat loop: epoch ms in
// ABSOLUTE mode, ms since the producer start in RELATIVE mode.
func (s *schedule) timecode(loop, pi int) uint64 {
	t := s.mediaMs(loop, s.plans[pi].StartMs)
	if s.cfg.TimecodeType != TimecodeRelative {
		t += s.startMs
	}
	return uint64(t)
}

// mediaMs maps a media time of repeat loop to ms since the body's start.
func (s *schedule) mediaMs(loop int, ms int64) int64 {
	return int64(loop)*s.period + ms - s.base
}

// sender writes a schedule's body. The hooks let Put pace frames and note
// when each fragment starts and is complete; MarshalBody leaves them nil.
type sender struct {
	s        *schedule
	w        *bufio.Writer
	flushAll bool                         // flush after every frame (realtime)
	pace     func(bodyMs int64) error     // wait until the body time is due
	begin    func(i int, timecode uint64) // fragment i is about to start
	complete func(i int)                  // fragment i is complete with what is about to be written
	sent     func(i int)                  // fragment i was handed to the connection
}

// run writes the header and every fragment. Without end-of-fragment tags
// the last fragment is completed by closing the body, which is the caller's
// job (complete is called for it before run returns).
func (sn *sender) run() error {
	s, w := sn.s, sn.w
	eofr := !s.cfg.NoEndOfFragmentTags
	buf := appendStreamHeader(make([]byte, 0, 4096), s.header)
	for loop := 0; loop < s.cfg.Loop; loop++ {
		for pi := range s.plans {
			p := &s.plans[pi]
			i := loop*len(s.plans) + pi
			tc := s.timecode(loop, pi)
			for fi, f := range p.Frames {
				if sn.pace != nil {
					if err := sn.pace(s.mediaMs(loop, s.sendAt[pi][fi])); err != nil {
						return err
					}
				}
				if fi == 0 {
					// The Cluster goes out with its first frame, so that
					// a paced fragment starts when its key frame is due.
					if i > 0 && !eofr {
						sn.hook(sn.complete, i-1)
					}
					if sn.begin != nil {
						sn.begin(i, tc)
					}
					buf = appendClusterStart(buf, tc)
				}
				reltc := int16(f.PTSms - p.StartMs)
				buf = appendBlockHeader(buf, f.Track, reltc, f.Keyframe, len(f.Data))
				if _, err := w.Write(buf); err != nil {
					return err
				}
				buf = buf[:0]
				if _, err := w.Write(f.Data); err != nil {
					return err
				}
				if sn.flushAll {
					if err := w.Flush(); err != nil {
						return err
					}
				}
			}
			if s.cfg.FragmentTags != nil {
				for _, t := range s.cfg.FragmentTags(i) {
					buf = appendTag(buf, t.Name, t.Value)
				}
			}
			if eofr {
				buf = appendTag(buf, TagEndOfFragment, "")
				sn.hook(sn.complete, i)
			}
			if _, err := w.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
			if err := w.Flush(); err != nil {
				return err
			}
			sn.hook(sn.sent, i)
		}
	}
	if !eofr {
		sn.hook(sn.complete, s.total()-1)
	}
	return nil
}

func (sn *sender) hook(f func(int), i int) {
	if f != nil {
		f(i)
	}
}

// MarshalBody returns the PutMedia body Put would send for cfg (timecode
// type, start time, Loop, tags), unpaced. Tests corrupt it and send it with
// PutRaw, or parse it back.
func MarshalBody(cfg Config, plans []FragmentPlan, header mkv.Header) ([]byte, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s, err := newSchedule(cfg, plans, header)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	if err := (&sender{s: s, w: w}).run(); err != nil {
		return nil, err
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// countWriter counts the bytes that reached w; read concurrently.
type countWriter struct {
	w io.Writer
	n atomic.Int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// pacer returns a pace hook that sleeps until t0 + bodyMs, or fails when ctx
// ends or stop closes.
func pacer(ctx context.Context, stop <-chan struct{}, t0 time.Time) func(int64) error {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	return func(bodyMs int64) error {
		d := time.Until(t0.Add(time.Duration(bodyMs) * time.Millisecond))
		if d <= 0 {
			return nil
		}
		timer.Reset(d)
		select {
		case <-timer.C:
			return nil
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-stop:
			timer.Stop()
			return errStopped
		}
	}
}

var errStopped = errors.New("producer: session stopped")
