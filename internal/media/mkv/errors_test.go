package mkv

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

func TestReaderErrors(t *testing.T) {
	h := testHeader()
	hdr := AppendHeader(nil, h)
	seg := cat(ebmlHeader("matroska"), AppendSegmentStart(nil))
	blk := AppendSimpleBlock(nil, 1, 0, true, []byte("x"))
	tcEl := u(IDTimecode, 1)

	for _, tc := range []struct {
		name   string
		stream []byte
		opt    Options
		want   error
	}{
		{"block before timecode", cat(hdr, unknownStart(IDCluster, 1), blk, tcEl), Options{}, ErrInvalid},
		{"cluster without tracks", cat(seg, AppendInfo(nil, h), AppendClusterStartUnknown(nil, 0)), Options{}, ErrInvalid},
		{"bad doctype", cat(ebmlHeader("mp4"), AppendSegmentStart(nil)), Options{}, ErrInvalid},
		{"no doctype", cat(el(IDEBML, u(IDEBMLVersion, 1)), AppendSegmentStart(nil)), Options{}, ErrInvalid},
		{"unknown element of unknown size", cat(hdr, unknownStart(0x4321, 1), make([]byte, 10)), Options{}, ErrInvalid},
		{"Tags of unknown size", cat(hdr, unknownStart(IDTags, 1)), Options{}, ErrInvalid},
		{"TimecodeScale 0", cat(seg, el(IDInfo, u(IDTimecodeScale, 0))), Options{}, ErrInvalid},
		{"Tracks in a known-size Cluster", cat(hdr, el(IDCluster, tcEl, AppendTracks(nil, h.Tracks))), Options{}, ErrInvalid},
		{"child overruns Cluster", cat(hdr, el(IDCluster, tcEl, blk[:len(blk)-1]), []byte{0}), Options{}, ErrInvalid},
		{"child overruns Segment", cat(ebmlHeader("matroska"), el(IDSegment, AppendInfo(nil, h)[:10]), make([]byte, 200)), Options{}, ErrInvalid},
		{"second Timecode", cat(hdr, unknownStart(IDCluster, 1), tcEl, tcEl), Options{}, ErrInvalid},
		{"Cluster without Timecode", cat(hdr, unknownStart(IDCluster, 1), AppendClusterStartUnknown(nil, 0)), Options{}, ErrInvalid},
		{"Timecode of 9 bytes", cat(hdr, unknownStart(IDCluster, 1), el(IDTimecode, make([]byte, 9))), Options{}, ErrInvalid},
		{"garbage start", cat([]byte("GET / HTTP/1.1\r\n"), hdr), Options{}, ErrInvalid},
		{"garbage start, resync without header", cat([]byte{0x42, 0x42}, AppendClusterStartUnknown(nil, 0)), Options{MaxResync: 100}, ErrInvalid},
		{"garbage only", bytes.Repeat([]byte{0x42}, 1000), Options{Header: &h, MaxResync: 1 << 20}, ErrInvalid},
		{"Tags first without header", AppendTags(nil, []SimpleTag{{Name: "a"}}), Options{}, ErrInvalid},
		{"Cluster first without header", AppendClusterStartUnknown(nil, 0), Options{}, ErrInvalid},
		{"Segment without EBML header", cat(AppendSegmentStart(nil), AppendInfo(nil, h)), Options{}, ErrInvalid},
		{"Info outside Segment", cat(ebmlHeader("matroska"), el(IDSegment), AppendInfo(nil, h)), Options{}, ErrInvalid},
		{"BlockGroup without Block", cat(hdr, AppendClusterStartUnknown(nil, 0), el(IDBlockGroup, u(IDBlockDuration, 1))), Options{}, ErrInvalid},
		{"BlockGroup with two Blocks", cat(hdr, AppendClusterStartUnknown(nil, 0), el(IDBlockGroup, el(IDBlock, blk[2:]), el(IDBlock, blk[2:]))), Options{}, ErrInvalid},
		{"SimpleBlock too short", cat(hdr, AppendClusterStartUnknown(nil, 0), el(IDSimpleBlock, []byte{0x81, 0})), Options{}, ErrInvalid},
		{"bad lacing", cat(hdr, AppendClusterStartUnknown(nil, 0), el(IDSimpleBlock, simpleBlockPayload(1, 0, 0x04, []byte{2, 1, 2, 3, 4}))), Options{}, ErrInvalid},
		{"reserved ID", cat(hdr, []byte{0xFF, 0x80}), Options{}, ErrInvalid},
		{"size byte 0", cat(hdr, []byte{0xEC, 0x00}), Options{}, ErrInvalid},
		{"ID longer than 4 bytes", cat(hdr, []byte{0x08, 1, 2, 3, 4, 0x80}), Options{}, ErrInvalid},
		{"EBML header inside a known Segment", cat(ebmlHeader("matroska"), el(IDSegment, AppendInfo(nil, h), ebmlHeader("matroska"))), Options{}, ErrInvalid},
		{"deep SimpleTag nesting", cat(hdr, el(IDTags, el(IDTag, nestTags(40)))), Options{}, ErrInvalid},
		{"block too large", cat(hdr, AppendClusterStartUnknown(nil, 0), AppendSimpleBlock(nil, 1, 0, true, make([]byte, 2000))), Options{MaxBlockSize: 1000}, ErrTooLarge},
		{"Tracks too large", hdr, Options{MaxElementSize: 100}, ErrTooLarge},
		{"Tags too large", cat(hdr, AppendTags(nil, []SimpleTag{{Name: strings.Repeat("n", 2000)}})), Options{MaxElementSize: 1000}, ErrTooLarge},
		{"EBML header too large", cat(el(IDEBML, str(IDDocType, "matroska"), el(IDVoid, make([]byte, 5000)))), Options{MaxElementSize: 1000}, ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(tc.stream), tc.opt)
			var err error
			for err == nil {
				_, err = r.Next()
			}
			t.Log(err)
			wantErr(t, err, tc.want)
			if !strings.Contains(err.Error(), "offset ") {
				t.Errorf("error %q does not name an offset", err)
			}
			if _, again := r.Next(); again != err {
				t.Errorf("error is not sticky: %v then %v", err, again)
			}
		})
	}
}

