package fmp4

import (
	"bytes"
	"math"
	"testing"

	"github.com/kinema/kinema/internal/media/mkv"
)

// TestDecodeTimesRunOn checks the timing rules on real media with B-frames:
// within a fragment DTS grows and never passes PTS; the shift between a
// fragment's start and its first DTS is the same in every fragment; and
// each fragment's last sample ends where the next fragment's first begins,
// so decode times run on across fragments.
func TestDecodeTimesRunOn(t *testing.T) {
	for _, file := range []string{"h264.mkv", "h265.mkv", "baseline.mkv", "h264-alaw.mkv"} {
		t.Run(file, func(t *testing.T) {
			s := store(t, media.File(t, file), perKeyframe)
			tracks, err := TracksFromHeader(s.header)
			if err != nil {
				t.Fatal(err)
			}
			v := tracks[0]
			var prev *Sample
			shift := int64(-1)
			for i, c := range s.clusters {
				ss, err := FragmentSamples(s.header, tracks, c, s.nextStart(i))
				if err != nil {
					t.Fatal(err)
				}
				vs := ss[v.Number]
				for k := range vs {
					if vs[k].DTS > vs[k].PTS || (k > 0 && vs[k].DTS <= vs[k-1].DTS) {
						t.Fatalf("fragment %d sample %d: DTS %d PTS %d", i, k, vs[k].DTS, vs[k].PTS)
					}
				}
				if sh := s.startsNs[i]/1e9*90000 + s.startsNs[i]%1e9*90/1e6 - vs[0].DTS; shift < 0 {
					shift = sh
				} else if sh != shift {
					t.Fatalf("fragment %d: shift %d, earlier %d", i, sh, shift)
				}
				if prev != nil && prev.DTS+int64(prev.Duration) != vs[0].DTS {
					t.Fatalf("fragment %d starts at %d, the previous one ends at %d", i, vs[0].DTS, prev.DTS+int64(prev.Duration))
				}
				prev = &vs[len(vs)-1]
			}
			// x264 and x265 signal 2 reordered frames here (0 without
			// B-frames); the frame duration is 1/25 s, or 1/15 s.
			if want := int64(v.reorder) * v.frameDur; shift != want {
				t.Errorf("shift %d, want %d", shift, want)
			}
		})
	}
}

// TestShiftGrowsWhenSPSUnderstates: a Baseline SPS promises no reordering;
// frames that reorder anyway get the smallest shift that keeps DTS <= PTS.
func TestShiftGrowsWhenSPSUnderstates(t *testing.T) {
	h := mkv.Header{TimecodeScale: mkv.DefaultTimecodeScale, Tracks: []mkv.Track{
		{Number: 1, Type: mkv.TrackTypeVideo, CodecID: CodecIDH264, CodecPrivate: realCPD(t, "baseline.mkv")},
	}}
	tracks, err := TracksFromHeader(h)
	if err != nil || tracks[0].reorder != 0 {
		t.Fatalf("tracks %+v, %v", tracks, err)
	}
	frame := []byte{0, 0, 0, 2, 0x65, 0x88}
	var blocks []mkv.Block
	for i, rel := range []int16{0, 200, 67, 133, 400, 267, 333} { // I P B B P B B at 15 fps
		blocks = append(blocks, mkv.NewSimpleBlock(1, rel, i == 0, frame))
	}
	ss, err := FragmentSamples(h, tracks, mkv.AppendCluster(nil, epochMs, blocks), 0)
	if err != nil {
		t.Fatal(err)
	}
	vs := ss[1]
	for _, s := range vs {
		if s.DTS > s.PTS {
			t.Fatalf("DTS %d after PTS %d", s.DTS, s.PTS)
		}
	}
	// The deepest reordering here puts the B-frame at 133 ms one decode
	// slot before the PTS step 133 -> 200 ms: the shift is 67 ms.
	if want := int64(epochMs)*90 - 67*90; vs[0].DTS != want {
		t.Errorf("first DTS %d, want %d", vs[0].DTS, want)
	}
}

// TestAnnexBFrames: a frame in Annex-B despite an avcC is converted; a
// frame that is neither is ErrInvalidMediaFrame.
func TestAnnexBFrames(t *testing.T) {
	tr := &Track{Number: 1, Kind: Video, lengthSize: 4}
	got, err := tr.lengthPrefixed([]byte{0, 0, 0, 1, 0x09, 0xF0, 0, 0, 1, 0x65, 0x88, 0x84, 0, 0, 0, 1, 0x41, 0x9A})
	want := []byte{0, 0, 0, 2, 0x09, 0xF0, 0, 0, 0, 3, 0x65, 0x88, 0x84, 0, 0, 0, 2, 0x41, 0x9A}
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("% x, %v", got, err)
	}
	ok := []byte{0, 0, 0, 1, 0x65}
	if got, err := tr.lengthPrefixed(ok); err != nil || &got[0] != &ok[0] {
		t.Errorf("a length-prefixed frame was copied or refused: %v", err)
	}
	if _, err := tr.lengthPrefixed([]byte{0, 0, 0, 9, 0x65}); !isErr(err, ErrInvalidMediaFrame) {
		t.Errorf("garbage frame: %v", err)
	}
	tr.lengthSize = 2
	if _, err := tr.lengthPrefixed(append([]byte{0, 0, 1}, make([]byte, 70000)...)); !isErr(err, ErrInvalidMediaFrame) {
		t.Errorf("a 70000-byte unit with 2-byte lengths: %v", err)
	}
}

