package mkv

import (
	"bytes"
	"testing"

	"github.com/at-wat/ebml-go"
)

// at-wat/ebml-go is used here only as an independent oracle: it must accept
// what the writer produces (in its strict mode, which fails on unknown IDs
// and bad sizes), and see in the fixtures what the reader sees.

type oDoc struct {
	Header  oEBML    `ebml:"EBML"`
	Segment oSegment `ebml:"Segment"`
}

type oEBML struct {
	EBMLVersion        uint64 `ebml:"EBMLVersion"`
	EBMLReadVersion    uint64 `ebml:"EBMLReadVersion"`
	EBMLMaxIDLength    uint64 `ebml:"EBMLMaxIDLength"`
	EBMLMaxSizeLength  uint64 `ebml:"EBMLMaxSizeLength"`
	DocType            string `ebml:"EBMLDocType"`
	DocTypeVersion     uint64 `ebml:"EBMLDocTypeVersion"`
	DocTypeReadVersion uint64 `ebml:"EBMLDocTypeReadVersion"`
}

type oSegment struct {
	Info    oInfo      `ebml:"Info"`
	Tracks  oTracks    `ebml:"Tracks"`
	Cluster []oCluster `ebml:"Cluster"`
	Tags    []oTags    `ebml:"Tags"`
}

type oInfo struct {
	TimecodeScale uint64 `ebml:"TimecodeScale"`
	SegmentUID    []byte `ebml:"SegmentUID"`
	Title         string `ebml:"Title"`
	MuxingApp     string `ebml:"MuxingApp"`
	WritingApp    string `ebml:"WritingApp"`
}

type oTracks struct {
	TrackEntry []oTrack `ebml:"TrackEntry"`
}

type oTrack struct {
	TrackNumber     uint64 `ebml:"TrackNumber"`
	TrackUID        uint64 `ebml:"TrackUID"`
	TrackType       uint64 `ebml:"TrackType"`
	Name            string `ebml:"Name"`
	CodecID         string `ebml:"CodecID"`
	CodecPrivate    []byte `ebml:"CodecPrivate"`
	DefaultDuration uint64 `ebml:"DefaultDuration"`
	Video           struct {
		PixelWidth  uint64 `ebml:"PixelWidth"`
		PixelHeight uint64 `ebml:"PixelHeight"`
	} `ebml:"Video"`
	Audio struct {
		SamplingFrequency float64 `ebml:"SamplingFrequency"`
		Channels          uint64  `ebml:"Channels"`
		BitDepth          uint64  `ebml:"BitDepth"`
	} `ebml:"Audio"`
}

type oCluster struct {
	Timecode    uint64        `ebml:"Timecode"`
	Position    uint64        `ebml:"Position"`
	SimpleBlock []ebml.Block  `ebml:"SimpleBlock"`
	BlockGroup  []oBlockGroup `ebml:"BlockGroup"`
}

type oBlockGroup struct {
	Block          ebml.Block `ebml:"Block"`
	BlockDuration  uint64     `ebml:"BlockDuration"`
	ReferenceBlock []int64    `ebml:"ReferenceBlock"`
}

type oTags struct {
	Tag []struct {
		SimpleTag []struct {
			TagName   string `ebml:"TagName"`
			TagString string `ebml:"TagString"`
			TagBinary []byte `ebml:"TagBinary"`
		} `ebml:"SimpleTag"`
	} `ebml:"Tag"`
}

func oracleParse(t *testing.T, b []byte) oDoc {
	t.Helper()
	var d oDoc
	if err := ebml.Unmarshal(bytes.NewReader(b), &d); err != nil {
		t.Fatalf("ebml-go rejects the stream: %v", err)
	}
	return d
}

