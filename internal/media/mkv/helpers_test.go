package mkv

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// fixturesDir finds /work/shared/fixtures: $KINEMA_FIXTURES when set, else
// ../../../../shared/fixtures from this package, else the nearest ancestor
// holding shared/fixtures (for checkouts laid out differently). A missing
// fixture is a test failure, not a skip: these bytes are the contract.
func fixturesDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("KINEMA_FIXTURES"); d != "" {
		return d
	}
	cands := []string{filepath.Join("..", "..", "..", "..", "shared", "fixtures")}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			cands = append(cands, filepath.Join(d, "shared", "fixtures"))
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	for _, c := range cands {
		if st, err := os.Stat(filepath.Join(c, "kvs-producer-c")); err == nil && st.IsDir() {
			abs, _ := filepath.Abs(c)
			return abs
		}
	}
	t.Fatalf("fixtures not found (tried %v); set KINEMA_FIXTURES", cands)
	return ""
}

func readFixtureBody(t testing.TB, name string) []byte {
	t.Helper()
	p := filepath.Join(fixturesDir(t), "kvs-producer-c", name, "putmedia-body.mkv")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("reading fixture: %v", err)
	}
	return b
}

// readEvents reads until the end of the stream; err is nil at io.EOF.
func readEvents(src io.Reader, opt Options) ([]Event, error) {
	r := NewReader(src, opt)
	var evs []Event
	for {
		ev, err := r.Next()
		if err == io.EOF {
			return evs, nil
		}
		if err != nil {
			return evs, err
		}
		evs = append(evs, ev)
	}
}

func mustReadEvents(t testing.TB, data []byte, opt Options) []Event {
	t.Helper()
	evs, err := readEvents(bytes.NewReader(data), opt)
	if err != nil {
		t.Fatalf("reading %d bytes: %v", len(data), err)
	}
	return evs
}

// oneByteReader hands out one byte per Read, to exercise every buffer
// boundary of the reader.
type oneByteReader struct{ p []byte }

func (o *oneByteReader) Read(b []byte) (int, error) {
	if len(o.p) == 0 {
		return 0, io.EOF
	}
	if len(b) == 0 {
		return 0, nil
	}
	b[0] = o.p[0]
	o.p = o.p[1:]
	return 1, nil
}

// cluster is one Cluster as the reader reported it.
type cluster struct {
	Offset   int64
	Timecode uint64
	Blocks   []Block
	TagsOff  []int64 // offsets of the Tags events that followed its blocks
}

// summary groups events the way ingest will.
type summary struct {
	Headers  []*Header
	Clusters []cluster
	Tags     [][]SimpleTag
	// TagsBefore[i] is the number of clusters started before Tags[i].
	TagsBefore []int
	Resyncs    []Event
}

func summarize(evs []Event) summary {
	var s summary
	for _, ev := range evs {
		switch ev.Type {
		case EventHeader:
			s.Headers = append(s.Headers, ev.Header)
		case EventClusterStart:
			s.Clusters = append(s.Clusters, cluster{Offset: ev.Offset, Timecode: ev.ClusterTimecode})
		case EventBlock:
			c := &s.Clusters[len(s.Clusters)-1]
			c.Blocks = append(c.Blocks, ev.Block)
		case EventTags:
			s.Tags = append(s.Tags, ev.Tags)
			s.TagsBefore = append(s.TagsBefore, len(s.Clusters))
		case EventResync:
			s.Resyncs = append(s.Resyncs, ev)
		}
	}
	return s
}

func (s summary) blockCount() int {
	n := 0
	for _, c := range s.Clusters {
		n += len(c.Blocks)
	}
	return n
}

// sameTrack compares tracks, floats by their bits so that NaN equals NaN.
func sameTrack(a, b Track) bool {
	fa, fb := a.SamplingFrequency, b.SamplingFrequency
	a.SamplingFrequency, b.SamplingFrequency = 0, 0
	return math.Float64bits(fa) == math.Float64bits(fb) && reflect.DeepEqual(a, b)
}

func sameHeader(a, b *Header) bool {
	if a == nil || b == nil {
		return a == b
	}
	if len(a.Tracks) != len(b.Tracks) {
		return false
	}
	for i := range a.Tracks {
		if !sameTrack(a.Tracks[i], b.Tracks[i]) {
			return false
		}
	}
	x, y := *a, *b
	x.Tracks, y.Tracks = nil, nil
	return reflect.DeepEqual(x, y)
}

func sameBlock(a, b Block) bool {
	return a.Track == b.Track && a.Timecode == b.Timecode && a.Flags == b.Flags &&
		a.Keyframe == b.Keyframe && a.Group == b.Group && a.Duration == b.Duration &&
		bytes.Equal(a.Element, b.Element)
}

func wantErr(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want one wrapping %v", err, target)
	}
}

// testHeader is a small two-track header used by synthetic streams.
func testHeader() Header {
	return Header{
		TimecodeScale: DefaultTimecodeScale,
		SegmentUID:    []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		Title:         "test",
		MuxingApp:     "kinema",
		WritingApp:    "kinema test",
		Tracks: []Track{
			{Number: 1, UID: 1, Type: TrackTypeVideo, Name: "video", CodecID: "V_MPEG4/ISO/AVC",
				CodecPrivate: []byte{1, 0x64, 0, 0x1e, 0xff, 0xe1, 0, 0}, PixelWidth: 640, PixelHeight: 480,
				DefaultDuration: 40_000_000},
			{Number: 2, UID: 2, Type: TrackTypeAudio, Name: "audio", CodecID: "A_AAC",
				CodecPrivate: []byte{0x11, 0x90}, SamplingFrequency: 48000, Channels: 2, BitDepth: 16},
		},
	}
}
