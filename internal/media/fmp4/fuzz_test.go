package fmp4

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/kinema/kinema/internal/media/mkv"
)

// Everything here parses what cameras send, so it is fuzzed: CodecPrivate
// through TracksFromHeader and AppendInit, stored clusters through
// FragmentSamples and every writer. The seed corpus in testdata/fuzz comes
// from real media (go test -run TestWriteFuzzSeeds -update-seeds rewrites it).
// Real clusters are tens of kB, which the fuzzer's default minimization (up
// to 60 s per new input) crawls through; fuzz with a bounded minimization:
//
//	go test -run '^$' -fuzz FuzzFragmentSamples -fuzzminimizetime 100x -fuzztime 5m

var updateSeeds = flag.Bool("update-seeds", false, "rewrite the fuzz seed corpus and test headers in testdata")

// fuzzCodecs are the codec IDs FuzzCodecPrivate picks from with its first
// byte.
var fuzzCodecs = []string{CodecIDH264, CodecIDH265, CodecIDAAC, CodecIDACM}

func FuzzCodecPrivate(f *testing.F) {
	f.Add(byte(2), []byte{0x2B, 0x11, 0x88, 0x00})                                        // HE-AAC, explicit SBR
	f.Add(byte(2), []byte{0xEB, 0x09, 0x88, 0x00})                                        // HE-AACv2 (PS)
	f.Add(byte(0), []byte{0, 0, 0, 1, 0x67, 0x42, 0xC0, 0x0B, 0xD9, 0, 0, 1, 0x68, 0xCB}) // Annex-B SPS, PPS
	f.Fuzz(func(t *testing.T, codec byte, cpd []byte) {
		id := fuzzCodecs[int(codec)%len(fuzzCodecs)]
		typ := uint64(mkv.TrackTypeVideo)
		if id == CodecIDAAC || id == CodecIDACM {
			typ = mkv.TrackTypeAudio
		}
		tracks, err := TracksFromHeader(mkv.Header{Tracks: []mkv.Track{{Number: 1, Type: typ, CodecID: id, CodecPrivate: cpd, Channels: 2}}})
		if err != nil {
			if !isErr(err, ErrUnsupportedCodec) && !isErr(err, ErrMissingCodecPrivate) && !isErr(err, ErrInvalidCodecPrivate) {
				t.Fatalf("error outside the KVS set: %v", err)
			}
			return
		}
		tr := tracks[0]
		if tr.Codec == "" || tr.Timescale == 0 || (tr.Kind == Audio && tr.Channels == 0) {
			t.Fatalf("accepted track %+v", tr)
		}
		init, err := AppendInit(nil, tr)
		if err != nil {
			t.Fatalf("AppendInit of an accepted track: %v", err)
		}
		checkBoxes(t, init)
	})
}

// fuzzHeaders are the track sets FuzzFragmentSamples picks from: real
// headers kept in testdata/headers.
var fuzzHeaders = []string{"h264-aac", "h265-aac", "h264-alaw"}

