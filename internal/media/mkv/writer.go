package mkv

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// The writer appends to a caller's slice, so that a GetMedia handler or the
// archive can build a whole fragment in one reused buffer. Sizes are minimal
// vints except where noted; master elements are built in place and shifted
// once their size is known, so no temporary buffers are needed.

// AppendID appends an element ID, written with its marker bit as IDs are
// usually quoted (0x1A45DFA3 is four bytes, 0xA3 one).
func AppendID(b []byte, id uint32) []byte {
	switch idLen(id) {
	case 1:
		return append(b, byte(id))
	case 2:
		return append(b, byte(id>>8), byte(id))
	case 3:
		return append(b, byte(id>>16), byte(id>>8), byte(id))
	}
	return append(b, byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
}

// AppendSize appends n as a minimal vint. It panics when n does not fit in
// 8 bytes (n > 2^56-2), which no real element reaches.
func AppendSize(b []byte, n uint64) []byte {
	l := sizeLen(n)
	if l == 0 {
		panic(fmt.Sprintf("mkv: size %d does not fit in an 8-byte vint", n))
	}
	return appendVint(b, n, l)
}

// appendVint appends n as a vint of exactly l bytes (n must fit).
func appendVint(b []byte, n uint64, l int) []byte {
	n |= 1 << (7 * l) // the length marker
	for i := l - 1; i >= 0; i-- {
		b = append(b, byte(n>>(8*i)))
	}
	return b
}

// AppendElement appends an element with the given payload.
func AppendElement(b []byte, id uint32, payload []byte) []byte {
	b = AppendID(b, id)
	b = AppendSize(b, uint64(len(payload)))
	return append(b, payload...)
}

// AppendUint appends an unsigned integer element in as few bytes as it
// needs, and at least one (a zero-length integer is legal EBML but some
// readers mishandle it).
func AppendUint(b []byte, id uint32, v uint64) []byte {
	n := uintLen(v)
	b = AppendID(b, id)
	b = AppendSize(b, uint64(n))
	for i := n - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

// AppendString appends a string (or UTF-8) element.
func AppendString(b []byte, id uint32, s string) []byte {
	b = AppendID(b, id)
	b = AppendSize(b, uint64(len(s)))
	return append(b, s...)
}

// AppendFloat appends a float element as an 8-byte IEEE 754 double.
func AppendFloat(b []byte, id uint32, f float64) []byte {
	b = AppendID(b, id)
	b = AppendSize(b, 8)
	return binary.BigEndian.AppendUint64(b, math.Float64bits(f))
}

// wrap turns b[start:], a payload just appended, into an element with the
// given ID by inserting the header in front of it.
func wrap(b []byte, start int, id uint32) []byte {
	n := len(b) - start
	var hdr [12]byte
	h := AppendSize(AppendID(hdr[:0], id), uint64(n))
	b = append(b, h...) // grow by len(h); the bytes are overwritten below
	copy(b[start+len(h):], b[start:start+n])
	copy(b[start:], h)
	return b
}

// AppendEBMLHeader appends the EBML header of a Matroska v4 document.
func AppendEBMLHeader(b []byte) []byte {
	start := len(b)
	b = AppendUint(b, IDEBMLVersion, 1)
	b = AppendUint(b, IDEBMLReadVersion, 1)
	b = AppendUint(b, IDEBMLMaxIDLength, 4)
	b = AppendUint(b, IDEBMLMaxSizeLength, 8)
	b = AppendString(b, IDDocType, "matroska")
	b = AppendUint(b, IDDocTypeVersion, 4)
	b = AppendUint(b, IDDocTypeReadVersion, 2)
	return wrap(b, start, IDEBML)
}

// AppendSegmentStart appends a Segment ID with the 1-byte unknown size: the
// Segment lasts until the end of the stream or the next EBML header.
func AppendSegmentStart(b []byte) []byte {
	return append(AppendID(b, IDSegment), 0xFF)
}

// AppendInfo appends an Info element. TimecodeScale 0 is written as
// DefaultTimecodeScale; empty strings and SegmentUID are left out.
func AppendInfo(b []byte, h Header) []byte {
	start := len(b)
	if len(h.SegmentUID) > 0 {
		b = AppendElement(b, IDSegmentUID, h.SegmentUID)
	}
	scale := h.TimecodeScale
	if scale == 0 {
		scale = DefaultTimecodeScale
	}
	b = AppendUint(b, IDTimecodeScale, scale)
	if h.Title != "" {
		b = AppendString(b, IDTitle, h.Title)
	}
	if h.MuxingApp != "" {
		b = AppendString(b, IDMuxingApp, h.MuxingApp)
	}
	if h.WritingApp != "" {
		b = AppendString(b, IDWritingApp, h.WritingApp)
	}
	return wrap(b, start, IDInfo)
}

// AppendTracks appends a Tracks element with one TrackEntry per track.
// TrackNumber and TrackType are always written; other fields only when
// set, so that reading the result back gives the same Track values.
func AppendTracks(b []byte, tracks []Track) []byte {
	start := len(b)
	for i := range tracks {
		b = appendTrackEntry(b, &tracks[i])
	}
	return wrap(b, start, IDTracks)
}

func appendTrackEntry(b []byte, t *Track) []byte {
	start := len(b)
	b = AppendUint(b, IDTrackNumber, t.Number)
	if t.UID != 0 {
		b = AppendUint(b, IDTrackUID, t.UID)
	}
	b = AppendUint(b, IDTrackType, t.Type)
	if t.Name != "" {
		b = AppendString(b, IDTrackName, t.Name)
	}
	if t.CodecID != "" {
		b = AppendString(b, IDCodecID, t.CodecID)
	}
	if len(t.CodecPrivate) > 0 {
		b = AppendElement(b, IDCodecPrivate, t.CodecPrivate)
	}
	if t.DefaultDuration != 0 {
		b = AppendUint(b, IDDefaultDuration, t.DefaultDuration)
	}
	if t.PixelWidth != 0 || t.PixelHeight != 0 {
		v := len(b)
		if t.PixelWidth != 0 {
			b = AppendUint(b, IDPixelWidth, t.PixelWidth)
		}
		if t.PixelHeight != 0 {
			b = AppendUint(b, IDPixelHeight, t.PixelHeight)
		}
		b = wrap(b, v, IDVideo)
	}
	if t.SamplingFrequency != 0 || t.Channels != 0 || t.BitDepth != 0 {
		a := len(b)
		if t.SamplingFrequency != 0 {
			b = AppendFloat(b, IDSamplingFrequency, t.SamplingFrequency)
		}
		if t.Channels != 0 {
			b = AppendUint(b, IDChannels, t.Channels)
		}
		if t.BitDepth != 0 {
			b = AppendUint(b, IDBitDepth, t.BitDepth)
		}
		b = wrap(b, a, IDAudio)
	}
	return wrap(b, start, IDTrackEntry)
}

// AppendHeader appends everything that precedes the first Cluster: EBML
// header, Segment start (unknown size), Info and Tracks.
func AppendHeader(b []byte, h Header) []byte {
	b = AppendEBMLHeader(b)
	b = AppendSegmentStart(b)
	b = AppendInfo(b, h)
	return AppendTracks(b, h.Tracks)
}

// AppendTags appends one Tags element holding one Tag that holds the
// SimpleTags: TagName, then TagBinary when Binary is non-nil, else
// TagString (Matroska forbids both in one SimpleTag). Like the KVS
// producer, it writes no Targets, which means "the whole segment".
func AppendTags(b []byte, tags []SimpleTag) []byte {
	start := len(b)
	for _, t := range tags {
		s := len(b)
		b = AppendString(b, IDTagName, t.Name)
		if t.Binary != nil {
			b = AppendElement(b, IDTagBinary, t.Binary)
		} else {
			b = AppendString(b, IDTagString, t.Value)
		}
		b = wrap(b, s, IDSimpleTag)
	}
	b = wrap(b, start, IDTag)
	return wrap(b, start, IDTags)
}

// blockID is the element ID that carries blk.Element.
func blockID(blk *Block) uint32 {
	if blk.Group {
		return IDBlockGroup
	}
	return IDSimpleBlock
}

// AppendCluster appends a Cluster of known size: its Timecode, then each
// block re-wrapped unchanged from Block.Element as a SimpleBlock or, when
// Block.Group is set, a BlockGroup. The size is computed first, so large
// payloads are copied exactly once.
func AppendCluster(b []byte, timecode uint64, blocks []Block) []byte {
	size := uint64(1 + 1 + uintLen(timecode)) // Timecode: ID, size, value
	for i := range blocks {
		n := uint64(len(blocks[i].Element))
		size += uint64(idLen(blockID(&blocks[i]))+sizeLen(n)) + n
	}
	b = slices.Grow(b, 4+sizeLen(size)+int(size))
	b = AppendID(b, IDCluster)
	b = AppendSize(b, size)
	b = AppendUint(b, IDTimecode, timecode)
	for i := range blocks {
		b = AppendElement(b, blockID(&blocks[i]), blocks[i].Element)
	}
	return b
}

// AppendClusterStartUnknown appends a Cluster of unknown size and its
// Timecode with an 8-byte payload, as the KVS producer SDK writes it; the
// blocks follow with AppendSimpleBlock and the Cluster ends at the next
// Cluster, Tags or EBML header.
func AppendClusterStartUnknown(b []byte, timecode uint64) []byte {
	b = AppendID(b, IDCluster)
	b = append(b, 0xFF, IDTimecode, 0x88)
	return binary.BigEndian.AppendUint64(b, timecode)
}

// AppendSimpleBlock appends an unlaced SimpleBlock with flags 0x80 for key
// frames and 0 otherwise.
func AppendSimpleBlock(b []byte, track uint64, reltc int16, keyframe bool, frame []byte) []byte {
	n := sizeLen(track) + 3 + len(frame)
	b = slices.Grow(b, 1+sizeLen(uint64(n))+n)
	b = AppendID(b, IDSimpleBlock)
	b = AppendSize(b, uint64(n))
	return appendSimpleBlockPayload(b, track, reltc, keyframe, frame)
}

func appendSimpleBlockPayload(b []byte, track uint64, reltc int16, keyframe bool, frame []byte) []byte {
	b = AppendSize(b, track)
	b = binary.BigEndian.AppendUint16(b, uint16(reltc))
	var flags byte
	if keyframe {
		flags = FlagKeyframe
	}
	b = append(b, flags)
	return append(b, frame...)
}

// NewSimpleBlock builds the Block that AppendSimpleBlock would write, with
// Element filled, so that it can go through AppendCluster.
func NewSimpleBlock(track uint64, reltc int16, keyframe bool, frame []byte) Block {
	p := appendSimpleBlockPayload(make([]byte, 0, sizeLen(track)+3+len(frame)), track, reltc, keyframe, frame)
	var flags byte
	if keyframe {
		flags = FlagKeyframe
	}
	return Block{Track: track, Timecode: reltc, Flags: flags, Keyframe: keyframe, Element: p}
}
