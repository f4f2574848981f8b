package fmp4

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/kinema/kinema/internal/mediatest"
)

// planClip plans a clip of every fragment of s and returns the layout and
// a payload function that parses fragments on demand (as a server would),
// counting how often it is called.
func planClip(t *testing.T, s *stored, tracks []*Track) (*ClipLayout, func(int) ([]byte, error), *int) {
	t.Helper()
	frags := make([]ClipFragment, len(s.clusters))
	for i, c := range s.clusters {
		var err error
		idx, err := FragmentIndex(s.header, tracks, c)
		if err != nil {
			t.Fatal(err)
		}
		// Plan from the stored encoding, as the server does.
		if frags[i], err = ParseClipFragment(AppendClipFragment(nil, idx)); err != nil {
			t.Fatal(err)
		}
	}
	l, err := PlanClip(tracks, frags)
	if err != nil {
		t.Fatal(err)
	}
	calls := new(int)
	payload := func(i int) ([]byte, error) {
		*calls++
		ss, err := FragmentSamples(s.header, tracks, s.clusters[i], 0)
		if err != nil {
			return nil, err
		}
		return l.AppendFragmentPayload(nil, i, ss)
	}
	return l, payload, calls
}

// TestClip plans progressive MP4s of real media from sample tables alone,
// streams them fragment by fragment, and checks the file: its size is the
// planned one, moov precedes mdat, ffmpeg decodes every frame at the
// source's times (relative to the clip start), and any byte range equals
// the same slice of the whole file.
func TestClip(t *testing.T) {
	for _, mc := range []mediaCase{
		{"h264.mkv", perKeyframe},
		{"h265.mkv", perKeyframe},
		{"h265-opengop.mkv", perKeyframe},
		{"aac.mkv", perKeyframe},
		{"h264-alaw.mkv", perKeyframe},
		{"groups.mkv", asIs},
	} {
		t.Run(mc.name(), func(t *testing.T) {
			t.Parallel()
			src := media.File(t, mc.file)
			s := store(t, src, mc.mode)
			tracks, err := TracksFromHeader(s.header)
			if err != nil {
				t.Fatal(err)
			}
			l, payload, _ := planClip(t, s, tracks)
			var full bytes.Buffer
			if err := l.WriteRange(&full, 0, l.Size(), payload); err != nil {
				t.Fatal(err)
			}
			if int64(full.Len()) != l.Size() {
				t.Fatalf("wrote %d bytes, planned %d", full.Len(), l.Size())
			}
			if got := topLevelBoxes(t, full.Bytes()); fmt.Sprint(got) != "[ftyp moov mdat]" {
				t.Fatalf("top-level boxes %v", got)
			}
			path := writeTemp(t, "clip.mp4", full.Bytes())
			mediatest.DecodeClean(t, path, "-map", "0")
			got, want := probe(t, path), probe(t, src)
			var originUs int64 = 1 << 62
			for _, us := range s.ptsUs {
				originUs = min(originUs, us[0])
				for _, v := range us {
					originUs = min(originUs, v)
				}
			}
			for k, tr := range tracks {
				w := want[headerIndex(s, tr.Number)]
				if got[k].CodecName != w.CodecName || got[k].NbReadFrames != w.NbReadFrames || got[k].Width != w.Width {
					t.Errorf("track %d: ffprobe says %+v, source %+v", tr.Number, got[k], w)
				}
				// Edit lists are in ms, the movie timescale.
				checkTimes(t, tr, framePTS(t, path, fmt.Sprint(k)), s.ptsUs[tr.Number], originUs, 0.001)
			}
			checkRanges(t, l, payload, full.Bytes())
		})
	}
}

// checkRanges compares WriteRange with slices of the whole file, for the
// edges and for random ranges.
func checkRanges(t *testing.T, l *ClipLayout, payload func(int) ([]byte, error), full []byte) {
	t.Helper()
	n := int64(len(full))
	hdr := int64(len(l.Header()))
	ranges := [][2]int64{{0, 0}, {0, 1}, {0, hdr}, {hdr - 1, hdr + 1}, {hdr, n}, {n - 1, n}, {n, n}}
	for i := 0; i < l.Fragments(); i++ {
		off, size := l.FragmentRange(i)
		ranges = append(ranges, [2]int64{off, off + size}, [2]int64{off - 1, off + 1})
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200; i++ {
		a := rng.Int64N(n + 1)
		ranges = append(ranges, [2]int64{a, a + rng.Int64N(n-a+1)})
	}
	for _, r := range ranges {
		var b bytes.Buffer
		if err := l.WriteRange(&b, r[0], r[1], payload); err != nil {
			t.Fatalf("range %v: %v", r, err)
		}
		if !bytes.Equal(b.Bytes(), full[r[0]:r[1]]) {
			t.Fatalf("range %v: %d bytes differ from the file's", r, b.Len())
		}
	}
	if err := l.WriteRange(&bytes.Buffer{}, 0, n+1, payload); err == nil {
		t.Error("a range past the end was accepted")
	}
}

// TestClipRangeTouchesOnlyItsFragments: a range inside one fragment parses
// only that fragment.
func TestClipRangeTouchesOnlyItsFragments(t *testing.T) {
	s := store(t, media.File(t, "h264.mkv"), perKeyframe)
	tracks, err := TracksFromHeader(s.header)
	if err != nil {
		t.Fatal(err)
	}
	l, payload, calls := planClip(t, s, tracks)
	off, size := l.FragmentRange(2)
	if err := l.WriteRange(&bytes.Buffer{}, off+1, off+size-1, payload); err != nil {
		t.Fatal(err)
	}
	if *calls != 1 {
		t.Errorf("a range inside fragment 2 built %d fragments", *calls)
	}
	*calls = 0
	if err := l.WriteRange(&bytes.Buffer{}, 0, int64(len(l.Header())), payload); err != nil || *calls != 0 {
		t.Errorf("the header alone built %d fragments (%v)", *calls, err)
	}
}

// TestClipRejectsChangedFragment: payload that does not match the plan is
// an error, not a corrupt file.
func TestClipRejectsChangedFragment(t *testing.T) {
	s := store(t, media.File(t, "h264.mkv"), perKeyframe)
	tracks, err := TracksFromHeader(s.header)
	if err != nil {
		t.Fatal(err)
	}
	l, _, _ := planClip(t, s, tracks)
	ss, err := FragmentSamples(s.header, tracks, s.clusters[1], 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.AppendFragmentPayload(nil, 0, ss); err == nil {
		t.Error("fragment 1's samples were accepted as fragment 0")
	}
}

// topLevelBoxes lists the box types of a file, checking that the sizes add
// up to its length.
func topLevelBoxes(t *testing.T, p []byte) []string {
	t.Helper()
	var types []string
	for len(p) > 0 {
		if len(p) < 8 {
			t.Fatalf("%d stray bytes", len(p))
		}
		size := uint64(binary.BigEndian.Uint32(p))
		if size == 1 {
			size = binary.BigEndian.Uint64(p[8:])
		}
		if size < 8 || size > uint64(len(p)) {
			t.Fatalf("box %q of %d bytes in %d", p[4:8], size, len(p))
		}
		types = append(types, string(p[4:8]))
		p = p[size:]
	}
	return types
}