func loadHeader(t testing.TB, name string) mkv.Header {
	t.Helper()
	p, err := os.ReadFile(filepath.Join("testdata", "headers", name+".mkvh"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := mkv.DecodeHeaderTracks(p)
	if err != nil {
		t.Fatal(err)
	}
	return *h
}

func FuzzFragmentSamples(f *testing.F) {
	var headers []mkv.Header
	var trackSets [][]*Track
	for _, name := range fuzzHeaders {
		h := loadHeader(f, name)
		tracks, err := TracksFromHeader(h)
		if err != nil {
			f.Fatal(err)
		}
		headers, trackSets = append(headers, h), append(trackSets, tracks)
	}
	f.Fuzz(func(t *testing.T, header byte, cluster []byte, nextMs int64) {
		k := int(header) % len(headers)
		h, tracks := headers[k], trackSets[k]
		next := int64(0)
		if nextMs > 0 && nextMs < 1<<40 {
			next = nextMs * 1e6
		}
		if _, il, ok := readID(cluster); ok {
			if _, sl, _, ok := readSize(cluster[il:]); ok {
				// The same bytes as a fragment still being received.
				OpenFragmentSamples(h, tracks, cluster[il+sl:])
			}
		}
		samples, err := FragmentSamples(h, tracks, cluster, next)
		if err != nil {
			if !isErr(err, mkv.ErrInvalid) && !isErr(err, ErrInvalidMediaFrame) {
				t.Fatalf("unexpected error: %v", err)
			}
			return
		}
		for _, tr := range tracks {
			ss := samples[tr.Number]
			for i := range ss {
				if tr.Kind == Video && ss[i].DTS > ss[i].PTS {
					t.Fatalf("track %d sample %d: DTS %d after PTS %d", tr.Number, i, ss[i].DTS, ss[i].PTS)
				}
				if i > 0 && ss[i].DTS < ss[i-1].DTS {
					t.Fatalf("track %d sample %d: DTS goes back", tr.Number, i)
				}
				if tr.Kind == Video && !validLengthPrefixed(ss[i].Data, tr.lengthSize) {
					t.Fatalf("track %d sample %d: data not length-prefixed", tr.Number, i)
				}
			}
			if len(ss) > 0 {
				if seg, err := AppendMediaSegment(nil, 1, tr, ss); err == nil {
					checkBoxes(t, seg)
				}
			}
		}
		if ts, err := AppendTS(nil, &TSState{}, tsTracks(tracks), samples); err == nil {
			if err := checkContinuity(ts); err != nil && len(ts) > 0 {
				t.Fatal(err)
			}
		}
		idx := IndexSamples(tracks, samples)
		if back, err := ParseClipFragment(AppendClipFragment(nil, idx)); err != nil || !reflect.DeepEqual(back, idx) {
			t.Fatalf("clip index round trip: %v\n%+v\n%+v", err, idx, back)
		}
		l, err := PlanClip(tracks, []ClipFragment{idx})
		if err != nil {
			return // no samples
		}
		var file bytes.Buffer
		err = l.WriteRange(&file, 0, l.Size(), func(i int) ([]byte, error) { return l.AppendFragmentPayload(nil, i, samples) })
		if err != nil || int64(file.Len()) != l.Size() {
			t.Fatalf("clip of %d bytes planned, %d written: %v", l.Size(), file.Len(), err)
		}
		checkBoxes(t, file.Bytes())
	})
}

// tsTracks are the tracks MPEG-TS can carry.
func tsTracks(tracks []*Track) []*Track {
	var out []*Track
	for _, t := range tracks {
		if t.SupportsTS() {
			out = append(out, t)
		}
	}
	return out
}

// checkBoxes checks that a file is a sequence of boxes whose sizes add up,
// recursing into the containers this package writes.
func checkBoxes(t *testing.T, p []byte) {
	t.Helper()
	if err := walkBoxes(p, 0); err != nil {
		t.Fatal(err)
	}
}

func walkBoxes(p []byte, depth int) error {
	for len(p) > 0 {
		if len(p) < 8 {
			return fmt.Errorf("%d stray bytes", len(p))
		}
		size, hdr := uint64(binary.BigEndian.Uint32(p)), uint64(8)
		if size == 1 && len(p) >= 16 {
			size, hdr = binary.BigEndian.Uint64(p[8:]), 16
		}
		if size < hdr || size > uint64(len(p)) {
			return fmt.Errorf("box %q of %d bytes in %d", p[4:8], size, len(p))
		}
		switch string(p[4:8]) {
		case "moov", "trak", "mdia", "minf", "stbl", "dinf", "edts", "mvex", "moof", "traf":
			if err := walkBoxes(p[hdr:size], depth+1); err != nil {
				return fmt.Errorf("%s > %w", p[4:8], err)
			}
		}
		p = p[size:]
	}
	return nil
}

// TestWriteFuzzSeeds regenerates testdata: the headers FuzzFragmentSamples
// uses and seed corpora made of real CodecPrivate and the first fragments
// of small real media.
func TestWriteFuzzSeeds(t *testing.T) {
	if !*updateSeeds {
		t.Skip("run with -update-seeds to rewrite testdata")
	}
	small := "-f lavfi -i testsrc2=size=64x48:rate=5 -f lavfi -i sine=sample_rate=8000 -t 2 -g 5 -pix_fmt yuv420p"
	recipes := map[string]string{
		"h264-aac":  "ffmpeg " + small + " -c:v libx264 -bf 2 -c:a aac $OUT",
		"h265-aac":  "ffmpeg " + small + " -c:v libx265 -x265-params log-level=error:bframes=2:keyint=5:open-gop=0 -c:a aac $OUT",
		"h264-alaw": "ffmpeg " + small + " -c:v libx264 -bf 0 -c:a pcm_alaw $OUT",
	}
	for i, name := range fuzzHeaders {
		mediaRecipes["seed-"+name+".mkv"] = recipes[name]
		s := store(t, media.File(t, "seed-"+name+".mkv"), perKeyframe)
		writeFile(t, filepath.Join("testdata", "headers", name+".mkvh"), mkv.EncodeHeaderTracks(s.header))
		for k, c := range s.clusters[:2] {
			writeFile(t, filepath.Join("testdata", "fuzz", "FuzzFragmentSamples", fmt.Sprintf("%s-%d", name, k)),
				[]byte(fmt.Sprintf("go test fuzz v1\nbyte(%q)\n[]byte(%q)\nint64(%d)\n", byte(i), c, s.nextStart(k)/1e6)))
		}
		for _, tr := range s.header.Tracks {
			codec := map[string]byte{CodecIDH264: 0, CodecIDH265: 1, CodecIDAAC: 2, CodecIDACM: 3}[tr.CodecID]
			writeFile(t, filepath.Join("testdata", "fuzz", "FuzzCodecPrivate", fmt.Sprintf("%s-%d", name, tr.Number)),
				[]byte(fmt.Sprintf("go test fuzz v1\nbyte(%q)\n[]byte(%q)\n", codec, tr.CodecPrivate)))
		}
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// FuzzParseClipFragment: the sample tables kept in the index decode without
// panicking or allocating beyond their size, and what decodes re-encodes to
// the same table.
func FuzzParseClipFragment(f *testing.F) {
	f.Add(AppendClipFragment(nil, ClipFragment{Runs: []ClipRun{
		{Track: 1, FirstDTS: 1234, Samples: []ClipSample{{Size: 50000, Duration: 40, Keyframe: true}, {Size: 900, Duration: 40, CompOffset: 80}}},
		{Track: 2, FirstDTS: -3, Samples: []ClipSample{{Size: 300, Duration: 1024, Keyframe: true}, {Size: 310, Duration: 1023}}},
	}}))
	f.Add([]byte{clipIndexVersion, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		cf, err := ParseClipFragment(b)
		if err != nil {
			return
		}
		back, err := ParseClipFragment(AppendClipFragment(nil, cf))
		if err != nil || !reflect.DeepEqual(back, cf) {
			t.Fatalf("re-encoded table differs: %v", err)
		}
	})
}