// TestBadClusters: malformed stored clusters wrap mkv.ErrInvalid, and times
// that overflow are ErrInvalidMediaFrame.
func TestBadClusters(t *testing.T) {
	h := mkv.Header{Tracks: []mkv.Track{{Number: 1, Type: mkv.TrackTypeAudio, CodecID: CodecIDAAC, CodecPrivate: []byte{0x11, 0x90}}}}
	tracks, err := TracksFromHeader(h)
	if err != nil {
		t.Fatal(err)
	}
	good := mkv.AppendCluster(nil, epochMs, []mkv.Block{mkv.NewSimpleBlock(1, 0, true, []byte{1, 2, 3})})
	noTimecode := mkv.AppendElement(nil, mkv.IDCluster, mkv.AppendElement(nil, mkv.IDSimpleBlock, []byte{0x81, 0, 0, 0x80, 1}))
	for _, tc := range []struct {
		name    string
		cluster []byte
		scale   uint64
		want    error
	}{
		{"truncated", good[:len(good)-1], 0, mkv.ErrInvalid},
		{"not a cluster", good[4:], 0, mkv.ErrInvalid},
		{"no timecode", noTimecode, 0, mkv.ErrInvalid},
		{"time overflows", mkv.AppendCluster(nil, math.MaxInt64/1000, []mkv.Block{mkv.NewSimpleBlock(1, 0, true, []byte{1})}), 0, ErrInvalidMediaFrame},
		{"scale overflows", good, math.MaxInt64 / 2, ErrInvalidMediaFrame},
		{"empty frames only", mkv.AppendCluster(nil, 5, []mkv.Block{mkv.NewSimpleBlock(1, 0, true, nil)}), 0, nil},
	} {
		h.TimecodeScale = tc.scale
		ss, err := FragmentSamples(h, tracks, tc.cluster, 0)
		if !isErr(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if err == nil && len(ss) != 0 {
			t.Errorf("%s: samples %v", tc.name, ss)
		}
	}
}

// TestTimeConversion: epoch-scale times convert without overflow, and
// negative times round down, so that conversion keeps order.
func TestTimeConversion(t *testing.T) {
	const epochNs = int64(epochMs) * 1e6
	for _, tc := range []struct {
		ns        int64
		timescale uint32
		want      int64
	}{
		{epochNs, 90000, epochMs * 90},
		{epochNs + 1, 48000, epochMs * 48},
		{epochNs + 22_675, 44100, epochMs*441/10 + 0}, // 22.675 µs is just short of one 44.1 kHz tick
		{-1, 90000, -1},
		{-1e9, 48000, -48000},
		{math.MaxInt64, 90000, math.MaxInt64/1_000_000_000*90000 + math.MaxInt64%1_000_000_000*90000/1_000_000_000},
	} {
		if got := nsToTimescale(tc.ns, tc.timescale); got != tc.want {
			t.Errorf("nsToTimescale(%d, %d) = %d, want %d", tc.ns, tc.timescale, got, tc.want)
		}
	}
	if got := to90kHz(1<<33*2+5, 90000); got != 5 {
		t.Errorf("to90kHz wraps to %d", got)
	}
	if got := to90kHz(-1, 90000); got != 1<<33-1 {
		t.Errorf("to90kHz(-1) = %d", got)
	}
}

// TestUnknownSizeCluster: a cluster of unknown size, as producers stream
// them, ends at the next level-1 element.
func TestUnknownSizeCluster(t *testing.T) {
	h := mkv.Header{Tracks: []mkv.Track{{Number: 1, Type: mkv.TrackTypeAudio, CodecID: CodecIDAAC, CodecPrivate: []byte{0x11, 0x90}}}}
	tracks, err := TracksFromHeader(h)
	if err != nil {
		t.Fatal(err)
	}
	c := mkv.AppendClusterStartUnknown(nil, epochMs)
	c = mkv.AppendSimpleBlock(c, 1, 0, true, []byte{1, 2, 3})
	c = mkv.AppendSimpleBlock(c, 1, 21, true, []byte{4, 5})
	c = mkv.AppendTags(c, []mkv.SimpleTag{{Name: "AWS_KINESISVIDEO_END_OF_FRAGMENT"}})
	c = mkv.AppendClusterStartUnknown(c, epochMs+42)
	ss, err := FragmentSamples(h, tracks, c, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ss[1]) != 2 || ss[1][1].PTS != (epochMs+21)*48 || ss[1][1].Duration != 1024 {
		t.Fatalf("samples %+v", ss[1])
	}
}
