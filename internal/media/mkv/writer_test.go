package mkv

import (
	"bytes"
	"encoding/hex"
	"math"
	"strings"
	"testing"
)

func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func TestAppendPrimitives(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  []byte
		want string
	}{
		{"size 0", AppendSize(nil, 0), "80"},
		{"size 126", AppendSize(nil, 126), "fe"},
		{"size 127 (0xFF would be unknown)", AppendSize(nil, 127), "407f"},
		{"size 16382", AppendSize(nil, 16382), "7ffe"},
		{"size 16383", AppendSize(nil, 16383), "203fff"},
		{"size max", AppendSize(nil, maxSize), "01fffffffffffffe"},
		{"id 1 byte", AppendID(nil, IDSimpleBlock), "a3"},
		{"id 2 bytes", AppendID(nil, IDTagName), "45a3"},
		{"id 3 bytes", AppendID(nil, IDTimecodeScale), "2ad7b1"},
		{"id 4 bytes", AppendID(nil, IDCluster), "1f43b675"},
		{"uint 0", AppendUint(nil, IDTimecode, 0), "e78100"},
		{"uint 255", AppendUint(nil, IDTimecode, 255), "e781ff"},
		{"uint 256", AppendUint(nil, IDTimecode, 256), "e7820100"},
		{"uint max", AppendUint(nil, IDTimecode, math.MaxUint64), "e788ffffffffffffffff"},
		{"float", AppendFloat(nil, IDSamplingFrequency, 48000), "b588" + "40e7700000000000"},
		{"string", AppendString(nil, IDCodecID, "A_AAC"), "8685" + hex.EncodeToString([]byte("A_AAC"))},
		{"element", AppendElement(nil, IDVoid, []byte{1, 2}), "ec820102"},
		{"segment start", AppendSegmentStart(nil), "18538067ff"},
		{"simple block", AppendSimpleBlock(nil, 2, -2, true, []byte{9}), "a385" + "82fffe8009"},
		{"simple block, 2-byte track", AppendSimpleBlock(nil, 200, 1, false, nil), "a385" + "40c8000100"},
		{"cluster", AppendCluster(nil, 5, []Block{NewSimpleBlock(1, 0, false, []byte{7})}), "1f43b675" + "8a" + "e78105" + "a385" + "8100000007"},
		{"cluster with group", AppendCluster(nil, 5, []Block{{Group: true, Element: []byte{0xA1, 0x80}}}), "1f43b675" + "87" + "e78105" + "a082a180"},
		{"ebml header", AppendEBMLHeader(nil), "1a45dfa3a3" + "428681014" + "2f7810142f2810442f381084282886d6174726f736b61428781044285810" + "2"},
		{"tags", AppendTags(nil, []SimpleTag{{Name: "a", Value: "b"}}), "1254c3678e" + "73738b" + "67c888" + "45a38161" + "44878162"},
	} {
		if got := hex.EncodeToString(tc.got); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("AppendSize(2^56-1) did not panic")
		}
	}()
	AppendSize(nil, maxSize+1)
}

// TestWriterMatchesProducer compares writer output with the bytes the KVS
// producer SDK wrote (kvs-producer-wire.md section 5).
func TestWriterMatchesProducer(t *testing.T) {
	body := readFixtureBody(t, videoOnly)
	if got := AppendSegmentStart(nil); !bytes.Equal(got, body[0x28:0x2d]) {
		t.Errorf("Segment start % x, producer % x", got, body[0x28:0x2d])
	}
	if got := AppendClusterStartUnknown(nil, 1795237808072); !bytes.Equal(got, body[0x118:0x127]) {
		t.Errorf("Cluster start % x, producer % x", got, body[0x118:0x127])
	}
	// A minimal-size Info is what the producer wrote, minus nothing: its
	// Info already uses minimal sizes except TimecodeScale's 8-byte value.
	h := summarize(mustReadEvents(t, body, Options{})).Headers[0]
	info := AppendInfo(nil, *h)
	got := summarize(mustReadEvents(t, cat(ebmlHeader("matroska"), AppendSegmentStart(nil), info, AppendTracks(nil, h.Tracks)), Options{}))
	if !sameHeader(got.Headers[0], h) {
		t.Errorf("re-written header reads back as %+v", got.Headers[0])
	}
}

func TestHeaderCodec(t *testing.T) {
	hs := []Header{testHeader(), {TimecodeScale: 1, Tracks: []Track{{Number: 1}}}, {TimecodeScale: 0, Tracks: nil}}
	for _, name := range []string{videoOnly, avEvents} {
		hs = append(hs, *summarize(mustReadEvents(t, readFixtureBody(t, name), Options{})).Headers[0])
	}
	for i, h := range hs {
		enc := EncodeHeaderTracks(h)
		dec, err := DecodeHeaderTracks(enc)
		if err != nil {
			t.Fatalf("header %d: %v", i, err)
		}
		want := h
		if want.TimecodeScale == 0 {
			want.TimecodeScale = DefaultTimecodeScale
		}
		if !sameHeader(dec, &want) {
			t.Errorf("header %d: decoded %+v, want %+v", i, dec, want)
		}
		if again := EncodeHeaderTracks(*dec); !bytes.Equal(again, enc) {
			t.Errorf("header %d: re-encoding differs", i)
		}
	}
	enc := EncodeHeaderTracks(testHeader())
	for _, bad := range [][]byte{nil, enc[:len(enc)-1], AppendInfo(nil, testHeader()), cat(enc, AppendInfo(nil, testHeader())), cat(enc, el(IDVoid))} {
		if _, err := DecodeHeaderTracks(bad); err == nil {
			t.Errorf("DecodeHeaderTracks(% x...) succeeded", bad[:min(len(bad), 8)])
		}
	}
	// Tracks alone (no Info) is accepted, with the default scale.
	if h, err := DecodeHeaderTracks(AppendTracks(nil, testHeader().Tracks)); err != nil || h.TimecodeScale != DefaultTimecodeScale {
		t.Errorf("Tracks only: %+v, %v", h, err)
	}
}

func TestVints(t *testing.T) {
	for n := 1; n <= 8; n++ {
		p := appendVint(nil, 1<<(7*n)-1, n)
		if v, unknown := decodeSize(p); !unknown || v != 1<<(7*n)-1 {
			t.Errorf("%d-byte sentinel % x: %d %v", n, p, v, unknown)
		}
		p = appendVint(nil, 5, n) // non-minimal encoding of 5
		if v, unknown := decodeSize(p); unknown || v != 5 || vintLength(p[0]) != n {
			t.Errorf("%d-byte 5 % x: %d %v", n, p, v, unknown)
		}
	}
	if vintLength(0) != 0 || idLength(0x08) != 0 || idLength(0x10) != 4 {
		t.Error("length of invalid first bytes")
	}
	for _, bad := range [][]byte{{0xFF}, {0x80}, {0x7F, 0xFF}, {0x40, 0x00}, {0x1F, 0xFF, 0xFF, 0xFF}} {
		if _, ok := decodeID(bad); ok {
			t.Errorf("reserved ID % x accepted", bad)
		}
	}
	if _, ok := decodeUint(make([]byte, 9)); ok {
		t.Error("9-byte uint accepted")
	}
	if _, ok := decodeFloat(make([]byte, 5)); ok {
		t.Error("5-byte float accepted")
	}
	if decodeString([]byte("ab\x00c")) != "ab" {
		t.Error("zero padding not trimmed")
	}
}
