package mkv

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Tests against real KVS producer SDK (C) PutMedia bodies, captured by the
// recorder; see shared/kvs-producer-wire.md section 5.

const (
	videoOnly = "video-only-https"
	avEvents  = "av-events-httpdata"
)

func TestFixtureVideoOnly(t *testing.T) {
	body := readFixtureBody(t, videoOnly)
	s := summarize(mustReadEvents(t, body, Options{}))

	if len(s.Headers) != 1 {
		t.Fatalf("%d headers, want 1", len(s.Headers))
	}
	h := s.Headers[0]
	if h.TimecodeScale != 1_000_000 {
		t.Errorf("TimecodeScale = %d", h.TimecodeScale)
	}
	if len(h.SegmentUID) != 16 || h.Title != "Kinesis Video SDK" || h.MuxingApp != "Kinesis Video SDK 1.1.0" {
		t.Errorf("Info = %+v", h)
	}
	if len(h.Tracks) != 1 {
		t.Fatalf("%d tracks, want 1", len(h.Tracks))
	}
	v := h.Tracks[0]
	if v.Number != 1 || v.UID != 1 || v.Type != TrackTypeVideo || v.Name != "kvs_video_track" ||
		v.CodecID != "V_MPEG4/ISO/AVC" || v.PixelWidth != 640 || v.PixelHeight != 480 {
		t.Errorf("video track = %+v", v)
	}
	// avcC: version 1, High profile (0x64), level 3.0 (0x1e).
	if len(v.CodecPrivate) != 45 || !bytes.HasPrefix(v.CodecPrivate, []byte{1, 0x64, 0, 0x1e}) {
		t.Errorf("CodecPrivate = %x", v.CodecPrivate)
	}

	if len(s.Clusters) != 6 {
		t.Fatalf("%d clusters, want 6", len(s.Clusters))
	}
	if s.blockCount() != 243 {
		t.Errorf("%d blocks, want 243", s.blockCount())
	}
	if tc := s.Clusters[0].Timecode; tc != 1795237808072 {
		t.Errorf("first cluster timecode = %d", tc)
	}
	for i, c := range s.Clusters {
		if want := uint64(1795237808072 + 1800*i); c.Timecode != want {
			t.Errorf("cluster %d timecode = %d, want %d", i, c.Timecode, want)
		}
		if want := map[bool]int{true: 18, false: 45}[i == 5]; len(c.Blocks) != want {
			t.Errorf("cluster %d has %d blocks, want %d", i, len(c.Blocks), want)
		}
		if b := c.Blocks[0]; !b.Keyframe || b.Flags != 0x80 || b.Timecode != 0 {
			t.Errorf("cluster %d first block = track %d tc %d flags %#x", i, b.Track, b.Timecode, b.Flags)
		}
		for j, b := range c.Blocks[1:] {
			if b.Keyframe || b.Group || b.Track != 1 || int(b.Timecode) != 40*(j+1) {
				t.Errorf("cluster %d block %d = %+v", i, j+1, b)
				break
			}
		}
	}

	// Per fragment: TEST_KEY_1..9 (one Tags element each), then the EoFR.
	// The sample numbers the values by frame, not by key: fragment i carries
	// TEST_VALUE_(45i+1) .. TEST_VALUE_(45i+9).
	perCluster := make([][]string, len(s.Clusters))
	for i, tags := range s.Tags {
		if len(tags) != 1 {
			t.Fatalf("Tags %d holds %d SimpleTags, want 1", i, len(tags))
		}
		c := s.TagsBefore[i] - 1
		if c < 0 {
			t.Fatalf("Tags %d before the first cluster", i)
		}
		perCluster[c] = append(perCluster[c], tags[0].Name+"="+tags[0].Value)
	}
	for i, names := range perCluster {
		var want []string
		for k := 1; k <= 9; k++ {
			want = append(want, "TEST_KEY_"+strconv.Itoa(k)+"=TEST_VALUE_"+strconv.Itoa(45*i+k))
		}
		want = append(want, "AWS_KINESISVIDEO_END_OF_FRAGMENT=")
		if strings.Join(names, ",") != strings.Join(want, ",") {
			t.Errorf("fragment %d tags = %v", i, names)
		}
	}
	checkAgainstWalk(t, videoOnly, s)
}

