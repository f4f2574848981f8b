package mkv

import (
	"bytes"
	"reflect"
	"testing"
)

// TestWriterReaderRoundTrip writes a KVS-shaped stream (unknown-size
// Clusters, Tags before and between Clusters) and a known-size Cluster with
// a BlockGroup, and reads it back.
func TestWriterReaderRoundTrip(t *testing.T) {
	h := testHeader()
	frames := [][]byte{bytes.Repeat([]byte{0xAB}, 300_000), {1, 2, 3}, {}, bytes.Repeat([]byte{7}, 70_000)}
	group := el(IDBlockGroup,
		el(IDBlock, simpleBlockPayload(2, -5, 0, []byte("group frame"))),
		u(IDBlockDuration, 21),
		el(IDReferenceBlock, []byte{0xFF, 0xEC}))

	var b []byte
	b = AppendHeader(b, h)
	b = AppendTags(b, []SimpleTag{{Name: "BEFORE", Value: "first"}})
	b = AppendClusterStartUnknown(b, 1_700_000_000_000)
	b = AppendSimpleBlock(b, 1, 0, true, frames[0])
	b = AppendSimpleBlock(b, 2, 1, false, frames[1])
	b = AppendSimpleBlock(b, 1, 40, false, frames[2])
	b = AppendTags(b, []SimpleTag{{Name: "K", Value: "V"}, {Name: "BIN", Binary: []byte{0, 1, 2}}, {Name: "EMPTYBIN", Binary: []byte{}}})
	b = AppendTags(b, []SimpleTag{{Name: "AWS_KINESISVIDEO_END_OF_FRAGMENT"}})
	known := []Block{
		NewSimpleBlock(1, 0, true, frames[3]),
		{Group: true, Element: group[2:]}, // payload of the BlockGroup element (1-byte ID, 1-byte size)
		NewSimpleBlock(300, -32768, false, []byte{9}),
	}
	b = AppendCluster(b, 1_700_000_001_800, known)

	for _, name := range []string{"whole", "one byte reads"} {
		t.Run(name, func(t *testing.T) {
			var evs []Event
			var err error
			if name == "whole" {
				evs, err = readEvents(bytes.NewReader(b), Options{})
			} else {
				evs, err = readEvents(&oneByteReader{p: b}, Options{})
			}
			if err != nil {
				t.Fatal(err)
			}
			s := summarize(evs)
			if len(s.Headers) != 1 || !sameHeader(s.Headers[0], &h) {
				t.Fatalf("header = %+v, want %+v", s.Headers, h)
			}
			if len(s.Clusters) != 2 || s.Clusters[0].Timecode != 1_700_000_000_000 || s.Clusters[1].Timecode != 1_700_000_001_800 {
				t.Fatalf("clusters = %+v", s.Clusters)
			}
			c0 := s.Clusters[0].Blocks
			if len(c0) != 3 {
				t.Fatalf("%d blocks in cluster 0", len(c0))
			}
			for i, want := range []struct {
				track uint64
				tc    int16
				key   bool
			}{{1, 0, true}, {2, 1, false}, {1, 40, false}} {
				got := c0[i]
				fr, err := got.Frames()
				if err != nil || len(fr) != 1 || !bytes.Equal(fr[0], frames[i]) {
					t.Errorf("block %d frames: %v", i, err)
				}
				if got.Track != want.track || got.Timecode != want.tc || got.Keyframe != want.key || got.Group {
					t.Errorf("block %d = track %d tc %d key %v", i, got.Track, got.Timecode, got.Keyframe)
				}
			}
			c1 := s.Clusters[1].Blocks
			if len(c1) != 3 {
				t.Fatalf("%d blocks in cluster 1", len(c1))
			}
			if !sameBlock(c1[0], known[0]) || !sameBlock(c1[2], known[2]) {
				t.Errorf("known-size cluster blocks differ: %+v", c1)
			}
			g := c1[1]
			if !g.Group || g.Keyframe || g.Track != 2 || g.Timecode != -5 || g.Duration != 21 {
				t.Errorf("BlockGroup = %+v", g)
			}
			if fr, err := g.Frames(); err != nil || len(fr) != 1 || string(fr[0]) != "group frame" {
				t.Errorf("BlockGroup frames = %q, %v", fr, err)
			}
			wantTags := [][]SimpleTag{
				{{Name: "BEFORE", Value: "first"}},
				{{Name: "K", Value: "V"}, {Name: "BIN", Binary: []byte{0, 1, 2}}, {Name: "EMPTYBIN", Binary: []byte{}}},
				{{Name: "AWS_KINESISVIDEO_END_OF_FRAGMENT"}},
			}
			if !reflect.DeepEqual(s.Tags, wantTags) || !reflect.DeepEqual(s.TagsBefore, []int{0, 1, 1}) {
				t.Errorf("tags = %+v before %v", s.Tags, s.TagsBefore)
			}
		})
	}
}

