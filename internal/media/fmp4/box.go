package fmp4

import (
	"encoding/binary"
	"fmt"
)

// Boxes are appended to a caller's slice: a box starts with a placeholder
// size that end fills in once the content is known, so nested boxes need no
// temporary buffers. Box sizes stay below 4 GiB except mdat, which has its
// own writer.

// start appends a box header with the given type and returns the offset to
// pass to end.
func start(b []byte, typ string) ([]byte, int) {
	return append(b, 0, 0, 0, 0, typ[0], typ[1], typ[2], typ[3]), len(b)
}

// startFull appends a full box header (ISO/IEC 14496-12 4.2): version and
// 24 bits of flags follow the type.
func startFull(b []byte, typ string, version byte, flags uint32) ([]byte, int) {
	b, off := start(b, typ)
	return append(b, version, byte(flags>>16), byte(flags>>8), byte(flags)), off
}

// end writes the size of the box that starts at off.
func end(b []byte, off int) []byte {
	binary.BigEndian.PutUint32(b[off:], uint32(len(b)-off))
	return b
}

func be16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }
func be32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }
func be64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

// unityMatrix is the identity transformation of tkhd and mvhd.
var unityMatrix = []uint32{0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000}

func appendMatrix(b []byte) []byte {
	for _, v := range unityMatrix {
		b = be32(b, v)
	}
	return b
}

// appendFtyp appends a File Type box.
func appendFtyp(b []byte, major string, compatible ...string) []byte {
	b, off := start(b, "ftyp")
	b = append(b, major...)
	b = be32(b, 0)
	for _, c := range compatible {
		b = append(b, c...)
	}
	return end(b, off)
}

// appendMvhd appends a Movie Header (version 1 when the duration needs it).
func appendMvhd(b []byte, timescale uint32, duration uint64, nextTrackID uint32) []byte {
	var off int
	if duration > 0xFFFFFFFF {
		b, off = startFull(b, "mvhd", 1, 0)
		b = be64(be64(b, 0), 0) // creation, modification time
		b = be64(be32(b, timescale), duration)
	} else {
		b, off = startFull(b, "mvhd", 0, 0)
		b = be32(be32(b, 0), 0)
		b = be32(be32(b, timescale), uint32(duration))
	}
	b = be16(be32(b, 0x00010000), 0x0100) // rate 1.0, volume 1.0
	b = append(b, make([]byte, 10)...)    // reserved
	b = appendMatrix(b)
	b = append(b, make([]byte, 24)...) // pre_defined
	b = be32(b, nextTrackID)
	return end(b, off)
}

// appendTkhd appends a Track Header: enabled, in movie and in preview.
func appendTkhd(b []byte, t *Track, duration uint64) []byte {
	var off int
	if duration > 0xFFFFFFFF {
		b, off = startFull(b, "tkhd", 1, 7)
		b = be64(be64(b, 0), 0)
		b = be64(be32(be32(b, uint32(t.Number)), 0), duration)
	} else {
		b, off = startFull(b, "tkhd", 0, 7)
		b = be32(be32(b, 0), 0)
		b = be32(be32(be32(b, uint32(t.Number)), 0), uint32(duration))
	}
	b = append(b, make([]byte, 8)...) // reserved
	b = be16(be16(b, 0), 0)           // layer, alternate_group
	if t.Kind == Audio {
		b = be16(b, 0x0100)
	} else {
		b = be16(b, 0)
	}
	b = be16(b, 0) // reserved
	b = appendMatrix(b)
	b = be32(be32(b, uint32(t.Width)<<16), uint32(t.Height)<<16)
	return end(b, off)
}

// appendMdiaHead appends mdhd and hdlr, which open a Media box.
func appendMdiaHead(b []byte, t *Track, duration uint64) []byte {
	var off int
	if duration > 0xFFFFFFFF {
		b, off = startFull(b, "mdhd", 1, 0)
		b = be64(be64(b, 0), 0)
		b = be64(be32(b, t.Timescale), duration)
	} else {
		b, off = startFull(b, "mdhd", 0, 0)
		b = be32(be32(b, 0), 0)
		b = be32(be32(b, t.Timescale), uint32(duration))
	}
	b = be16(be16(b, 0x55C4), 0) // language "und" (packed ISO-639-2/T), pre_defined
	b = end(b, off)

	b, off = startFull(b, "hdlr", 0, 0)
	b = be32(b, 0)
	if t.Kind == Video {
		b = append(b, "vide"...)
	} else {
		b = append(b, "soun"...)
	}
	b = append(b, make([]byte, 12)...)
	if t.Kind == Video {
		b = append(b, "VideoHandler\x00"...)
	} else {
		b = append(b, "SoundHandler\x00"...)
	}
	return end(b, off)
}

