package images

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/kinema/kinema/internal/media/mkv"
)

// session is one ffmpeg process fed a Matroska stream of frames: a header
// with the one decoder track, then runs of frames, each starting at a key
// frame. Fed timestamps are ms (TimecodeScale 1 ms) of Kinema's choosing.
type session struct {
	d       *Decoder
	args    []string
	p       *proc
	w       *bufio.Writer
	stop    func() bool
	next    int64 // the next fed timestamp (with oddWanted) or frame count
	fps     int64 // without oddWanted: frame n is fed at n*1000/fps ms (1000 when 0)
	cluster int64 // timecode of the open cluster; -1 before the first
	buf     []byte
	wanted  int           // frames fed as wanted
	out     chan readDone // the output reader's result
	werr    error         // sticky write error
}

type readDone struct {
	n   int // outputs read (images)
	err error
}

// startSession takes a process for args and writes the stream header;
// read consumes the process's stdout until it ends and says how many
// outputs (images) it read.
func (d *Decoder) startSession(ctx context.Context, args []string, track mkv.Track, read func(io.Reader) (int, error)) (*session, error) {
	p, err := d.acquire(args)
	if err != nil {
		return nil, err
	}
	s := &session{d: d, args: args, p: p, w: bufio.NewWriterSize(p.stdin, 256<<10), cluster: -1, out: make(chan readDone, 1)}
	s.stop = p.watch(ctx)
	go func() {
		n, err := read(p.stdout)
		drain(p.stdout)
		s.out <- readDone{n, err}
	}()
	s.buf = mkv.AppendHeader(s.buf[:0], mkv.Header{TimecodeScale: mkv.DefaultTimecodeScale, MuxingApp: "kinema", WritingApp: "kinema",
		Tracks: []mkv.Track{track}})
	s.write()
	return s, nil
}

func (s *session) write() {
	if s.werr == nil {
		_, s.werr = s.w.Write(s.buf)
	}
	s.buf = s.buf[:0]
}

// feed writes a run of frames (decode order, the first a key frame) with
// fed timestamps in their display order, a fed timestamp per frame; want
// says which frames are wanted. It returns the fed timestamp of each
// frame. With oddWanted, wanted frames get odd timestamps and the others
// even ones (the image command's select filter keeps the odd ones);
// without it frames are spaced at the session's frame rate, for commands
// that keep every frame as it is fed (a time-lapse copying key frames).
func (s *session) feed(run []frame, want func(i int) bool, oddWanted bool) []int64 {
	order := make([]int, len(run))
	for i := range order {
		order[i] = i
	}
	// Display order; ties (which a sane stream does not have) keep decode order.
	slices.SortStableFunc(order, func(a, b int) int { return cmpInt64(run[a].pts, run[b].pts) })
	fed := make([]int64, len(run))
	for _, i := range order {
		switch {
		case !oddWanted:
			fps := s.fps
			if fps <= 0 {
				fps = 1000
			}
			fed[i] = s.next * 1000 / fps
			s.next++
		case want(i):
			fed[i] = s.next + 1
			s.next += 2
			s.wanted++
		default:
			fed[i] = s.next
			s.next += 2
		}
	}
	for i := range run {
		rel := fed[i] - s.cluster
		if s.cluster < 0 || rel < -30000 || rel > 30000 {
			s.cluster, rel = fed[i], 0
			s.buf = mkv.AppendClusterStartUnknown(s.buf, uint64(s.cluster))
		}
		s.buf = mkv.AppendSimpleBlock(s.buf, 1, int16(rel), run[i].key, run[i].data)
		s.write()
	}
	return fed
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// finish ends the input and waits for the output. When every wanted image
// came out, the process is left to exit (and be reaped) on its own: its
// teardown takes a few milliseconds a single image need not wait for.
func (s *session) finish() error {
	if s.werr == nil {
		s.werr = s.w.Flush()
	}
	s.p.stdin.Close()
	r := <-s.out
	s.p.stdout.Close()
	defer s.d.rewarm(s.args)
	if r.err == nil && s.werr == nil && s.wanted > 0 && r.n == s.wanted {
		if !s.stop() {
			return context.Canceled
		}
		return nil
	}
	perr := s.p.wait()
	killed := !s.stop()
	switch {
	case killed:
		return context.Canceled
	case perr != nil:
		return perr
	case r.err != nil:
		return fmt.Errorf("reading ffmpeg's output: %w", r.err)
	case s.werr != nil && !errors.Is(s.werr, io.ErrClosedPipe):
		return fmt.Errorf("feeding ffmpeg: %w", s.werr)
	}
	return nil
}

// abort kills the process.
func (s *session) abort() {
	s.stop()
	s.p.kill()
	<-s.out
	<-s.p.exited
}

// readImages collects the images of an image command's output by their
// timestamp (ms).
func readImages(into map[int64][]byte) func(io.Reader) (int, error) {
	return func(r io.Reader) (int, error) {
		mr := mkv.NewReader(r, mkv.Options{MaxBlockSize: 64 << 20})
		scale := int64(mkv.DefaultTimecodeScale)
		var tc int64
		for {
			ev, err := mr.Next()
			if err == io.EOF {
				return len(into), nil
			}
			if err != nil {
				return len(into), err
			}
			switch ev.Type {
			case mkv.EventHeader:
				if ev.Header.TimecodeScale > 0 && ev.Header.TimecodeScale < 1<<40 {
					scale = int64(ev.Header.TimecodeScale)
				}
			case mkv.EventClusterStart:
				tc = int64(min(ev.ClusterTimecode, 1<<40))
			case mkv.EventBlock:
				frames, err := ev.Block.Frames()
				if err != nil {
					return len(into), err
				}
				if len(frames) == 1 {
					ms := floorDiv((tc+int64(ev.Block.Timecode))*scale+scale/2, 1e6) // the muxer rounds to its tick
					into[ms] = frames[0]
				}
			}
		}
	}
}
