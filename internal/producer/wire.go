package producer

import (
	"encoding/binary"
	"math"

	"github.com/kinema/kinema/internal/media/mkv"
)

// This file writes MKV byte for byte as the producer SDK (PIC) puts it on
// the wire (kvs-producer-wire.md §5), not as mkv's minimal writer would:
// forced 2-, 4- and 8-byte sizes, 8-byte Timecodes, Position 0, one Tags
// element per tag. The point is that tests and benchmarks exercise the
// server with the encodings real cameras use.

// appendVintN appends n as a vint of exactly w bytes (n must fit).
func appendVintN(b []byte, n uint64, w int) []byte {
	n |= 1 << (7 * w)
	for i := w - 1; i >= 0; i-- {
		b = append(b, byte(n>>(8*i)))
	}
	return b
}

// wrapN turns b[start:] into the payload of element id with a size of
// exactly w bytes (w == 0: minimal size).
func wrapN(b []byte, start int, id uint32, w int) []byte {
	payload := append([]byte(nil), b[start:]...)
	b = mkv.AppendID(b[:start], id)
	if w == 0 {
		b = mkv.AppendSize(b, uint64(len(payload)))
	} else {
		b = appendVintN(b, uint64(len(payload)), w)
	}
	return append(b, payload...)
}

// appendUintN appends an unsigned integer element with a payload of exactly
// w bytes (PIC writes TrackUID, TimecodeScale and Timecode with 8).
func appendUintN(b []byte, id uint32, v uint64, w int) []byte {
	b = mkv.AppendID(b, id)
	b = mkv.AppendSize(b, uint64(w))
	for i := w - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

// appendStreamHeader appends the EBML header, an unknown-size Segment,
// Info and Tracks.
func appendStreamHeader(b []byte, h mkv.Header) []byte {
	start := len(b)
	b = mkv.AppendUint(b, mkv.IDEBMLVersion, 1)
	b = mkv.AppendUint(b, mkv.IDEBMLReadVersion, 1)
	b = mkv.AppendUint(b, mkv.IDEBMLMaxIDLength, 4)
	b = mkv.AppendUint(b, mkv.IDEBMLMaxSizeLength, 8)
	b = mkv.AppendString(b, mkv.IDDocType, "matroska")
	b = mkv.AppendUint(b, mkv.IDDocTypeVersion, 2)
	b = mkv.AppendUint(b, mkv.IDDocTypeReadVersion, 2)
	b = wrapN(b, start, mkv.IDEBML, 0)

	b = mkv.AppendSegmentStart(b)

	start = len(b)
	if len(h.SegmentUID) > 0 {
		b = mkv.AppendElement(b, mkv.IDSegmentUID, h.SegmentUID)
	}
	b = appendUintN(b, mkv.IDTimecodeScale, mkv.DefaultTimecodeScale, 8)
	for _, s := range []struct {
		id uint32
		v  string
	}{{mkv.IDTitle, h.Title}, {mkv.IDMuxingApp, h.MuxingApp}, {mkv.IDWritingApp, h.WritingApp}} {
		if s.v != "" {
			b = mkv.AppendString(b, s.id, s.v)
		}
	}
	b = wrapN(b, start, mkv.IDInfo, 2)

	start = len(b)
	for _, t := range h.Tracks {
		b = appendTrackEntry(b, t)
	}
	return wrapN(b, start, mkv.IDTracks, 4)
}

func appendTrackEntry(b []byte, t mkv.Track) []byte {
	start := len(b)
	b = mkv.AppendUint(b, mkv.IDTrackNumber, t.Number)
	b = appendUintN(b, mkv.IDTrackUID, max(t.UID, t.Number), 8)
	b = mkv.AppendUint(b, mkv.IDTrackType, t.Type)
	if t.Name != "" {
		b = mkv.AppendString(b, mkv.IDTrackName, t.Name)
	}
	b = mkv.AppendString(b, mkv.IDCodecID, t.CodecID)
	if t.PixelWidth != 0 || t.PixelHeight != 0 {
		v := len(b)
		b = mkv.AppendUint(b, mkv.IDPixelWidth, t.PixelWidth)
		b = mkv.AppendUint(b, mkv.IDPixelHeight, t.PixelHeight)
		b = wrapN(b, v, mkv.IDVideo, 4)
	}
	if t.SamplingFrequency != 0 || t.Channels != 0 {
		a := len(b)
		b = mkv.AppendID(b, mkv.IDSamplingFrequency)
		b = mkv.AppendSize(b, 8)
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(t.SamplingFrequency))
		b = mkv.AppendUint(b, mkv.IDChannels, max(t.Channels, 1))
		if t.BitDepth != 0 {
			b = mkv.AppendUint(b, mkv.IDBitDepth, t.BitDepth)
		}
		b = wrapN(b, a, mkv.IDAudio, 4)
	}
	if len(t.CodecPrivate) > 0 {
		b = mkv.AppendElement(b, mkv.IDCodecPrivate, t.CodecPrivate)
	}
	return wrapN(b, start, mkv.IDTrackEntry, 4)
}

// appendClusterStart appends an unknown-size Cluster, its 8-byte Timecode
// and Position 0.
func appendClusterStart(b []byte, timecode uint64) []byte {
	b = mkv.AppendClusterStartUnknown(b, timecode)
	return append(b, mkv.IDPosition, 0x81, 0x00)
}

// appendBlockHeader appends a SimpleBlock's ID, its forced 8-byte size and
// the block header; the frame's bytes follow.
func appendBlockHeader(b []byte, track uint64, reltc int16, keyframe bool, frameLen int) []byte {
	b = append(b, mkv.IDSimpleBlock)
	trackLen := 1
	if track > 126 {
		trackLen = 2 // tracks are 1 and 2 in practice; keep it correct anyway
	}
	b = appendVintN(b, uint64(trackLen+3+frameLen), 8)
	b = appendVintN(b, track, trackLen)
	b = binary.BigEndian.AppendUint16(b, uint16(reltc))
	var flags byte
	if keyframe {
		flags = mkv.FlagKeyframe
	}
	return append(b, flags)
}

// appendTag appends one Tags element holding one Tag holding one SimpleTag,
// every size a forced 8-byte vint, as PIC writes fragment metadata.
func appendTag(b []byte, name, value string) []byte {
	const w = 8
	start := len(b)
	b = mkv.AppendID(b, mkv.IDTagName)
	b = appendVintN(b, uint64(len(name)), w)
	b = append(b, name...)
	b = mkv.AppendID(b, mkv.IDTagString)
	b = appendVintN(b, uint64(len(value)), w)
	b = append(b, value...)
	b = wrapN(b, start, mkv.IDSimpleTag, w)
	b = wrapN(b, start, mkv.IDTag, w)
	return wrapN(b, start, mkv.IDTags, w)
}