func nestTags(depth int) []byte {
	p := str(IDTagName, "leaf")
	for i := 0; i < depth; i++ {
		p = el(IDSimpleTag, str(IDTagName, "n"), p)
	}
	return p
}

func TestReaderCleanEnds(t *testing.T) {
	h := testHeader()
	for _, tc := range []struct {
		name   string
		stream []byte
		events int
	}{
		{"empty", nil, 0},
		{"header only", AppendHeader(nil, h), 1},
		{"EBML header and Segment start", cat(ebmlHeader("webm"), AppendSegmentStart(nil)), 0},
		{"unknown cluster after Timecode", cat(AppendHeader(nil, h), AppendClusterStartUnknown(nil, 9)), 2},
		{"Void at top level", cat(AppendHeader(nil, h), el(IDVoid, make([]byte, 10))), 1},
		{"known segment then Void", cat(ebmlHeader("matroska"), el(IDSegment, AppendInfo(nil, h), AppendTracks(nil, h.Tracks)), el(IDVoid)), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := readEvents(bytes.NewReader(tc.stream), Options{})
			if err != nil || len(evs) != tc.events {
				t.Errorf("%d events, %v; want %d and a clean EOF", len(evs), err, tc.events)
			}
		})
	}
}

func TestReaderTruncated(t *testing.T) {
	h := testHeader()
	full := cat(AppendHeader(nil, h), AppendTags(nil, []SimpleTag{{Name: "n", Value: "v"}}),
		AppendCluster(nil, 5, []Block{NewSimpleBlock(1, 0, true, make([]byte, 100_000))}))
	for _, cut := range []int{1, 3, 4, 5, 39, 40, 41, 50, len(full) - 100_001, len(full) - 50_000, len(full) - 1} {
		_, err := readEvents(bytes.NewReader(full[:cut]), Options{})
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("cut at %d of %d: %v, want unexpected EOF", cut, len(full), err)
		}
	}
	// Ending right after a known-size Cluster's header is truncation too.
	c := AppendCluster(nil, 5, nil)
	_, err := readEvents(bytes.NewReader(cat(AppendHeader(nil, h), c[:5])), Options{})
	wantErr(t, err, io.ErrUnexpectedEOF)
	// And an unknown-size Cluster without its Timecode.
	_, err = readEvents(bytes.NewReader(cat(AppendHeader(nil, h), unknownStart(IDCluster, 1))), Options{})
	wantErr(t, err, io.ErrUnexpectedEOF)
}

// errReader fails after its data, as a dropped connection does.
type errReader struct {
	p   []byte
	err error
}

