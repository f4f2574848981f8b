package producer

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/kinema/kinema/internal/media/mkv"
)

func mkvHeader(video, audio bool) mkv.Header {
	h := mkv.Header{TimecodeScale: mkv.DefaultTimecodeScale, SegmentUID: bytes.Repeat([]byte{7}, 16)}
	if video {
		h.Tracks = append(h.Tracks, mkv.Track{Number: VideoTrack, UID: 1, Type: mkv.TrackTypeVideo, Name: "kvs_video_track",
			CodecID: CodecH264, CodecPrivate: []byte{1, 0x64, 0, 0x1e, 0xff}, PixelWidth: 320, PixelHeight: 240})
	}
	if audio {
		h.Tracks = append(h.Tracks, mkv.Track{Number: AudioTrack, UID: 2, Type: mkv.TrackTypeAudio, Name: "kvs_audio_track",
			CodecID: CodecAAC, CodecPrivate: []byte{0x11, 0x90}, SamplingFrequency: 48000, Channels: 2})
	}
	return h
}

// parsedFragment is one Cluster read back from a body, with the Tags that
// follow its blocks.
type parsedFragment struct {
	Timecode uint64
	Blocks   []mkv.Block
	Tags     [][]mkv.SimpleTag // one entry per Tags element
}

// parseBody reads a PutMedia body with the mkv reader.
func parseBody(t testing.TB, body []byte) (*mkv.Header, []parsedFragment) {
	t.Helper()
	rd := mkv.NewReader(bytes.NewReader(body), mkv.Options{})
	var hdr *mkv.Header
	var frags []parsedFragment
	for {
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return hdr, frags
		}
		if err != nil {
			t.Fatalf("parsing the body: %v", err)
		}
		switch ev.Type {
		case mkv.EventHeader:
			hdr = ev.Header
		case mkv.EventClusterStart:
			frags = append(frags, parsedFragment{Timecode: ev.ClusterTimecode})
		case mkv.EventBlock:
			f := &frags[len(frags)-1]
			if len(f.Tags) > 0 {
				t.Fatalf("fragment at %d: a block after its tags", f.Timecode)
			}
			f.Blocks = append(f.Blocks, ev.Block)
		case mkv.EventTags:
			if len(frags) == 0 {
				t.Fatal("tags before the first cluster")
			}
			f := &frags[len(frags)-1]
			f.Tags = append(f.Tags, ev.Tags)
		}
	}
}

// checkBody asserts that body carries exactly the plans under cfg.
func checkBody(t testing.TB, body []byte, cfg Config, plans []FragmentPlan, header mkv.Header) {
	t.Helper()
	cfg, _ = cfg.withDefaults()
	hdr, frags := parseBody(t, body)
	if hdr == nil || len(hdr.Tracks) != len(header.Tracks) || hdr.TimecodeScale != mkv.DefaultTimecodeScale {
		t.Fatalf("header %+v", hdr)
	}
	for i, tr := range header.Tracks {
		g := hdr.Tracks[i]
		if g.Number != tr.Number || g.CodecID != tr.CodecID || !bytes.Equal(g.CodecPrivate, tr.CodecPrivate) || g.Name != tr.Name ||
			g.PixelWidth != tr.PixelWidth || g.SamplingFrequency != tr.SamplingFrequency || g.Type != tr.Type {
			t.Errorf("track %d: %+v, want %+v", i, g, tr)
		}
	}
	if len(frags) != len(plans)*cfg.Loop {
		t.Fatalf("%d clusters, want %d", len(frags), len(plans)*cfg.Loop)
	}
	last := plans[len(plans)-1]
	period := last.StartMs + last.DurationMs - plans[0].StartMs
	for i, f := range frags {
		loop, p := i/len(plans), plans[i%len(plans)]
		want := uint64(int64(loop)*period + p.StartMs - plans[0].StartMs)
		if cfg.TimecodeType == TimecodeAbsolute {
			want += uint64(cfg.StartTime.UnixMilli())
		}
		if f.Timecode != want {
			t.Errorf("cluster %d: timecode %d, want %d", i, f.Timecode, want)
		}
		if len(f.Blocks) != len(p.Frames) {
			t.Fatalf("cluster %d: %d blocks, want %d", i, len(f.Blocks), len(p.Frames))
		}
		for j, b := range f.Blocks {
			fr := p.Frames[j]
			data, err := b.Frames()
			if err != nil || len(data) != 1 || !bytes.Equal(data[0], fr.Data) {
				t.Fatalf("cluster %d block %d: frame bytes differ (%v)", i, j, err)
			}
			if b.Track != fr.Track || int64(b.Timecode) != fr.PTSms-p.StartMs || b.Keyframe != fr.Keyframe || b.Group {
				t.Errorf("cluster %d block %d: track %d tc %d key %v; want %d %d %v", i, j, b.Track, b.Timecode, b.Keyframe,
					fr.Track, fr.PTSms-p.StartMs, fr.Keyframe)
			}
		}
		var wantTags []Tag
		if cfg.FragmentTags != nil {
			wantTags = cfg.FragmentTags(i)
		}
		if !cfg.NoEndOfFragmentTags {
			wantTags = append(wantTags, Tag{Name: TagEndOfFragment})
		}
		if len(f.Tags) != len(wantTags) {
			t.Fatalf("cluster %d: tags %v, want %v", i, f.Tags, wantTags)
		}
		for j, tags := range f.Tags {
			if len(tags) != 1 || tags[0].Name != wantTags[j].Name || tags[0].Value != wantTags[j].Value {
				t.Errorf("cluster %d Tags %d: %+v, want one SimpleTag %+v", i, j, tags, wantTags[j])
			}
		}
	}
}

