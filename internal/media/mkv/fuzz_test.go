package mkv

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// Fuzz mode bits (the second fuzz argument).
const (
	fuzzResume    = 1 << iota // Options.Header set
	fuzzResync                // MaxResync 4096
	fuzzTinyBlock             // MaxBlockSize 100: exercise ErrTooLarge
	fuzzOneByte               // also read through one-byte Reads and compare
)

// FuzzReader runs the Reader over arbitrary bytes. It must never panic,
// return only the documented error kinds, and whatever it reads as blocks
// and tags must survive a round trip through the writer. Its seeds are the
// files in testdata/fuzz/FuzzReader (see TestFuzzSeeds).
func FuzzReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, mode byte) {
		h := testHeader()
		opt := Options{MaxBlockSize: 1 << 20, MaxElementSize: 64 << 10}
		if mode&fuzzResume != 0 {
			opt.Header = &h
		}
		if mode&fuzzResync != 0 {
			opt.MaxResync = 4096
		}
		if mode&fuzzTinyBlock != 0 {
			opt.MaxBlockSize = 100
		}
		evs, err := fuzzRead(t, bytes.NewReader(data), opt, int64(len(data)))
		if mode&fuzzOneByte != 0 {
			evs2, err2 := fuzzRead(t, &oneByteReader{p: data}, opt, int64(len(data)))
			if fmt.Sprint(err) != fmt.Sprint(err2) || len(evs) != len(evs2) {
				t.Fatalf("one-byte reads differ: %v / %v, %d / %d events", err, err2, len(evs), len(evs2))
			}
			for i := range evs {
				if !sameEvent(evs[i], evs2[i]) {
					t.Fatalf("event %d differs with one-byte reads", i)
				}
			}
		}
		checkRoundTrips(t, evs)
	})
}

func fuzzRead(t *testing.T, src io.Reader, opt Options, n int64) ([]Event, error) {
	r := NewReader(src, opt)
	var evs []Event
	for {
		ev, err := r.Next()
		if r.Offset() > n {
			t.Fatalf("Offset %d past the %d input bytes", r.Offset(), n)
		}
		if err != nil {
			if err != io.EOF && !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("undocumented error: %v", err)
			}
			return evs, err
		}
		switch ev.Type {
		case EventHeader:
			if ev.Header == nil || ev.Header.TimecodeScale == 0 {
				t.Fatalf("bad header event %+v", ev)
			}
		case EventBlock:
			if len(ev.Block.Element) > int(opt.MaxBlockSize) {
				t.Fatalf("block of %d bytes over the limit", len(ev.Block.Element))
			}
			// Blocks are validated when read, so Frames cannot fail, and the
			// frames are parts of the element.
			fr, err := ev.Block.Frames()
			if err != nil {
				t.Fatalf("Frames of a block the reader accepted: %v", err)
			}
			total := 0
			for _, f := range fr {
				total += len(f)
			}
			if total > len(ev.Block.Element) {
				t.Fatalf("%d frame bytes from a %d-byte element", total, len(ev.Block.Element))
			}
		case EventResync:
			if ev.Skipped <= 0 || ev.Skipped > opt.MaxResync {
				t.Fatalf("resync skipped %d", ev.Skipped)
			}
		}
		evs = append(evs, ev)
	}
}

// sameTags treats nil and empty lists alike: a Tags element with no
// SimpleTag gives a nil list.
func sameTags(a, b []SimpleTag) bool {
	return len(a) == 0 && len(b) == 0 || reflect.DeepEqual(a, b)
}

func sameEvent(a, b Event) bool {
	return a.Type == b.Type && a.Offset == b.Offset && a.ClusterTimecode == b.ClusterTimecode && a.Skipped == b.Skipped &&
		sameBlock(a.Block, b.Block) && reflect.DeepEqual(a.Tags, b.Tags) && sameHeader(a.Header, b.Header)
}

