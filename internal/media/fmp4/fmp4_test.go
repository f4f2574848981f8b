package fmp4

import (
	"bytes"
	"math"
	"slices"
	"strconv"
	"testing"

	mcfmp4 "github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/kinema/kinema/internal/media/mkv"
)

// mediaCase is one source file and how to store it.
type mediaCase struct {
	file string
	mode storeMode
}

func (c mediaCase) name() string {
	return c.file + []string{"", "/annexb", "/as-is"}[c.mode]
}

var fmp4Cases = []mediaCase{
	{"h264.mkv", perKeyframe},
	{"h264.mkv", annexB},
	{"h265.mkv", perKeyframe},
	{"h265-opengop.mkv", perKeyframe},
	{"aac.mkv", perKeyframe},
	{"h264-alaw.mkv", perKeyframe},
	{"baseline.mkv", perKeyframe},
	{"laced.mkv", asIs},
	{"groups.mkv", asIs},
}

// headerIndex is a track's position in the header, which is its stream
// index in the source file.
func headerIndex(s *stored, num uint64) int {
	return slices.IndexFunc(s.header.Tracks, func(tr mkv.Track) bool { return tr.Number == num })
}

// fragmentsOf packages one track of s as an init segment followed by one
// media segment per fragment.
func fragmentsOf(t *testing.T, s *stored, tracks []*Track, tr *Track) []byte {
	t.Helper()
	file, err := AppendInit(nil, tr)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range s.clusters {
		ss, err := FragmentSamples(s.header, tracks, c, s.nextStart(i))
		if err != nil {
			t.Fatalf("fragment %d: %v", i, err)
		}
		if len(ss[tr.Number]) == 0 {
			continue
		}
		if file, err = AppendMediaSegment(file, uint32(i+1), tr, ss[tr.Number]); err != nil {
			t.Fatalf("fragment %d: %v", i, err)
		}
	}
	return file
}

// TestFragmentedMP4 packages each track of real media as HLS/DASH would
// serve it (init + one media segment per fragment, concatenated) and checks
// that ffmpeg decodes every frame without complaint, at the source's times.
func TestFragmentedMP4(t *testing.T) {
	for _, mc := range fmp4Cases {
		t.Run(mc.name(), func(t *testing.T) {
			t.Parallel()
			src := mediaFile(t, mc.file)
			s := store(t, src, mc.mode)
			tracks, err := TracksFromHeader(s.header)
			if err != nil {
				t.Fatal(err)
			}
			srcStreams := probe(t, src)
			for _, tr := range tracks {
				path := writeTemp(t, "track"+strconv.FormatUint(tr.Number, 10)+".mp4", fragmentsOf(t, s, tracks, tr))
				decodeClean(t, path)
				got, want := probe(t, path)[0], srcStreams[headerIndex(s, tr.Number)]
				if got.CodecName != want.CodecName || got.Width != want.Width || got.Height != want.Height ||
					got.NbReadFrames != want.NbReadFrames || got.Profile != want.Profile || got.SampleRate != want.SampleRate {
					t.Errorf("track %d: ffprobe says %+v, source %+v", tr.Number, got, want)
				}
				if tr.Kind == Video && got.CodecTag != tr.SampleEntry {
					t.Errorf("track %d: sample entry %q, want %q", tr.Number, got.CodecTag, tr.SampleEntry)
				}
				checkTimes(t, tr, framePTS(t, path, "0"), s.ptsUs[tr.Number], 0, 0)
			}
		})
	}
}

// checkTimes compares the first and last decoded presentation times
// (seconds) with the source's (µs), after subtracting originUs from the
// source. The tolerance is one tick of the track timescale plus float
// rounding, plus extra.
func checkTimes(t *testing.T, tr *Track, got []float64, srcUs []int64, originUs int64, extra float64) {
	t.Helper()
	if len(got) == 0 || len(srcUs) == 0 {
		t.Fatalf("track %d: %d decoded frames, %d source frames", tr.Number, len(got), len(srcUs))
	}
	first, last := float64(slices.Min(srcUs)-originUs)/1e6, float64(slices.Max(srcUs)-originUs)/1e6
	tol := 1/float64(tr.Timescale) + 1e-6 + extra
	if math.Abs(got[0]-first) > tol || math.Abs(got[len(got)-1]-last) > tol {
		t.Errorf("track %d: frames from %.6f to %.6f s, source from %.6f to %.6f s",
			tr.Number, got[0], got[len(got)-1], first, last)
	}
}