// TestNonMinimalSizes re-encodes a stream with every size forced to 4 or 8
// bytes and with unknown-size sentinels of every length, as the KVS SDK and
// other producers do; the events must not change.
func TestNonMinimalSizes(t *testing.T) {
	payload := []byte("frame")
	for n := 1; n <= 8; n++ {
		forced := max(n, 2) // size fields that must hold values up to 100ish
		stream := cat(
			elN(IDEBML, forced, u(IDEBMLVersion, 1), elN(IDDocType, 8, []byte("matroska"))),
			unknownStart(IDSegment, n),
			elN(IDInfo, 4, uN(IDTimecodeScale, 8, 1_000_000), elN(IDTitle, 8, []byte("t"))),
			elN(IDTracks, 4, elN(IDTrackEntry, 4, uN(IDTrackNumber, 8, 1), uN(IDTrackType, 1, 1),
				elN(IDCodecID, 4, []byte("V_MPEG4/ISO/AVC")),
				elN(IDVideo, 8, uN(IDPixelWidth, 2, 640), uN(IDPixelHeight, 8, 480)))),
			unknownStart(IDCluster, n),
			uN(IDTimecode, 8, 12345),
			uN(IDPosition, 1, 0),
			elN(IDSimpleBlock, 8, simpleBlockPayload(1, 0, 0x80, payload)),
			elN(IDTags, 8, elN(IDTag, 8, elN(IDSimpleTag, 8, elN(IDTagName, 8, []byte("N")), elN(IDTagString, 8, []byte("V"))))),
			unknownStart(IDCluster, n),
			uN(IDTimecode, 1, 200),
			elN(IDSimpleBlock, 4, simpleBlockPayload(1, 3, 0, payload)),
		)
		s := summarize(mustReadEvents(t, stream, Options{}))
		tr := s.Headers[0].Tracks[0]
		if tr.PixelWidth != 640 || tr.PixelHeight != 480 || tr.CodecID != "V_MPEG4/ISO/AVC" || s.Headers[0].Title != "t" {
			t.Errorf("n=%d: header %+v", n, s.Headers[0])
		}
		if len(s.Clusters) != 2 || s.Clusters[0].Timecode != 12345 || s.Clusters[1].Timecode != 200 ||
			s.blockCount() != 2 || s.Clusters[1].Blocks[0].Timecode != 3 {
			t.Errorf("n=%d: clusters %+v", n, s.Clusters)
		}
		if len(s.Tags) != 1 || !reflect.DeepEqual(s.Tags[0], []SimpleTag{{Name: "N", Value: "V"}}) {
			t.Errorf("n=%d: tags %+v", n, s.Tags)
		}
	}
}

// TestKnownSizesAndConcatenation reads known-size Segments and Clusters (as
// ffmpeg writes them to a file) and concatenated documents (as GetMedia
// returns one EBML+Segment per fragment): each document's header is
// announced again.
func TestKnownSizesAndConcatenation(t *testing.T) {
	h := testHeader()
	h2 := testHeader()
	h2.Tracks = h2.Tracks[:1]
	h2.TimecodeScale = 100_000

	segBody := cat(
		el(IDSeekHead, el(0x4DBB, el(0x53AB, []byte{0x15, 0x49, 0xA9, 0x66}))),
		el(IDVoid, make([]byte, 20)),
		AppendInfo(nil, h), AppendTracks(nil, h.Tracks),
		AppendCluster(nil, 0, []Block{NewSimpleBlock(1, 0, true, []byte("a")), NewSimpleBlock(2, 5, false, []byte("b"))}),
		AppendCluster(nil, 100, []Block{NewSimpleBlock(1, 0, true, []byte("c"))}),
		el(IDCues, make([]byte, 30)),
	)
	docKnown := cat(ebmlHeader("matroska"), el(IDSegment, segBody))
	docUnknown := cat(AppendHeader(nil, h2), AppendTags(nil, []SimpleTag{{Name: "AWS_KINESISVIDEO_FRAGMENT_NUMBER", Value: "9134"}}),
		AppendClusterStartUnknown(nil, 7), AppendSimpleBlock(nil, 1, 0, true, []byte("d")))
	stream := cat(docKnown, docUnknown, docUnknown, docKnown)

	s := summarize(mustReadEvents(t, stream, Options{}))
	if len(s.Headers) != 4 {
		t.Fatalf("%d headers, want 4", len(s.Headers))
	}
	for i, want := range []*Header{&h, &h2, &h2, &h} {
		if !sameHeader(s.Headers[i], want) {
			t.Errorf("header %d = %+v", i, s.Headers[i])
		}
	}
	if s.Headers[1] == s.Headers[2] {
		t.Error("each document must get its own Header value")
	}
	var tcs []uint64
	for _, c := range s.Clusters {
		tcs = append(tcs, c.Timecode)
	}
	if !equalU64(tcs, []uint64{0, 100, 7, 7, 0, 100}) || s.blockCount() != 8 {
		t.Errorf("cluster timecodes %v, %d blocks", tcs, s.blockCount())
	}
	if len(s.Tags) != 2 {
		t.Errorf("%d tags", len(s.Tags))
	}

	// A known-size Segment may also hold an unknown-size Cluster: it ends
	// with the Segment.
	inner := cat(AppendInfo(nil, h), AppendTracks(nil, h.Tracks), AppendClusterStartUnknown(nil, 5),
		AppendSimpleBlock(nil, 1, 0, true, []byte("x")))
	s = summarize(mustReadEvents(t, cat(ebmlHeader("webm"), el(IDSegment, inner), docUnknown), Options{}))
	if len(s.Headers) != 2 || len(s.Clusters) != 2 || s.blockCount() != 2 {
		t.Errorf("unknown cluster in known segment: %d headers %d clusters %d blocks", len(s.Headers), len(s.Clusters), s.blockCount())
	}
}

