package fmp4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Sample flags (ISO/IEC 14496-12 8.8.3.1): a key frame depends on no other
// sample; any other video frame depends on others and is not a sync sample.
const (
	flagsSync    = 0x02000000
	flagsNonSync = 0x01010000
)

// AppendInit appends an initialization segment (ftyp and moov with an mvex)
// for the given tracks: one track for an HLS rendition or a DASH
// representation, or several. Track IDs are the MKV track numbers.
func AppendInit(dst []byte, tracks ...*Track) ([]byte, error) {
	if len(tracks) == 0 {
		return nil, errors.New("fmp4: AppendInit without tracks")
	}
	b := appendFtyp(dst, "iso6", "iso6", "iso5", "dash", "mp41")
	b, moov := start(b, "moov")
	b = appendMvhd(b, 1000, 0, nextTrackID(tracks))
	for _, t := range tracks {
		var err error
		if b, err = appendFragmentedTrak(b, t); err != nil {
			return nil, err
		}
	}
	b, mvex := start(b, "mvex")
	for _, t := range tracks {
		var off int
		b, off = startFull(b, "trex", 0, 0)
		b = be32(be32(b, uint32(t.Number)), 1) // track, sample description 1
		b = be32(be32(be32(b, 0), 0), 0)       // defaults: every trun sets its own
		b = end(b, off)
	}
	b = end(b, mvex)
	return end(b, moov), nil
}

func nextTrackID(tracks []*Track) uint32 {
	var id uint64
	for _, t := range tracks {
		id = max(id, t.Number)
	}
	return uint32(min(id+1, math.MaxUint32))
}

// appendFragmentedTrak appends a trak whose sample tables are empty: the
// samples come in movie fragments.
func appendFragmentedTrak(b []byte, t *Track) ([]byte, error) {
	b, trak := start(b, "trak")
	b = appendTkhd(b, t, 0)
	b, mdia := start(b, "mdia")
	b = appendMdiaHead(b, t, 0)
	b, minf := start(b, "minf")
	b = appendMinfHead(b, t)
	b, stbl := start(b, "stbl")
	b, err := appendStsd(b, t)
	if err != nil {
		return nil, err
	}
	for _, typ := range []string{"stts", "stsc", "stco"} {
		var off int
		b, off = startFull(b, typ, 0, 0)
		b = be32(b, 0)
		b = end(b, off)
	}
	var off int
	b, off = startFull(b, "stsz", 0, 0)
	b = be32(be32(b, 0), 0)
	b = end(b, off)
	b = end(b, stbl)
	b = end(b, minf)
	b = end(b, mdia)
	return end(b, trak), nil
}

// AppendMediaSegment appends one movie fragment of one track: moof (mfhd
// with seq, traf with tfhd, tfdt = the first sample's DTS, and a version 1
// trun with each sample's size, duration, flags and signed composition
// offset) and the mdat holding the samples, which must be in decode order
// and belong to track. The payload is copied once, straight into dst.
func AppendMediaSegment(dst []byte, seq uint32, track *Track, samples []Sample) ([]byte, error) {
	n := 0
	for i := range samples {
		n += len(samples[i].Data)
	}
	b, err := AppendMediaSegmentHeader(slices.Grow(dst, n+1024), seq, track, samples)
	if err != nil {
		return nil, err
	}
	for i := range samples {
		b = append(b, samples[i].Data...)
	}
	return b, nil
}

// AppendMediaSegmentHeader appends what AppendMediaSegment does up to and
// including the mdat header; the segment is that followed by each sample's
// Data in order. A server can write the samples straight from the buffer
// they were read into instead of copying them.
func AppendMediaSegmentHeader(dst []byte, seq uint32, track *Track, samples []Sample) ([]byte, error) {
	if len(samples) == 0 {
		return nil, fmt.Errorf("fmp4: media segment of track %d without samples", track.Number)
	}
	if samples[0].DTS < 0 {
		return nil, fmt.Errorf("%w: track %d: negative decode time %d cannot be a tfdt", ErrInvalidMediaFrame, track.Number, samples[0].DTS)
	}
	video := track.Kind == Video
	trunFlags, entry := uint32(0x000301), 8 // data offset, durations, sizes
	if video {
		trunFlags, entry = 0x000F01, 16 // and flags, composition offsets
	}
	var data uint64
	for i := range samples {
		s := &samples[i]
		if s.Track != track.Number {
			return nil, fmt.Errorf("fmp4: sample of track %d in a segment of track %d", s.Track, track.Number)
		}
		if d := s.PTS - s.DTS; d < math.MinInt32 || d > math.MaxInt32 {
			return nil, fmt.Errorf("%w: track %d: composition offset %d", ErrInvalidMediaFrame, track.Number, d)
		}
		if len(s.Data) > math.MaxUint32 {
			return nil, fmt.Errorf("%w: track %d: sample of %d bytes", ErrInvalidMediaFrame, track.Number, len(s.Data))
		}
		data += uint64(len(s.Data))
	}
	if len(samples) > (math.MaxUint32-256)/entry {
		return nil, fmt.Errorf("fmp4: %d samples in one segment", len(samples))
	}
	trun := 20 + len(samples)*entry
	traf := 8 + 16 + 20 + trun
	moof := 8 + 16 + traf
	mdatHdr := 8
	if data+8 > math.MaxUint32 {
		mdatHdr = 16
	}
	dst = slices.Grow(dst, moof+mdatHdr)

	b, moofOff := start(dst, "moof")
	b, off := startFull(b, "mfhd", 0, 0)
	b = be32(b, seq)
	b = end(b, off)
	b, trafOff := start(b, "traf")
	b, off = startFull(b, "tfhd", 0, 0x020000) // default-base-is-moof
	b = be32(b, uint32(track.Number))
	b = end(b, off)
	b, off = startFull(b, "tfdt", 1, 0)
	b = be64(b, uint64(samples[0].DTS))
	b = end(b, off)
	b, off = startFull(b, "trun", 1, trunFlags)
	b = be32(b, uint32(len(samples)))
	b = be32(b, uint32(moof+mdatHdr)) // data offset from the moof
	for i := range samples {
		s := &samples[i]
		b = be32(be32(b, s.Duration), uint32(len(s.Data)))
		if video {
			f := uint32(flagsNonSync)
			if s.Keyframe {
				f = flagsSync
			}
			b = be32(be32(b, f), uint32(int32(s.PTS-s.DTS)))
		}
	}
	b = end(b, off)
	b = end(b, trafOff)
	b = end(b, moofOff)

	return appendMdatHeader(b, data), nil
}

// appendMdatHeader appends the header of an mdat holding size payload
// bytes, with a 64-bit size when the 32-bit one cannot hold it.
func appendMdatHeader(b []byte, size uint64) []byte {
	if size+8 <= math.MaxUint32 {
		b = be32(b, uint32(size+8))
		return append(b, "mdat"...)
	}
	b = be32(b, 1)
	b = append(b, "mdat"...)
	return binary.BigEndian.AppendUint64(b, size+16)
}