// TestMultiTrackInit packages all tracks in one init segment, with one
// moof per track per fragment, and decodes the result.
func TestMultiTrackInit(t *testing.T) {
	src := mediaFile(t, "h264.mkv")
	s := store(t, src, perKeyframe)
	tracks, err := TracksFromHeader(s.header)
	if err != nil {
		t.Fatal(err)
	}
	file, err := AppendInit(nil, tracks...)
	if err != nil {
		t.Fatal(err)
	}
	seq := uint32(1)
	for i, c := range s.clusters {
		ss, err := FragmentSamples(s.header, tracks, c, s.nextStart(i))
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range tracks {
			if file, err = AppendMediaSegment(file, seq, tr, ss[tr.Number]); err != nil {
				t.Fatal(err)
			}
			seq++
		}
	}
	path := writeTemp(t, "all.mp4", file)
	decodeClean(t, path)
	got, want := probe(t, path), probe(t, src)
	for i := range want {
		if got[i].NbReadFrames != want[i].NbReadFrames {
			t.Errorf("stream %d: %s frames, source %s", i, got[i].NbReadFrames, want[i].NbReadFrames)
		}
	}

	// mediacommon's fMP4 reader, an independent parser, agrees.
	var init mcfmp4.Init
	if err := init.Unmarshal(bytes.NewReader(file)); err != nil {
		t.Fatal(err)
	}
	if len(init.Tracks) != 2 || init.Tracks[0].TimeScale != 90000 || init.Tracks[1].TimeScale != 48000 {
		t.Fatalf("mediacommon reads the init as %+v", init.Tracks)
	}
	if _, ok := init.Tracks[0].Codec.(*codecs.H264); !ok {
		t.Errorf("mediacommon sees %T", init.Tracks[0].Codec)
	}
	if _, ok := init.Tracks[1].Codec.(*codecs.MPEG4Audio); !ok {
		t.Errorf("mediacommon sees %T", init.Tracks[1].Codec)
	}
}

// TestSegmentByOracle checks one media segment with mediacommon's reader:
// tfdt is the first DTS, and durations and composition offsets are as
// FragmentSamples computed them.
func TestSegmentByOracle(t *testing.T) {
	s := store(t, mediaFile(t, "h265.mkv"), perKeyframe)
	tracks, err := TracksFromHeader(s.header)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := FragmentSamples(s.header, tracks, s.clusters[1], s.nextStart(1))
	if err != nil {
		t.Fatal(err)
	}
	v := ss[tracks[0].Number]
	seg, err := AppendMediaSegment(nil, 7, tracks[0], v)
	if err != nil {
		t.Fatal(err)
	}
	var parts mcfmp4.Parts
	if err := parts.Unmarshal(seg); err != nil {
		t.Fatal(err)
	}
	if len(parts) != 1 || parts[0].SequenceNumber != 7 || len(parts[0].Tracks) != 1 {
		t.Fatalf("parts: %+v", parts)
	}
	pt := parts[0].Tracks[0]
	if pt.ID != int(tracks[0].Number) || pt.BaseTime != uint64(v[0].DTS) || len(pt.Samples) != len(v) {
		t.Fatalf("track %d base %d with %d samples; want %d, %d, %d", pt.ID, pt.BaseTime, len(pt.Samples), tracks[0].Number, v[0].DTS, len(v))
	}
	for i, got := range pt.Samples {
		if got.Duration != v[i].Duration || int64(got.PTSOffset) != v[i].PTS-v[i].DTS ||
			got.IsNonSyncSample == v[i].Keyframe || !bytes.Equal(got.Payload, v[i].Data) {
			t.Fatalf("sample %d: %+v", i, got)
		}
	}
}