func TestMarshalBodyRoundTrip(t *testing.T) {
	for _, name := range []string{"av.mp4", "hevc.mkv", "audio.m4a"} {
		m := openMedia(t, name)
		plans := m.Fragments(1000)
		for _, cfg := range []Config{
			{StartTime: time.UnixMilli(1795237808072)},
			{TimecodeType: TimecodeRelative, Loop: 2, NoEndOfFragmentTags: true},
			{Loop: 3, StartTime: time.UnixMilli(1700000000000), FragmentTags: func(i int) []Tag {
				if i%2 == 1 {
					return nil
				}
				return []Tag{{TagNotification, ""}, {TagImageGeneration, ""}, {"CAMERA", fmt.Sprint("cam-", i)}}
			}},
		} {
			body, err := MarshalBody(cfg, plans, m.Header)
			if err != nil {
				t.Fatal(err)
			}
			checkBody(t, body, cfg, plans, m.Header)
		}
	}
}

// TestBodyEncoding pins the byte layout to what the producer SDK sends
// (kvs-producer-wire.md §5): the encodings, not only the structure.
func TestBodyEncoding(t *testing.T) {
	h := mkvHeader(true, false)
	plans := []FragmentPlan{{StartMs: 0, DurationMs: 40, Frames: []Frame{{Track: 1, PTSms: 0, Keyframe: true, Data: []byte{0, 0, 0, 1, 0x65}}}}}
	body, err := MarshalBody(Config{StartTime: time.UnixMilli(1795237808072), FragmentTags: func(int) []Tag {
		return []Tag{{"K", "V"}}
	}}, plans, h)
	if err != nil {
		t.Fatal(err)
	}
	x := hex.EncodeToString(body)
	for _, want := range []string{
		"1a45dfa3a3" + "428681014 2f78101 42f28104 42f38108 4282886d6174726f736b61 42878102 42858102",
		"18538067ff1549a966",                      // unknown-size Segment, then Info ...
		"2ad7b18800000000000f4240",                // 8-byte TimecodeScale
		"1654ae6b10",                              // Tracks with a 4-byte size
		"ae10",                                    // TrackEntry with a 4-byte size
		"73c5880000000000000001",                  // 8-byte TrackUID
		"e010000007 b0820140 ba81f0",              // Video with a 4-byte size: 320x240
		"1f43b675ff e788000001a1fc8307c8 a78100",  // Cluster, 8-byte Timecode, Position 0
		"a3010000000000000981 0000 80 0000000165", // SimpleBlock, 8-byte size, track 1, tc 0, key
	} {
		want = strings.ReplaceAll(want, " ", "")
		if !strings.Contains(x, want) {
			t.Errorf("body lacks %s\n%s", want, x)
		}
	}
	// Tags > Tag > SimpleTag { TagName, TagString }, every size 8 bytes.
	tag := "45a3" + "0100000000000001" + "4b" + "4487" + "0100000000000001" + "56"
	simple := "67c8" + fmt.Sprintf("01%014x", len(tag)/2) + tag
	tagEl := "7373" + fmt.Sprintf("01%014x", len(simple)/2) + simple
	tags := "1254c367" + fmt.Sprintf("01%014x", len(tagEl)/2) + tagEl
	if !strings.Contains(x, tags) {
		t.Errorf("body lacks the tag %s", tags)
	}
	eofrName := hex.EncodeToString([]byte(TagEndOfFragment))
	if !strings.HasSuffix(x, eofrName+"4487"+"0100000000000000") {
		t.Errorf("body does not end with an empty AWS_KINESISVIDEO_END_OF_FRAGMENT tag")
	}
}

func TestStartTimestampFormat(t *testing.T) {
	for ms, want := range map[int64]string{
		1795237808072: "1795237808.72", // the capture in the wire notes
		1700000000123: "1700000000.123",
		1700000000000: "1700000000.0",
		1700000000005: "1700000000.5",
	} {
		if got := FormatStartTimestamp(time.UnixMilli(ms)); got != want {
			t.Errorf("%d ms: %q, want %q", ms, got, want)
		}
	}
}

func TestScheduleRejects(t *testing.T) {
	h := mkvHeader(true, false)
	key := Frame{Track: 1, Keyframe: true, Data: []byte{1}}
	long := key
	long.PTSms = 40000
	cases := map[string][]FragmentPlan{
		"no fragments":     nil,
		"empty fragment":   {{StartMs: 0}},
		"undeclared track": {{Frames: []Frame{{Track: 2, Data: []byte{1}}}}},
		"too long":         {{Frames: []Frame{key, long}}},
		"not increasing":   {{StartMs: 5, Frames: []Frame{key}}, {StartMs: 5, Frames: []Frame{key}}},
	}
	for name, plans := range cases {
		if _, err := MarshalBody(Config{}, plans, h); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
