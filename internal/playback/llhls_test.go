package playback

import (
	"testing"
	"time"

	"github.com/kinema/kinema/internal/media/fmp4"
	"github.com/kinema/kinema/internal/stream"
)

// Part lengths: video takes the most frames that fit in the target and
// divide a second evenly, so whole-second GOPs split into equal parts;
// audio takes as many frames as fit.
func TestPartLength(t *testing.T) {
	p := &Server{}
	video := &fmp4.Track{Kind: fmp4.Video, Timescale: 90000}
	audio := &fmp4.Track{Kind: fmp4.Audio, Timescale: 48000}
	for _, c := range []struct {
		t     *fmp4.Track
		ticks uint32
		want  int
	}{
		{video, 3600, 5},  // 25 fps: 12 fit, 5 divides 25
		{video, 3000, 15}, // 30 fps
		{video, 3750, 12}, // 24 fps
		{video, 6000, 5},  // 15 fps: 7 fit, 5 divides 15
		{video, 90000, 1}, // 1 fps
		{video, 0, 1},     // unknown frame duration
		{audio, 1024, 23}, // AAC at 48 kHz: 23 x 21.3 ms
	} {
		if got := p.partLength(c.t, c.ticks); got != c.want {
			t.Errorf("%v track, frames of %d ticks: parts of %d, want %d", c.t.Kind, c.ticks, got, c.want)
		}
	}
	p.PartTarget = time.Second
	if got := p.partLength(video, 3600); got != 25 {
		t.Errorf("25 fps with a 1 s target: parts of %d, want 25", got)
	}
}

// The parts of an open fragment are whole parts only; a complete
// fragment's last part takes what is left.
func TestPartsOf(t *testing.T) {
	p := &Server{}
	video := &fmp4.Track{Kind: fmp4.Video, Timescale: 90000}
	ss := make([]fmp4.Sample, 12)
	for i := range ss {
		ss[i] = fmp4.Sample{Duration: 3600, Keyframe: i == 0}
	}
	open := p.partsOf(video, ss, true)
	done := p.partsOf(video, ss, false)
	if len(open) != 2 || len(done) != 3 || done[2].end-done[2].first != 2 {
		t.Fatalf("open %+v, complete %+v", open, done)
	}
	if !open[0].independent || open[1].independent || open[0].ticks != 5*3600 {
		t.Fatalf("first parts %+v", open)
	}
}

// LL-HLS playlists of an ALWAYS session mark discontinuities where the
// media has one only; the session itself, and other modes, are untouched.
func TestLowLatencySession(t *testing.T) {
	s := &Session{Discontinuity: DiscontinuityAlways}
	ll := lowLatencySession(s)
	if ll.Discontinuity != DiscontinuityOnGap || s.Discontinuity != DiscontinuityAlways {
		t.Fatalf("LL %v, session %v", ll.Discontinuity, s.Discontinuity)
	}
	for _, d := range []Discontinuity{DiscontinuityNever, DiscontinuityOnGap} {
		if got := lowLatencySession(&Session{Discontinuity: d}).Discontinuity; got != d {
			t.Errorf("%v became %v", d, got)
		}
	}
	prev := &stream.Fragment{ProducerMs: 1000, DurationMs: 1000, HeaderID: 1}
	next := &stream.Fragment{ProducerMs: 2000, DurationMs: 1000, HeaderID: 1}
	if ll.discontinuity(prev, next) || !s.discontinuity(prev, next) {
		t.Fatal("contiguous fragments: LL marks a discontinuity or the plain playlist does not")
	}
	if gap := (&stream.Fragment{ProducerMs: 2500, HeaderID: 1}); !ll.discontinuity(prev, gap) {
		t.Fatal("LL does not mark a gap")
	}
}