func TestFixtureAVEvents(t *testing.T) {
	body := readFixtureBody(t, avEvents)
	s := summarize(mustReadEvents(t, body, Options{}))
	if len(s.Headers) != 1 || len(s.Headers[0].Tracks) != 2 {
		t.Fatalf("headers = %+v", s.Headers)
	}
	a := s.Headers[0].Tracks[1]
	if a.Number != 2 || a.Type != TrackTypeAudio || a.CodecID != "A_AAC" || a.SamplingFrequency != 48000 ||
		a.Channels != 2 || !bytes.Equal(a.CodecPrivate, []byte{0x11, 0x90}) || a.Name != "kvs_audio_track" {
		t.Errorf("audio track = %+v", a)
	}
	var tcs []uint64
	for _, c := range s.Clusters {
		tcs = append(tcs, c.Timecode)
	}
	if !equalU64(tcs, []uint64{0, 1800, 3600, 5400, 7200}) {
		t.Errorf("cluster timecodes = %v (RELATIVE mode)", tcs)
	}
	if s.blockCount() != 600 {
		t.Errorf("%d blocks, want 600", s.blockCount())
	}
	// The event tags sit after fragment 1's blocks, before the cluster with tc 1800.
	var names []string
	for i, tags := range s.Tags {
		for _, st := range tags {
			names = append(names, st.Name+"@"+strconv.Itoa(s.TagsBefore[i]))
		}
	}
	want := "AWS_KINESISVIDEO_NOTIFICATION@1,AWS_KINESISVIDEO_IMAGE_GENERATION@1,AWS_KINESISVIDEO_END_OF_FRAGMENT@5"
	if strings.Join(names, ",") != want {
		t.Errorf("tags = %v, want %s", names, want)
	}
	// The first AAC block has relative tc 1 (PIC's one-millisecond compensation).
	for _, b := range s.Clusters[0].Blocks {
		if b.Track == 2 {
			if b.Timecode != 1 || b.Keyframe {
				t.Errorf("first audio block: tc %d key %v", b.Timecode, b.Keyframe)
			}
			break
		}
	}
	checkAgainstWalk(t, avEvents, s)
}