// TestResumeSynthetic: with Options.Header, a body may start at Tags or a
// Cluster; no EventHeader is emitted, and Header() reports the assumed one.
func TestResumeSynthetic(t *testing.T) {
	h := testHeader()
	body := cat(AppendTags(nil, []SimpleTag{{Name: "TEST_KEY_1", Value: "v"}}),
		AppendTags(nil, []SimpleTag{{Name: "AWS_KINESISVIDEO_END_OF_FRAGMENT"}}),
		AppendClusterStartUnknown(nil, 3600), AppendSimpleBlock(nil, 1, 0, true, []byte("k")))
	r := NewReader(bytes.NewReader(body), Options{Header: &h})
	var types []EventType
	for {
		ev, err := r.Next()
		if err != nil {
			break
		}
		types = append(types, ev.Type)
	}
	if !reflect.DeepEqual(types, []EventType{EventTags, EventTags, EventClusterStart, EventBlock}) {
		t.Errorf("events = %v", types)
	}
	if r.Header() != &h {
		t.Error("Header() is not Options.Header")
	}
	// A new header in the resumed body replaces the assumed one.
	h2 := testHeader()
	h2.Title = "new"
	s := summarize(mustReadEvents(t, cat(body, AppendHeader(nil, h2), AppendClusterStartUnknown(nil, 1)), Options{Header: &h}))
	if len(s.Headers) != 1 || s.Headers[0].Title != "new" {
		t.Errorf("headers = %+v", s.Headers)
	}
}

// TestResyncSynthetic: garbage, including a false Cluster ID not followed
// by a Timecode, before a real Cluster.
func TestResyncSynthetic(t *testing.T) {
	h := testHeader()
	garbage := cat(bytes.Repeat([]byte{0x00, 0x11}, 100), clusterID, []byte{0x81, 0xA3}, []byte{0x1F, 0x43}, bytes.Repeat([]byte{0x55}, 70_000))
	body := cat(garbage, AppendClusterStartUnknown(nil, 42), AppendSimpleBlock(nil, 1, 0, true, []byte("k")))
	s := summarize(mustReadEvents(t, body, Options{Header: &h, MaxResync: 1 << 20}))
	if len(s.Resyncs) != 1 || s.Resyncs[0].Skipped != int64(len(garbage)) {
		t.Fatalf("resyncs = %+v, want skipped %d", s.Resyncs, len(garbage))
	}
	if len(s.Clusters) != 1 || s.Clusters[0].Timecode != 42 || s.blockCount() != 1 {
		t.Errorf("clusters = %+v", s.Clusters)
	}
	// The same via one-byte reads.
	evs, err := readEvents(&oneByteReader{p: body}, Options{Header: &h, MaxResync: 1 << 20})
	if err != nil || len(evs) != 3 || evs[0].Skipped != int64(len(garbage)) {
		t.Errorf("one-byte resync: %v, %+v", err, evs)
	}
}

