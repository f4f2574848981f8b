package fmp4

import (
	"bytes"
	"math"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	mcfmp4 "github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/kinema/kinema/internal/media/mkv"
	"github.com/kinema/kinema/internal/mediatest"
)

// mediaCase is one source file and how to store it.
type mediaCase struct {
	file string
	mode storeMode
}

func (c mediaCase) name() string {
	return c.file + []string{"", "/annexb", "/as-is", "/in-band"}[c.mode]
}

var fmp4Cases = []mediaCase{
	{"h264.mkv", perKeyframe},
	{"h264.mkv", annexB},
	{"h264.mkv", inBand},
	{"h265.mkv", perKeyframe},
	{"h265.mkv", inBand},
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
			src := media.File(t, mc.file)
			s := store(t, src, mc.mode)
			tracks, err := TracksFromHeader(s.header)
			if err != nil {
				t.Fatal(err)
			}
			srcStreams := probe(t, src)
			for _, tr := range tracks {
				path := writeTemp(t, "track"+strconv.FormatUint(tr.Number, 10)+".mp4", fragmentsOf(t, s, tracks, tr))
				mediatest.DecodeClean(t, path, "-map", "0")
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
	src := media.File(t, "h264.mkv")
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
	mediatest.DecodeClean(t, path, "-map", "0")
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
	s := store(t, media.File(t, "h265.mkv"), perKeyframe)
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

// TestAnnexBCodecPrivate: a producer that puts Annex-B parameter sets in
// CodecPrivate instead of an avcC/hvcC record still plays; the record built
// from them gives the same codec string as the real one.
func TestAnnexBCodecPrivate(t *testing.T) {
	for _, file := range []string{"h264.mkv", "h265.mkv"} {
		t.Run(file, func(t *testing.T) {
			src := media.File(t, file)
			s := store(t, src, perKeyframe)
			orig, err := TracksFromHeader(s.header)
			if err != nil {
				t.Fatal(err)
			}
			var cpd []byte
			for _, u := range orig[0].paramSets {
				cpd = append(append(cpd, 0, 0, 0, 1), u...)
			}
			s.header.Tracks = append([]mkv.Track(nil), s.header.Tracks...)
			s.header.Tracks[0].CodecPrivate = cpd
			tracks, err := TracksFromHeader(s.header)
			if err != nil {
				t.Fatal(err)
			}
			if tracks[0].Codec != orig[0].Codec || tracks[0].SampleEntry != orig[0].SampleEntry {
				t.Errorf("codec %s %s from Annex-B, %s %s from the record", tracks[0].Codec, tracks[0].SampleEntry, orig[0].Codec, orig[0].SampleEntry)
			}
			path := writeTemp(t, "annexb-cpd.mp4", fragmentsOf(t, s, tracks, tracks[0]))
			mediatest.DecodeClean(t, path, "-map", "0")
			if got, want := probe(t, path)[0].NbReadFrames, probe(t, src)[0].NbReadFrames; got != want {
				t.Errorf("%s frames, source %s", got, want)
			}
		})
	}
}

// TestHEVCWithoutVPSInRecord: a camera whose hvcC lacks the VPS but sends
// it in-band gets an hev1 sample entry (which allows in-band parameter
// sets), and both fMP4 and TS decode every frame. ffmpeg complains once, at
// init, that the sample entry's SPS refers to a VPS it has not seen yet;
// that is the only message allowed.
func TestHEVCWithoutVPSInRecord(t *testing.T) {
	src := media.File(t, "h265.mkv")
	s := store(t, src, inBand)
	orig, err := TracksFromHeader(s.header)
	if err != nil {
		t.Fatal(err)
	}
	var cpd []byte
	for _, u := range orig[0].paramSets[1:] { // SPS and PPS, no VPS
		cpd = append(append(cpd, 0, 0, 0, 1), u...)
	}
	s.header.Tracks = append([]mkv.Track(nil), s.header.Tracks...)
	s.header.Tracks[0].CodecPrivate = cpd
	tracks, err := TracksFromHeader(s.header)
	if err != nil {
		t.Fatal(err)
	}
	tr := tracks[0]
	if tr.SampleEntry != "hev1" || tr.Codec != "hev1"+orig[0].Codec[4:] {
		t.Fatalf("sample entry %s, codec %s", tr.SampleEntry, tr.Codec)
	}
	path := writeTemp(t, "hev1.mp4", fragmentsOf(t, s, tracks, tr))
	out, _ := exec.Command("ffprobe", "-v", "error", "-count_frames", "-show_entries", "stream=nb_read_frames,codec_tag_string", "-of", "csv=p=0", path).CombinedOutput()
	want := probe(t, src)[0].NbReadFrames
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if !strings.Contains(l, "VPS 0 does not exist") && !strings.Contains(l, "SPS 0 does not exist") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || lines[0] != "hev1,"+want {
		t.Errorf("fMP4: ffprobe says %q, want %s frames in hev1", lines, want)
	}
	var st TSState
	var ts []byte
	for i, c := range s.clusters {
		ss, err := FragmentSamples(s.header, tracks, c, s.nextStart(i))
		if err != nil {
			t.Fatal(err)
		}
		if ts, err = AppendTS(ts, &st, tracks[:1], ss); err != nil {
			t.Fatal(err)
		}
	}
	path = writeTemp(t, "hev1.ts", ts)
	mediatest.DecodeClean(t, path, "-map", "0")
	if got := probe(t, path)[0].NbReadFrames; got != want {
		t.Errorf("TS: %s frames, source %s", got, want)
	}
}
