package images

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/kinema/kinema/internal/media/mkv"
)

// trackSet is a stored track set (Info + Tracks) reduced to what decoding
// needs: its first video track.
type trackSet struct {
	header mkv.Header
	video  *mkv.Track // nil when the track set has no video track
	scale  int64      // ns per timecode tick
}

func newTrackSet(data []byte) (*trackSet, error) {
	h, err := mkv.DecodeHeaderTracks(data)
	if err != nil {
		return nil, err
	}
	ts := &trackSet{header: *h, scale: int64(h.TimecodeScale)}
	if ts.scale <= 0 || h.TimecodeScale > 1<<40 {
		ts.scale = mkv.DefaultTimecodeScale
	}
	for i := range h.Tracks {
		t := &h.Tracks[i]
		// Some producers leave TrackType out; the codec ID still says video.
		if t.Type == mkv.TrackTypeVideo || (t.Type == 0 && strings.HasPrefix(t.CodecID, "V_")) {
			ts.video = t
			break
		}
	}
	return ts, nil
}

// decoderTrack is the track ffmpeg is given: the stored video track as it
// is (codec, CodecPrivate, size), numbered 1, without a default duration
// (the timestamps Kinema feeds are its own).
func (ts *trackSet) decoderTrack() mkv.Track {
	return mkv.Track{Number: 1, Type: mkv.TrackTypeVideo, CodecID: ts.video.CodecID, CodecPrivate: ts.video.CodecPrivate,
		PixelWidth: ts.video.PixelWidth, PixelHeight: ts.video.PixelHeight}
}

// frame is one stored video frame.
type frame struct {
	pts  int64 // presentation time in ns on the producer clock (the stored cluster's time base)
	key  bool
	data []byte
}

// ptsMs is the frame's time in ms, rounded down like every stored time.
func (f *frame) ptsMs() int64 { return floorDiv(f.pts, 1e6) }

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

var errNoVideo = errors.New("the fragment has no video track")

// fragmentFrames returns the video frames of a stored cluster in the order
// they are stored, which is decode order.
func fragmentFrames(ts *trackSet, cluster []byte) ([]frame, error) {
	if ts.video == nil {
		return nil, errNoVideo
	}
	r := mkv.NewReader(bytes.NewReader(cluster), mkv.Options{Header: &ts.header})
	var out []frame
	var tc int64
	for {
		ev, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch ev.Type {
		case mkv.EventClusterStart:
			if ev.ClusterTimecode > 1<<53 {
				return nil, fmt.Errorf("cluster timecode %d out of range", ev.ClusterTimecode)
			}
			tc = int64(ev.ClusterTimecode)
		case mkv.EventBlock:
			b := ev.Block
			if b.Track != ts.video.Number {
				continue
			}
			frames, err := b.Frames()
			if err != nil {
				return nil, err
			}
			if tc > (1<<62)/ts.scale {
				return nil, fmt.Errorf("block time %d ticks of %d ns overflows", tc, ts.scale)
			}
			pts := (tc + int64(b.Timecode)) * ts.scale
			for _, f := range frames {
				// Laced video frames have no time of their own; they keep
				// the block's, and only the first is ever the one at a time.
				if len(f) > 0 {
					out = append(out, frame{pts: pts, key: b.Keyframe, data: f})
				}
			}
		}
	}
	if len(out) == 0 {
		return nil, errNoVideo
	}
	return out, nil
}