// TestInfoAfterTracks: Matroska does not fix the order; a late Info is
// announced with a second EventHeader carrying both.
func TestInfoAfterTracks(t *testing.T) {
	h := testHeader()
	h.TimecodeScale = 500
	stream := cat(ebmlHeader("matroska"), AppendSegmentStart(nil), AppendTracks(nil, h.Tracks), AppendInfo(nil, h),
		AppendClusterStartUnknown(nil, 1))
	s := summarize(mustReadEvents(t, stream, Options{}))
	if len(s.Headers) != 2 || s.Headers[0].TimecodeScale != DefaultTimecodeScale || !sameHeader(s.Headers[1], &h) {
		t.Errorf("headers = %+v", s.Headers)
	}
}

// TestTagsStructure: several Tag elements in one Tags, Targets skipped,
// nested SimpleTags flattened parent first, zero padding trimmed.
func TestTagsStructure(t *testing.T) {
	h := testHeader()
	tags := el(IDTags,
		el(IDTag, el(IDTargets, u(0x68CA, 50)), simpleTagEl("AWS_KINESISVIDEO_IMAGE_GENERATION", "",
			simpleTagEl("AWS_KINESISVIDEO_IMAGE_PREFIX", "pre"), simpleTagEl("custom", "v", simpleTagEl("deep", "d")))),
		el(IDTag, el(IDSimpleTag, str(IDTagName, "padded\x00\x00"), el(IDTagBinary, []byte{0}), str(IDTagLang, "und"))),
	)
	s := summarize(mustReadEvents(t, cat(AppendHeader(nil, h), tags), Options{}))
	want := []SimpleTag{
		{Name: "AWS_KINESISVIDEO_IMAGE_GENERATION"},
		{Name: "AWS_KINESISVIDEO_IMAGE_PREFIX", Value: "pre"},
		{Name: "custom", Value: "v"},
		{Name: "deep", Value: "d"},
		{Name: "padded", Binary: []byte{0}},
	}
	if len(s.Tags) != 1 || !reflect.DeepEqual(s.Tags[0], want) {
		t.Errorf("tags = %+v", s.Tags)
	}
}

// TestTrackFields covers every TrackEntry field and a 4-byte float.
func TestTrackFields(t *testing.T) {
	entry := el(IDTrackEntry, u(IDTrackNumber, 3), u(IDTrackUID, 1<<63), u(IDTrackType, TrackTypeAudio),
		str(IDTrackName, "mic"), str(IDCodecID, "A_MS/ACM"), el(IDCodecPrivate, []byte{6, 0, 1, 0}),
		u(IDDefaultDuration, 20_000_000), el(0x55AA, []byte{1}), // FlagForced: unknown to us, skipped
		el(IDAudio, el(IDSamplingFrequency, []byte{0x45, 0xFA, 0, 0}), u(IDChannels, 1), u(IDBitDepth, 8)))
	stream := cat(ebmlHeader("matroska"), AppendSegmentStart(nil), el(IDTracks, el(IDCRC32, []byte{1, 2, 3, 4}), entry))
	s := summarize(mustReadEvents(t, stream, Options{}))
	want := Track{Number: 3, UID: 1 << 63, Type: 2, Name: "mic", CodecID: "A_MS/ACM", CodecPrivate: []byte{6, 0, 1, 0},
		DefaultDuration: 20_000_000, SamplingFrequency: 8000, Channels: 1, BitDepth: 8}
	if len(s.Headers) != 1 || !sameTrack(s.Headers[0].Tracks[0], want) {
		t.Errorf("track = %+v", s.Headers[0].Tracks)
	}
	if s.Headers[0].TimecodeScale != DefaultTimecodeScale {
		t.Errorf("TimecodeScale without Info = %d", s.Headers[0].TimecodeScale)
	}
}

// TestElementIsOwnCopy: a block's Element must survive later reads, which
// reuse the reader's buffer.
func TestElementIsOwnCopy(t *testing.T) {
	h := testHeader()
	b := cat(AppendHeader(nil, h), AppendClusterStartUnknown(nil, 0))
	for i := 0; i < 3000; i++ {
		b = AppendSimpleBlock(b, 1, int16(i), false, bytes.Repeat([]byte{byte(i)}, 50))
	}
	r := NewReader(bytes.NewReader(b), Options{})
	var kept []Block
	for {
		ev, err := r.Next()
		if err != nil {
			break
		}
		if ev.Type == EventBlock {
			kept = append(kept, ev.Block)
		}
	}
	for i, blk := range kept {
		fr, _ := blk.Frames()
		if len(fr) != 1 || !bytes.Equal(fr[0], bytes.Repeat([]byte{byte(i)}, 50)) {
			t.Fatalf("block %d changed after later reads", i)
		}
	}
}
