package producer

import (
	"testing"
)

// TestFragmentsAtKeyFrames: -g 25 at 25 fps gives 1 s fragments, each
// led by its key frame, with audio placed by time and no frame lost but
// those before the first key frame.
func TestFragmentsAtKeyFrames(t *testing.T) {
	m := openMedia(t, "av.mp4")
	plans := m.Fragments(0)
	if len(plans) != 3 {
		t.Fatalf("%d fragments, want 3", len(plans))
	}
	var firstKey int64 = -1
	for _, f := range m.Frames {
		if f.Track == VideoTrack && f.Keyframe {
			firstKey = f.PTSms
			break
		}
	}
	planned, before := 0, 0
	for _, f := range m.Frames {
		if f.PTSms < firstKey && f.Track == VideoTrack {
			before++
		}
	}
	for i, p := range plans {
		planned += len(p.Frames)
		if p.StartMs != firstKey+int64(i)*1000 {
			t.Errorf("fragment %d starts at %d, want %d", i, p.StartMs, firstKey+int64(i)*1000)
		}
		if i < 2 && p.DurationMs != 1000 {
			t.Errorf("fragment %d lasts %d ms", i, p.DurationMs)
		}
		if f := p.Frames[0]; f.Track != VideoTrack || !f.Keyframe || f.PTSms != p.StartMs {
			t.Errorf("fragment %d starts with %+v", i, f)
		}
		videos := 0
		for j, f := range p.Frames {
			switch f.Track {
			case VideoTrack:
				videos++
				if f.Keyframe != (j == 0) {
					t.Errorf("fragment %d frame %d: key %v", i, j, f.Keyframe)
				}
			case AudioTrack:
				if f.Keyframe {
					t.Errorf("fragment %d: audio frame flagged key (the SDK never flags AAC)", i)
				}
				if (f.PTSms < p.StartMs && i > 0) || f.PTSms >= p.StartMs+p.DurationMs {
					t.Errorf("fragment %d [%d, +%d) holds audio at %d", i, p.StartMs, p.DurationMs, f.PTSms)
				}
			}
		}
		if videos != 25 {
			t.Errorf("fragment %d has %d video frames, want 25", i, videos)
		}
	}
	if planned+before != len(m.Frames) {
		t.Errorf("planned %d + %d dropped before the first key frame != %d frames", planned, before, len(m.Frames))
	}
}

// TestFragmentsOrdering checks decode order and interleaving on a hand-made
// stream with B-frames: I0 P3 B1 B2 | I4 P7 B5 B6, audio every ms-ish.
func TestFragmentsOrdering(t *testing.T) {
	v := func(pts int64, key bool) Frame {
		return Frame{Track: VideoTrack, PTSms: pts * 100, Keyframe: key, Data: []byte{byte(pts)}}
	}
	a := func(pts int64) Frame { return Frame{Track: AudioTrack, PTSms: pts, Keyframe: true, Data: []byte{0xA0}} }
	m := &Media{
		Header: mkvHeader(true, true),
		Frames: []Frame{
			v(-1, false), a(0), // a P frame before any key frame is dropped; the audio joins the first fragment
			v(1, true), a(90), v(4, false), a(150), v(2, false), v(3, false), a(310),
			v(5, true), a(500), v(8, false), v(6, false), a(650), v(7, false), a(790),
		},
		DurationMs: 900,
	}
	plans := m.Fragments(0)
	if len(plans) != 2 {
		t.Fatalf("%d fragments", len(plans))
	}
	got := func(p FragmentPlan) (s []int64) {
		for _, f := range p.Frames {
			if f.Track == VideoTrack {
				s = append(s, f.PTSms/100)
			} else {
				s = append(s, -f.PTSms)
			}
		}
		return s
	}
	// Video in decode order, audio placed by the decode-time estimate
	// (sorted video PTS: 100, 200, 300, 400).
	want := [][]int64{{1, 0, -90, -150, 4, 2, -310, 3}, {5, -500, 8, -650, 6, -790, 7}}
	for i := range plans {
		if g := got(plans[i]); !equalInts(g, want[i]) {
			t.Errorf("fragment %d: order %v, want %v", i, g, want[i])
		}
	}
	for i, p := range plans {
		for _, f := range p.Frames {
			if f.Track == AudioTrack && f.Keyframe {
				t.Errorf("fragment %d: audio flagged key", i)
			}
		}
	}
	if plans[0].StartMs != 100 || plans[1].StartMs != 500 || plans[0].DurationMs != 400 || plans[1].DurationMs != 400 {
		t.Errorf("starts/durations %d+%d, %d+%d", plans[0].StartMs, plans[0].DurationMs, plans[1].StartMs, plans[1].DurationMs)
	}
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