func TestWriterAgainstEBMLGo(t *testing.T) {
	h := testHeader()
	var b []byte
	b = AppendHeader(b, h)
	b = AppendTags(b, []SimpleTag{{Name: "N1", Value: "V1"}, {Name: "B", Binary: []byte{1, 2}}})
	b = AppendClusterStartUnknown(b, 1_700_000_000_000)
	b = AppendSimpleBlock(b, 1, 0, true, []byte("key frame"))
	b = AppendSimpleBlock(b, 2, 1, false, []byte("audio"))
	b = AppendTags(b, []SimpleTag{{Name: "AWS_KINESISVIDEO_END_OF_FRAGMENT"}})
	group := el(IDBlockGroup, el(IDBlock, simpleBlockPayload(1, 7, 0, []byte("p"))), u(IDBlockDuration, 40), el(IDReferenceBlock, []byte{0xD8}))
	b = AppendCluster(b, 1_700_000_001_800, []Block{NewSimpleBlock(1, 0, true, bytes.Repeat([]byte{3}, 300)), {Group: true, Element: group[2:]}})

	d := oracleParse(t, b)
	e := d.Header
	if e.EBMLVersion != 1 || e.EBMLReadVersion != 1 || e.EBMLMaxIDLength != 4 || e.EBMLMaxSizeLength != 8 ||
		e.DocType != "matroska" || e.DocTypeVersion != 4 || e.DocTypeReadVersion != 2 {
		t.Errorf("EBML header = %+v", e)
	}
	i := d.Segment.Info
	if i.TimecodeScale != h.TimecodeScale || !bytes.Equal(i.SegmentUID, h.SegmentUID) || i.Title != h.Title ||
		i.MuxingApp != h.MuxingApp || i.WritingApp != h.WritingApp {
		t.Errorf("Info = %+v", i)
	}
	if len(d.Segment.Tracks.TrackEntry) != 2 {
		t.Fatalf("tracks = %+v", d.Segment.Tracks)
	}
	for k, o := range d.Segment.Tracks.TrackEntry {
		w := h.Tracks[k]
		if o.TrackNumber != w.Number || o.TrackUID != w.UID || o.TrackType != w.Type || o.Name != w.Name ||
			o.CodecID != w.CodecID || !bytes.Equal(o.CodecPrivate, w.CodecPrivate) || o.DefaultDuration != w.DefaultDuration ||
			o.Video.PixelWidth != w.PixelWidth || o.Video.PixelHeight != w.PixelHeight ||
			o.Audio.SamplingFrequency != w.SamplingFrequency || o.Audio.Channels != w.Channels || o.Audio.BitDepth != w.BitDepth {
			t.Errorf("track %d = %+v, want %+v", k, o, w)
		}
	}
	cs := d.Segment.Cluster
	if len(cs) != 2 || cs[0].Timecode != 1_700_000_000_000 || cs[1].Timecode != 1_700_000_001_800 {
		t.Fatalf("clusters = %+v", cs)
	}
	if sb := cs[0].SimpleBlock; len(sb) != 2 || sb[0].TrackNumber != 1 || !sb[0].Keyframe || string(sb[0].Data[0]) != "key frame" ||
		sb[1].TrackNumber != 2 || sb[1].Timecode != 1 || sb[1].Keyframe || string(sb[1].Data[0]) != "audio" {
		t.Errorf("cluster 0 blocks = %+v", sb)
	}
	if len(cs[1].SimpleBlock) != 1 || len(cs[1].BlockGroup) != 1 {
		t.Fatalf("cluster 1 = %+v", cs[1])
	}
	if g := cs[1].BlockGroup[0]; g.BlockDuration != 40 || len(g.ReferenceBlock) != 1 || g.ReferenceBlock[0] != -40 ||
		g.Block.Timecode != 7 || string(g.Block.Data[0]) != "p" {
		t.Errorf("BlockGroup = %+v", g)
	}
	tags := d.Segment.Tags
	if len(tags) != 2 || len(tags[0].Tag) != 1 || len(tags[0].Tag[0].SimpleTag) != 2 {
		t.Fatalf("tags = %+v", tags)
	}
	st := tags[0].Tag[0].SimpleTag
	if st[0].TagName != "N1" || st[0].TagString != "V1" || st[1].TagName != "B" || !bytes.Equal(st[1].TagBinary, []byte{1, 2}) {
		t.Errorf("simple tags = %+v", st)
	}
	if tags[1].Tag[0].SimpleTag[0].TagName != "AWS_KINESISVIDEO_END_OF_FRAGMENT" {
		t.Errorf("EoFR tag = %+v", tags[1])
	}
}

// TestReaderAgainstEBMLGo reads both fixtures with ebml-go and compares
// clusters, blocks (header fields and payload) and tags with the reader.
func TestReaderAgainstEBMLGo(t *testing.T) {
	for _, name := range []string{videoOnly, avEvents} {
		t.Run(name, func(t *testing.T) {
			body := readFixtureBody(t, name)
			d := oracleParse(t, body)
			s := summarize(mustReadEvents(t, body, Options{}))
			if len(d.Segment.Cluster) != len(s.Clusters) {
				t.Fatalf("ebml-go: %d clusters, reader: %d", len(d.Segment.Cluster), len(s.Clusters))
			}
			for i, oc := range d.Segment.Cluster {
				c := s.Clusters[i]
				if oc.Timecode != c.Timecode || len(oc.SimpleBlock) != len(c.Blocks) {
					t.Fatalf("cluster %d: ebml-go tc %d, %d blocks; reader tc %d, %d blocks", i, oc.Timecode, len(oc.SimpleBlock), c.Timecode, len(c.Blocks))
				}
				for j, ob := range oc.SimpleBlock {
					b := c.Blocks[j]
					fr, err := b.Frames()
					if err != nil || ob.TrackNumber != b.Track || ob.Timecode != b.Timecode || ob.Keyframe != b.Keyframe ||
						len(fr) != len(ob.Data) || !bytes.Equal(fr[0], ob.Data[0]) {
						t.Fatalf("cluster %d block %d differs (%v)", i, j, err)
					}
				}
			}
			var n int
			for _, ot := range d.Segment.Tags {
				for _, tag := range ot.Tag {
					n += len(tag.SimpleTag)
				}
			}
			var m int
			for _, tags := range s.Tags {
				m += len(tags)
			}
			if n != m || len(d.Segment.Tags) != len(s.Tags) {
				t.Errorf("ebml-go: %d Tags, %d SimpleTags; reader: %d, %d", len(d.Segment.Tags), n, len(s.Tags), m)
			}
		})
	}
}
