package fmp4

import (
	"testing"
)

// TestOpenFragmentSamples cuts every stored fragment after each of its
// blocks, as a fragment still being received looks, and checks that what
// OpenFragmentSamples calls final is exactly the start of what
// FragmentSamples gives for the whole fragment: same data, times and
// durations, also for B-frames (h265 open GOP, the grouped H.264) and
// audio. Only a few samples may be held back.
func TestOpenFragmentSamples(t *testing.T) {
	for _, mc := range []mediaCase{
		{"h264.mkv", perKeyframe},
		{"h265-opengop.mkv", perKeyframe},
		{"aac.mkv", perKeyframe},
		{"groups.mkv", asIs},
	} {
		t.Run(mc.name(), func(t *testing.T) {
			t.Parallel()
			s := store(t, media.File(t, mc.file), mc.mode)
			tracks, err := TracksFromHeader(s.header)
			if err != nil {
				t.Fatal(err)
			}
			checked := 0
			for i, c := range s.clusters[:min(len(s.clusters), 3)] {
				whole, err := FragmentSamples(s.header, tracks, c, 0)
				if err != nil {
					t.Fatal(err)
				}
				_, il, _ := readID(c)
				_, sl, _, _ := readSize(c[il:])
				body := c[il+sl:]
				var cuts []int
				if err := children(body, 0, nil, func(e element) error {
					cuts = append(cuts, e.off+len(e.payload))
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				for _, cut := range cuts {
					open, err := OpenFragmentSamples(s.header, tracks, body[:cut])
					if err != nil {
						t.Fatalf("fragment %d cut at %d: %v", i, cut, err)
					}
					for _, tr := range tracks {
						got, all := open[tr.Number], whole[tr.Number]
						if len(got) > len(all) {
							t.Fatalf("fragment %d cut at %d track %d: %d final samples of %d", i, cut, tr.Number, len(got), len(all))
						}
						for k := range got {
							g, w := got[k], all[k]
							if g.DTS != w.DTS || g.PTS != w.PTS || g.Duration != w.Duration || g.Keyframe != w.Keyframe || string(g.Data) != string(w.Data) {
								t.Fatalf("fragment %d cut at %d track %d sample %d: open %+v, whole %+v", i, cut, tr.Number, k,
									[]int64{g.DTS, g.PTS, int64(g.Duration)}, []int64{w.DTS, w.PTS, int64(w.Duration)})
							}
						}
						checked += len(got)
					}
				}
				// The whole body: everything but the held-back tail.
				open, _ := OpenFragmentSamples(s.header, tracks, body)
				for _, tr := range tracks {
					held := len(whole[tr.Number]) - len(open[tr.Number])
					if max := tr.reorder + 1; held > max || held < 0 {
						t.Fatalf("track %d: %d samples held back, at most %d", tr.Number, held, max)
					}
				}
			}
			if checked == 0 {
				t.Fatal("no sample was ever final")
			}
		})
	}
}