// appendMinfHead appends the media header (vmhd/smhd) and Data Information
// box that open a Media Information box.
func appendMinfHead(b []byte, t *Track) []byte {
	var off int
	if t.Kind == Video {
		b, off = startFull(b, "vmhd", 0, 1)
		b = append(b, make([]byte, 8)...) // graphicsmode, opcolor
	} else {
		b, off = startFull(b, "smhd", 0, 0)
		b = be32(b, 0) // balance, reserved
	}
	b = end(b, off)
	dinf := 0
	b, dinf = start(b, "dinf")
	b, off = startFull(b, "dref", 0, 0)
	b = be32(b, 1)
	url := 0
	b, url = startFull(b, "url ", 0, 1) // flag 1: media is in this file
	b = end(b, url)
	b = end(b, off)
	return end(b, dinf)
}

// appendStsd appends the Sample Description box with the track's one
// sample entry. avcC, hvcC and the AudioSpecificConfig are the CodecPrivate
// bytes, unchanged.
func appendStsd(b []byte, t *Track) ([]byte, error) {
	b, stsd := startFull(b, "stsd", 0, 0)
	b = be32(b, 1)
	b, entry := start(b, t.SampleEntry)
	b = append(b, 0, 0, 0, 0, 0, 0) // reserved
	b = be16(b, 1)                  // data_reference_index
	switch t.SampleEntry {
	case "avc1", "hvc1", "hev1":
		if t.Width > 0xFFFF || t.Height > 0xFFFF {
			return nil, fmt.Errorf("%w: %dx%d", ErrInvalidCodecPrivate, t.Width, t.Height)
		}
		b = append(b, make([]byte, 16)...) // pre_defined, reserved
		b = be16(be16(b, uint16(t.Width)), uint16(t.Height))
		b = be32(be32(b, 0x00480000), 0x00480000) // 72 dpi
		b = be32(b, 0)
		b = be16(b, 1)                     // frame_count
		b = append(b, make([]byte, 32)...) // compressorname
		b = be16(be16(b, 0x0018), 0xFFFF)  // depth, pre_defined -1
		cfg := "avcC"
		if t.hevc {
			cfg = "hvcC"
		}
		var off int
		b, off = start(b, cfg)
		b = append(b, t.config...)
		b = end(b, off)
	case "mp4a", "alaw", "ulaw":
		b = append(b, make([]byte, 8)...) // reserved
		b = be16(b, uint16(t.Channels))
		b = be16(b, 16) // samplesize
		b = be32(b, 0)  // pre_defined, reserved
		rate := uint32(t.SampleRate) << 16
		if t.SampleRate > 0xFFFF {
			rate = 0 // does not fit 16.16; decoders read the rate from the esds
		}
		b = be32(b, rate)
		if t.SampleEntry == "mp4a" {
			b = appendEsds(b, t)
		}
	default:
		return nil, fmt.Errorf("%w: no sample entry for %s", ErrUnsupportedCodec, t.CodecID)
	}
	b = end(b, entry)
	return end(b, stsd), nil
}

// appendEsds appends an Elementary Stream Descriptor box (ISO/IEC 14496-1
// 7.2.6.5 and 14496-14 5.6): ES_Descriptor > DecoderConfigDescriptor
// (Audio ISO/IEC 14496-3, stream type audio) > DecoderSpecificInfo (the
// AudioSpecificConfig), and SLConfigDescriptor predefined 2 as MP4 requires.
func appendEsds(b []byte, t *Track) []byte {
	b, off := startFull(b, "esds", 0, 0)
	// setAAC caps the ASC at maxASC bytes, so every descriptor size fits
	// the one-byte form.
	asc := t.config
	dcd := 13 + 2 + len(asc)
	es := 3 + (2 + dcd) + 3
	b = append(b, 0x03, byte(es))
	b = be16(b, uint16(t.Number))
	b = append(b, 0)                           // no stream dependence, URL or OCR
	b = append(b, 0x04, byte(dcd), 0x40, 0x15) // object type: MPEG-4 audio; stream type 5, reserved bit
	b = append(b, 0, 0, 0)                     // bufferSizeDB: unknown
	b = be32(be32(b, 0), 0)                    // max, avg bitrate: unknown
	b = append(b, 0x05, byte(len(asc)))
	b = append(b, asc...)
	b = append(b, 0x06, 1, 0x02)
	return end(b, off)
}