func (e *errReader) Read(b []byte) (int, error) {
	if len(e.p) == 0 {
		return 0, e.err
	}
	n := copy(b, e.p)
	e.p = e.p[n:]
	return n, nil
}

func TestReaderSourceError(t *testing.T) {
	h := testHeader()
	boom := errors.New("connection reset")
	_, err := readEvents(&errReader{p: cat(AppendHeader(nil, h), AppendClusterStartUnknown(nil, 0)), err: boom}, Options{})
	if !errors.Is(err, boom) {
		t.Errorf("error = %v, want the source's", err)
	}
	// A reader that never makes progress must not spin forever, neither
	// while filling the buffer nor while reading a large block directly.
	_, err = readEvents(&errReader{err: nil}, Options{})
	wantErr(t, err, io.ErrNoProgress)
	big := AppendSimpleBlock(nil, 1, 0, true, make([]byte, 200_000))
	_, err = readEvents(&errReader{p: cat(AppendHeader(nil, h), AppendClusterStartUnknown(nil, 0), big[:100]), err: nil}, Options{})
	wantErr(t, err, io.ErrNoProgress)
	// A source that returns its last bytes together with io.EOF is fine.
	body := cat(AppendHeader(nil, h), AppendClusterStartUnknown(nil, 0), big)
	evs, err := readEvents(&eofWithData{p: body}, Options{})
	if err != nil || len(evs) != 3 {
		t.Errorf("data with EOF: %d events, %v", len(evs), err)
	}
}

// eofWithData returns all its bytes at once together with io.EOF, which
// io.Reader allows.
type eofWithData struct{ p []byte }

func (e *eofWithData) Read(b []byte) (int, error) {
	n := copy(b, e.p)
	e.p = e.p[n:]
	if len(e.p) == 0 {
		return n, io.EOF
	}
	return n, nil
}

// allocBytes returns the bytes allocated while f runs.
func allocBytes(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestLyingSizes: an element that claims gigabytes and then stops must fail
// with unexpected EOF without the reader allocating what it claimed.
func TestLyingSizes(t *testing.T) {
	h := testHeader()
	start := cat(AppendHeader(nil, h), AppendClusterStartUnknown(nil, 0))
	for _, tc := range []struct {
		name string
		el   []byte
		opt  Options
	}{
		{"4 GB SimpleBlock", appendVint([]byte{0xA3}, 4<<30, 8), Options{MaxBlockSize: 8 << 30}},
		{"max-size SimpleBlock", appendVint([]byte{0xA3}, maxSize, 8), Options{MaxBlockSize: 1 << 62}},
		{"huge Void", appendVint([]byte{0xEC}, maxSize, 8), Options{}},
		{"huge unknown element", appendVint([]byte{0x43, 0x21}, 1<<50, 8), Options{}},
		{"huge Tags under a huge limit", appendVint(AppendID(nil, IDTags), 1<<40, 8), Options{MaxElementSize: 1 << 62}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream := cat(start, tc.el, bytes.Repeat([]byte{0x81, 0, 0, 0x80}, 256))
			var err error
			n := allocBytes(func() { _, err = readEvents(bytes.NewReader(stream), tc.opt) })
			wantErr(t, err, io.ErrUnexpectedEOF)
			if n > 4<<20 {
				t.Errorf("allocated %d bytes for a %d-byte stream", n, len(stream))
			}
		})
	}
	// Over the limit: refused before reading anything.
	_, err := readEvents(bytes.NewReader(cat(start, appendVint([]byte{0xA3}, 4<<30, 8))), Options{})
	wantErr(t, err, ErrTooLarge)
}

// TestAllocsPerBlock: on the ingest hot path a block costs one allocation,
// its Element.
func TestAllocsPerBlock(t *testing.T) {
	h := testHeader()
	const blocks = 2000
	b := cat(AppendHeader(nil, h), AppendClusterStartUnknown(nil, 0))
	for i := 0; i < blocks; i++ {
		b = AppendSimpleBlock(b, 1, int16(i), i == 0, make([]byte, 1000+i))
	}
	src := bytes.NewReader(b)
	allocs := testing.AllocsPerRun(5, func() {
		src.Reset(b)
		r := NewReader(src, Options{})
		for {
			if _, err := r.Next(); err != nil {
				break
			}
		}
	})
	// Fixed cost: Reader, its buffer, the Header and its Tracks (~20).
	if per := (allocs - 30) / blocks; per > 1.0 {
		t.Errorf("%.0f allocations for %d blocks (%.2f per block)", allocs, blocks, per)
	}
}