// checkRoundTrips re-writes what was read and reads it back: each Cluster's
// blocks through AppendCluster, each Tags through AppendTags, each Header
// through EncodeHeaderTracks.
func checkRoundTrips(t *testing.T, evs []Event) {
	h := testHeader()
	opt := Options{Header: &h, MaxBlockSize: 1 << 20, MaxElementSize: 1 << 20}
	var tc uint64
	var blocks []Block
	flush := func() {
		b := AppendCluster(nil, tc, blocks)
		got, err := readEvents(bytes.NewReader(b), opt)
		if err != nil || len(got) != len(blocks)+1 || got[0].ClusterTimecode != tc {
			t.Fatalf("cluster round trip: %v, %d events for %d blocks", err, len(got), len(blocks))
		}
		for i, ev := range got[1:] {
			if !sameBlock(ev.Block, blocks[i]) {
				t.Fatalf("cluster round trip: block %d differs:\n%+v\n%+v", i, ev.Block, blocks[i])
			}
		}
	}
	inCluster := false
	for _, ev := range evs {
		switch ev.Type {
		case EventClusterStart:
			if inCluster {
				flush()
			}
			inCluster, tc, blocks = true, ev.ClusterTimecode, nil
		case EventBlock:
			blocks = append(blocks, ev.Block)
		case EventTags:
			want := make([]SimpleTag, len(ev.Tags))
			for i, st := range ev.Tags {
				want[i] = st
				if st.Binary != nil {
					want[i].Value = "" // the writer keeps TagBinary over TagString
				}
			}
			got, err := readEvents(bytes.NewReader(AppendTags(nil, ev.Tags)), opt)
			if err != nil || len(got) != 1 || !sameTags(got[0].Tags, want) {
				t.Fatalf("tags round trip: %v, %+v, want %+v", err, got, want)
			}
		case EventHeader:
			enc := EncodeHeaderTracks(*ev.Header)
			dec, err := DecodeHeaderTracks(enc)
			if err != nil || !sameHeader(dec, ev.Header) {
				t.Fatalf("header round trip: %v\n%+v\n%+v", err, dec, ev.Header)
			}
			if !bytes.Equal(EncodeHeaderTracks(*dec), enc) {
				t.Fatal("header re-encoding differs")
			}
		}
	}
	if inCluster {
		flush()
	}
}

// The seed corpus lives in testdata/fuzz/FuzzReader as seed-* files, in the
// format go test reads; -update-seeds rewrites them from fuzzSeeds.
var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz/FuzzReader/seed-* from fuzzSeeds")

type fuzzSeed struct {
	name string
	data []byte
	mode byte
}

func fuzzSeeds(t testing.TB) []fuzzSeed {
	h := testHeader()
	writer := cat(AppendHeader(nil, h), AppendTags(nil, []SimpleTag{{Name: "A", Value: "b"}, {Name: "B", Binary: []byte{1}}}),
		AppendClusterStartUnknown(nil, 1000), AppendSimpleBlock(nil, 1, 0, true, []byte("key")), AppendSimpleBlock(nil, 2, -3, false, []byte("aud")),
		AppendTags(nil, []SimpleTag{{Name: "AWS_KINESISVIDEO_END_OF_FRAGMENT"}}),
		AppendCluster(nil, 2000, []Block{
			NewSimpleBlock(1, 0, true, []byte("k2")),
			{Group: true, Element: el(IDBlock, simpleBlockPayload(2, 4, 0x06, []byte{0x02, 0x81, 0xC0, 'a', 'b', 'c', 'd'}))},
			{Element: simpleBlockPayload(2, 5, 0x02, []byte{0x01, 0x02, 'x', 'y', 'z'})},
		}))
	resume := cat(AppendTags(nil, []SimpleTag{{Name: "TEST_KEY_1", Value: "TEST_VALUE_1"}}),
		AppendClusterStartUnknown(nil, 3600), AppendSimpleBlock(nil, 1, 0, true, []byte("k")), AppendSimpleBlock(nil, 1, 40, false, []byte("p")))
	resync := cat([]byte{0x00, 0x00, 0x00, 0x1d, 0x67, 0x1F, 0x43, 0xB6, 0x75, 0x81}, resume[len(AppendTags(nil, []SimpleTag{{Name: "TEST_KEY_1", Value: "TEST_VALUE_1"}})):])
	concat := cat(ebmlHeader("webm"), el(IDSegment, AppendInfo(nil, h), AppendTracks(nil, h.Tracks[:1]),
		AppendCluster(nil, 0, []Block{NewSimpleBlock(1, 0, true, []byte("a"))})), AppendHeader(nil, h), AppendClusterStartUnknown(nil, 1))
	return []fuzzSeed{
		{"seed-video-only-4k", readFixtureBody(t, videoOnly)[:4096], 0},
		{"seed-av-events-4k", readFixtureBody(t, avEvents)[:4096], fuzzOneByte},
		{"seed-writer", writer, fuzzOneByte},
		{"seed-resume", resume, fuzzResume},
		{"seed-resync", resync, fuzzResume | fuzzResync | fuzzOneByte},
		{"seed-concatenated", concat, fuzzTinyBlock},
	}
}

// TestFuzzSeeds keeps the checked-in seed files in step with fuzzSeeds.
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzReader")
	for _, s := range fuzzSeeds(t) {
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nbyte(%q)\n", s.data, s.mode)
		path := filepath.Join(dir, s.name)
		if *updateSeeds {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, path, []byte(want))
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Errorf("%s is missing or stale (%v); run go test -run TestFuzzSeeds -update-seeds", path, err)
		}
	}
}