func equalU64(a, b []uint64) bool {
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

var (
	walkCluster = regexp.MustCompile(`^Cluster \[1F43B675\] @(\d+)`)
	walkBlock   = regexp.MustCompile(`SimpleBlock \[A3\] @(\d+) size=(\d+) track=(\d+) reltc=(-?\d+) flags=0x([0-9a-f]{2})`)
)

// checkAgainstWalk compares the reader's view with the independent element
// walk recorded next to the capture (which lists the first blocks of each
// cluster).
func checkAgainstWalk(t *testing.T, name string, s summary) {
	t.Helper()
	f, err := os.Open(filepath.Join(fixturesDir(t), "kvs-producer-c", name, "putmedia-walk.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type blk struct {
		size, track int
		tc          int16
		flags       byte
	}
	blocks := map[int64]blk{}
	var clusterOffs []int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m := walkCluster.FindStringSubmatch(line); m != nil {
			off, _ := strconv.ParseInt(m[1], 10, 64)
			clusterOffs = append(clusterOffs, off)
			continue
		}
		if m := walkBlock.FindStringSubmatch(line); m != nil {
			off, _ := strconv.ParseInt(m[1], 10, 64)
			size, _ := strconv.Atoi(m[2])
			track, _ := strconv.Atoi(m[3])
			tc, _ := strconv.Atoi(m[4])
			fl, _ := strconv.ParseUint(m[5], 16, 8)
			blocks[off] = blk{size, track, int16(tc), byte(fl)}
		}
	}
	if len(clusterOffs) != len(s.Clusters) {
		t.Fatalf("walk lists %d clusters, reader saw %d", len(clusterOffs), len(s.Clusters))
	}
	for i, off := range clusterOffs {
		if s.Clusters[i].Offset != off {
			t.Errorf("cluster %d at %d, walk says %d", i, s.Clusters[i].Offset, off)
		}
	}
	// The reader's block events carry offsets; index them.
	found := 0
	for _, ev := range mustReadEvents(t, readFixtureBody(t, name), Options{}) {
		if ev.Type != EventBlock {
			continue
		}
		w, ok := blocks[ev.Offset]
		if !ok {
			continue
		}
		found++
		b := ev.Block
		if len(b.Element) != w.size || int(b.Track) != w.track || b.Timecode != w.tc || b.Flags != w.flags {
			t.Errorf("block @%d: size %d track %d tc %d flags %#x; walk: %+v", ev.Offset, len(b.Element), b.Track, b.Timecode, b.Flags, w)
		}
	}
	if found != len(blocks) || found == 0 {
		t.Errorf("matched %d of the %d blocks the walk lists", found, len(blocks))
	}
}

// TestFixtureOneByteReads feeds the body one byte per Read: every element
// boundary then falls on a buffer boundary somewhere.
func TestFixtureOneByteReads(t *testing.T) {
	body := readFixtureBody(t, avEvents)
	want := mustReadEvents(t, body, Options{})
	got, err := readEvents(&oneByteReader{p: body}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Type != want[i].Type || got[i].Offset != want[i].Offset || !sameBlock(got[i].Block, want[i].Block) {
			t.Fatalf("event %d differs", i)
		}
	}
}

// TestFixtureResume replays what the SDK sends after an ERROR ack: the body
// starts at a Cluster, or at the Tags that end the previous fragment,
// without EBML header or Tracks (kvs-producer-wire.md section 8).
func TestFixtureResume(t *testing.T) {
	body := readFixtureBody(t, videoOnly)
	full := summarize(mustReadEvents(t, body, Options{}))
	hdr := full.Headers[0]

	t.Run("cluster", func(t *testing.T) {
		off := full.Clusters[1].Offset
		s := summarize(mustReadEvents(t, body[off:], Options{Header: hdr}))
		if len(s.Headers) != 0 || len(s.Clusters) != 5 || s.Clusters[0].Timecode != full.Clusters[1].Timecode {
			t.Fatalf("resumed: %d headers, %d clusters", len(s.Headers), len(s.Clusters))
		}
		if s.blockCount() != 243-45 {
			t.Errorf("%d blocks", s.blockCount())
		}
	})
	t.Run("tags", func(t *testing.T) {
		// First Tags event after the blocks of cluster 1 (TEST_KEY_1).
		var off int64
		for _, ev := range mustReadEvents(t, body, Options{}) {
			if ev.Type == EventTags && ev.Offset > full.Clusters[1].Offset {
				off = ev.Offset
				break
			}
		}
		s := summarize(mustReadEvents(t, body[off:], Options{Header: hdr}))
		if len(s.Tags) != 50 || s.TagsBefore[0] != 0 || len(s.Clusters) != 4 {
			t.Fatalf("%d tags (first before %d clusters), %d clusters", len(s.Tags), s.TagsBefore[0], len(s.Clusters))
		}
	})
	t.Run("no header", func(t *testing.T) {
		_, err := readEvents(bytes.NewReader(body[full.Clusters[1].Offset:]), Options{})
		wantErr(t, err, ErrInvalid)
	})
	t.Run("mid-block resync", func(t *testing.T) {
		start := full.Clusters[0].Offset + 5000 // inside the first key frame
		next := full.Clusters[1].Offset
		s := summarize(mustReadEvents(t, body[start:], Options{Header: hdr, MaxResync: 1 << 20}))
		if len(s.Resyncs) != 1 || s.Resyncs[0].Skipped != next-start || s.Resyncs[0].Offset != 0 {
			t.Fatalf("resyncs = %+v, want one skipping %d", s.Resyncs, next-start)
		}
		if len(s.Clusters) != 5 || s.Clusters[0].Timecode != full.Clusters[1].Timecode {
			t.Fatalf("%d clusters after resync", len(s.Clusters))
		}
		// Limit too small: error, not a silent skip.
		_, err := readEvents(bytes.NewReader(body[start:]), Options{Header: hdr, MaxResync: next - start - 1})
		wantErr(t, err, ErrInvalid)
		// Exactly enough.
		if _, err := readEvents(bytes.NewReader(body[start:]), Options{Header: hdr, MaxResync: next - start}); err != nil {
			t.Fatal(err)
		}
		// No resync allowed.
		_, err = readEvents(bytes.NewReader(body[start:]), Options{Header: hdr})
		wantErr(t, err, ErrInvalid)
	})
}

// TestFixtureTruncated cuts the body at many points: a cut between
// elements is a clean io.EOF, a cut inside one is io.ErrUnexpectedEOF.
func TestFixtureTruncated(t *testing.T) {
	body := readFixtureBody(t, avEvents)
	evs := mustReadEvents(t, body, Options{})
	boundaries := map[int64]bool{}
	r := NewReader(bytes.NewReader(body), Options{})
	for {
		if _, err := r.Next(); err != nil {
			break
		}
		boundaries[r.Offset()] = true
	}
	// Every element end the reader stopped at, plus cuts inside elements.
	cuts := []int64{1, 3, 20, 44, 46, 100}
	for _, ev := range evs {
		if ev.Type == EventBlock && len(cuts) < 400 {
			cuts = append(cuts, ev.Offset+1, ev.Offset+5, ev.Offset+int64(len(ev.Block.Element))/2)
		}
	}
	for b := range boundaries {
		cuts = append(cuts, b)
	}
	for _, cut := range cuts {
		_, err := readEvents(bytes.NewReader(body[:cut]), Options{})
		clean := boundaries[cut] && cut > 350 // before that the header is incomplete: still clean, but no Tracks
		switch {
		case clean && err != nil:
			t.Errorf("cut at %d (element boundary): %v", cut, err)
		case !boundaries[cut] && !errors.Is(err, io.ErrUnexpectedEOF):
			t.Errorf("cut at %d: error %v, want unexpected EOF", cut, err)
		}
	}
}
