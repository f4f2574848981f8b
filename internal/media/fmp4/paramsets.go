package fmp4

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"strings"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
)

// NAL unit types used here (H.264 7.4.1, H.265 7.4.2.2).
const (
	avcNALIDR = 5
	avcNALSPS = 7
	avcNALPPS = 8
	avcNALAUD = 9

	hevcNALVPS = 32
	hevcNALSPS = 33
	hevcNALPPS = 34
	hevcNALAUD = 35
)

// maxDimension bounds SPS sizes: larger ones come from corrupt crop fields.
const maxDimension = 16384

// setAVC takes an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3).
// Some producers put Annex-B SPS/PPS in CodecPrivate instead; those are
// turned into a record, since the frames are usually fine.
func (t *Track) setAVC(cpd []byte) error {
	if isAnnexB(cpd) {
		rec, err := avcRecordFromAnnexB(cpd)
		if err != nil {
			return err
		}
		cpd = rec
	}
	if len(cpd) < 7 || cpd[0] != 1 {
		return fmt.Errorf("%w: not an avcC record (%d bytes)", ErrInvalidCodecPrivate, len(cpd))
	}
	t.lengthSize = int(cpd[4]&3) + 1
	if t.lengthSize == 3 {
		return fmt.Errorf("%w: avcC NAL length size 3", ErrInvalidCodecPrivate)
	}
	p := cpd[5:]
	sps, p, ok := readNALArray(p[1:], int(p[0]&0x1F), 2)
	if !ok || len(p) < 1 {
		return fmt.Errorf("%w: avcC SPS list is truncated", ErrInvalidCodecPrivate)
	}
	pps, _, ok := readNALArray(p[1:], int(p[0]), 2)
	if !ok {
		return fmt.Errorf("%w: avcC PPS list is truncated", ErrInvalidCodecPrivate)
	}
	if len(sps) == 0 || len(pps) == 0 || sps[0][0]&0x1F != avcNALSPS || pps[0][0]&0x1F != avcNALPPS {
		return fmt.Errorf("%w: avcC without SPS and PPS", ErrInvalidCodecPrivate)
	}
	var s h264.SPS
	if err := s.Unmarshal(sps[0]); err != nil {
		return fmt.Errorf("%w: SPS: %v", ErrInvalidCodecPrivate, err)
	}
	w, h := s.Width(), s.Height()
	if w > maxDimension || h > maxDimension || w < 0 || h < 0 {
		return fmt.Errorf("%w: SPS size %dx%d", ErrInvalidCodecPrivate, w, h)
	}
	t.Width, t.Height, t.FrameRate = w, h, s.FPS()
	t.config = cpd
	t.paramSets = append(sps, pps...)
	t.SampleEntry = "avc1"
	// RFC 6381 3.3: profile_idc, the constraint-flags byte, level_idc, as
	// they stand in the SPS.
	t.Codec = fmt.Sprintf("avc1.%02x%02x%02x", sps[0][1], sps[0][2], sps[0][3])
	t.reorder = avcReorderFrames(&s)
	return nil
}

// avcReorderFrames is how many frames may precede a frame in decode order
// yet follow it in output order. The SPS says so when it carries VUI
// bitstream_restriction; profiles without B slices (Baseline, Constrained
// Baseline, the intra profiles) need none; otherwise the spec's inferred
// value (the whole DPB) would delay everything by up to 16 frames, so 2 is
// assumed, which covers B-frames with or without a pyramid. A fragment that
// needs more gets more (see FragmentSamples).
func avcReorderFrames(s *h264.SPS) int {
	if s.VUI != nil && s.VUI.BitstreamRestriction != nil {
		return int(min(s.VUI.BitstreamRestriction.MaxNumReorderFrames, 16))
	}
	switch {
	case s.ProfileIdc == 66, s.ProfileIdc == 44:
		return 0
	case s.ConstraintSet3Flag && (s.ProfileIdc == 110 || s.ProfileIdc == 122 || s.ProfileIdc == 244):
		return 0
	}
	return 2
}

// setHEVC takes an HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3),
// or Annex-B parameter sets, as setAVC does.
func (t *Track) setHEVC(cpd []byte) error {
	t.hevc = true
	if isAnnexB(cpd) {
		rec, err := hevcRecordFromAnnexB(cpd)
		if err != nil {
			return err
		}
		cpd = rec
	}
	if len(cpd) < 23 || cpd[0] != 1 {
		return fmt.Errorf("%w: not an hvcC record (%d bytes)", ErrInvalidCodecPrivate, len(cpd))
	}
	t.lengthSize = int(cpd[21]&3) + 1
	if t.lengthSize == 3 {
		return fmt.Errorf("%w: hvcC NAL length size 3", ErrInvalidCodecPrivate)
	}
	var vps, sps, pps [][]byte
	p := cpd[23:]
	for n := int(cpd[22]); n > 0; n-- {
		if len(p) < 3 {
			return fmt.Errorf("%w: hvcC arrays are truncated", ErrInvalidCodecPrivate)
		}
		typ := p[0] & 0x3F
		nalus, rest, ok := readNALArray(p[3:], int(binary.BigEndian.Uint16(p[1:])), 2)
		if !ok {
			return fmt.Errorf("%w: hvcC arrays are truncated", ErrInvalidCodecPrivate)
		}
		p = rest
		switch typ {
		case hevcNALVPS:
			vps = append(vps, nalus...)
		case hevcNALSPS:
			sps = append(sps, nalus...)
		case hevcNALPPS:
			pps = append(pps, nalus...)
		}
	}
	if len(sps) == 0 || len(pps) == 0 {
		return fmt.Errorf("%w: hvcC without SPS and PPS", ErrInvalidCodecPrivate)
	}
	var s h265.SPS
	if err := s.Unmarshal(sps[0]); err != nil {
		return fmt.Errorf("%w: SPS: %v", ErrInvalidCodecPrivate, err)
	}
	w, h := s.Width(), s.Height()
	ptl := hevcPTL(sps[0])
	if w > maxDimension || h > maxDimension || w < 0 || h < 0 || ptl == nil {
		return fmt.Errorf("%w: SPS size %dx%d", ErrInvalidCodecPrivate, w, h)
	}
	t.Width, t.Height, t.FrameRate = w, h, s.FPS()
	if n := len(s.MaxNumReorderPics); n > 0 {
		t.reorder = int(min(s.MaxNumReorderPics[n-1], 16))
	}
	t.config = cpd
	t.paramSets = append(append(vps, sps...), pps...)
	// hvc1 promises every parameter set in the sample entry; without a VPS
	// there, hev1 is the honest entry (parameter sets may come in-band).
	t.SampleEntry = "hvc1"
	if len(vps) == 0 {
		t.SampleEntry = "hev1"
	}
	t.Codec = hevcCodecString(t.SampleEntry, ptl)
	return nil
}

// hevcPTL returns the 12 bytes of general profile_tier_level of an SPS NAL
// unit (H.265 7.3.3): after the 2-byte NAL header and the byte holding
// sps_video_parameter_set_id, max_sub_layers and temporal_id_nesting.
func hevcPTL(sps []byte) []byte {
	if len(sps) < 2 {
		return nil
	}
	rbsp := h264.EmulationPreventionRemove(sps[2:])
	if len(rbsp) < 13 {
		return nil
	}
	return rbsp[1:13]
}

// hevcCodecString follows ISO/IEC 14496-15 Annex E: profile space letter and
// profile_idc; the 32 compatibility flags bit-reversed, in hex; tier letter
// and level_idc; the six constraint bytes in hex, trailing zero bytes left
// out. Main profile, level 3.1, progressive: hvc1.1.6.L93.B0.
func hevcCodecString(entry string, ptl []byte) string {
	var b strings.Builder
	b.WriteString(entry)
	b.WriteByte('.')
	if space := ptl[0] >> 6; space > 0 {
		b.WriteByte("ABC"[space-1])
	}
	fmt.Fprintf(&b, "%d.%X.", ptl[0]&0x1F, bits.Reverse32(binary.BigEndian.Uint32(ptl[1:5])))
	if ptl[0]&0x20 != 0 {
		b.WriteByte('H')
	} else {
		b.WriteByte('L')
	}
	fmt.Fprintf(&b, "%d", ptl[11])
	cons := ptl[5:11]
	for len(cons) > 0 && cons[len(cons)-1] == 0 {
		cons = cons[:len(cons)-1]
	}
	for _, c := range cons {
		fmt.Fprintf(&b, ".%X", c)
	}
	return b.String()
}

// readNALArray reads n NAL units, each behind a big-endian length of lenSize
// bytes, and returns them (aliasing p) and the rest of p. Empty units are
// rejected: nothing useful is empty, and later code indexes the header byte.
func readNALArray(p []byte, n, lenSize int) ([][]byte, []byte, bool) {
	var out [][]byte
	for ; n > 0; n-- {
		if len(p) < lenSize {
			return nil, nil, false
		}
		l := 0
		for _, c := range p[:lenSize] {
			l = l<<8 | int(c)
		}
		p = p[lenSize:]
		if l == 0 || l > len(p) {
			return nil, nil, false
		}
		out = append(out, p[:l:l])
		p = p[l:]
	}
	return out, p, true
}

// isAnnexB reports whether p starts with a start code.
func isAnnexB(p []byte) bool {
	return len(p) >= 4 && p[0] == 0 && p[1] == 0 && (p[2] == 1 || p[2] == 0 && p[3] == 1)
}

// splitAnnexB splits an Annex-B byte stream at its start codes. The units
// alias p; trailing zero bytes of a unit (the leading zero of a 4-byte start
// code, or trailing_zero_8bits) are trimmed.
func splitAnnexB(p []byte) [][]byte {
	var out [][]byte
	start := -1
	for i := 0; i+2 < len(p); {
		if p[i+2] > 1 {
			i += 3
			continue
		}
		if p[i] == 0 && p[i+1] == 0 && p[i+2] == 1 {
			if start >= 0 {
				out = appendTrimmed(out, p[start:i])
			}
			i += 3
			start = i
			continue
		}
		i++
	}
	if start >= 0 {
		out = appendTrimmed(out, p[start:])
	}
	return out
}

func appendTrimmed(out [][]byte, u []byte) [][]byte {
	for len(u) > 0 && u[len(u)-1] == 0 {
		u = u[:len(u)-1]
	}
	if len(u) == 0 {
		return out
	}
	return append(out, u[:len(u):len(u)])
}

// avcRecordFromAnnexB builds an avcC record (length size 4) from Annex-B SPS
// and PPS units, with the chroma and bit-depth fields that High profiles
// require (14496-15 5.3.3.1).
func avcRecordFromAnnexB(p []byte) ([]byte, error) {
	var sps, pps [][]byte
	for _, u := range splitAnnexB(p) {
		switch u[0] & 0x1F {
		case avcNALSPS:
			sps = append(sps, u)
		case avcNALPPS:
			pps = append(pps, u)
		}
	}
	if len(sps) == 0 || len(pps) == 0 || len(sps) > 31 || len(pps) > 255 || len(sps[0]) < 4 || tooLong(sps, pps) {
		return nil, fmt.Errorf("%w: Annex-B CodecPrivate without SPS and PPS", ErrInvalidCodecPrivate)
	}
	var s h264.SPS
	if err := s.Unmarshal(sps[0]); err != nil {
		return nil, fmt.Errorf("%w: SPS: %v", ErrInvalidCodecPrivate, err)
	}
	rec := []byte{1, sps[0][1], sps[0][2], sps[0][3], 0xFF, 0xE0 | byte(len(sps))}
	rec = appendNALs(rec, sps)
	rec = append(rec, byte(len(pps)))
	rec = appendNALs(rec, pps)
	switch s.ProfileIdc {
	case 100, 110, 122, 144:
		rec = append(rec, 0xFC|byte(s.ChromaFormatIdc&3), 0xF8|byte(s.BitDepthLumaMinus8&7),
			0xF8|byte(s.BitDepthChromaMinus8&7), 0)
	}
	return rec, nil
}

// hevcRecordFromAnnexB builds an hvcC record (length size 4) from Annex-B
// VPS, SPS and PPS units; the header fields come from the SPS.
func hevcRecordFromAnnexB(p []byte) ([]byte, error) {
	var arrays [3][][]byte
	for _, u := range splitAnnexB(p) {
		if len(u) < 2 {
			continue
		}
		if typ := int(u[0]>>1) & 0x3F; typ >= hevcNALVPS && typ <= hevcNALPPS {
			arrays[typ-hevcNALVPS] = append(arrays[typ-hevcNALVPS], u)
		}
	}
	sps := arrays[1]
	if len(sps) == 0 || len(arrays[2]) == 0 || tooLong(arrays[:]...) {
		return nil, fmt.Errorf("%w: Annex-B CodecPrivate without SPS and PPS", ErrInvalidCodecPrivate)
	}
	var s h265.SPS
	if err := s.Unmarshal(sps[0]); err != nil {
		return nil, fmt.Errorf("%w: SPS: %v", ErrInvalidCodecPrivate, err)
	}
	ptl := hevcPTL(sps[0])
	if ptl == nil {
		return nil, fmt.Errorf("%w: SPS too short", ErrInvalidCodecPrivate)
	}
	rec := append([]byte{1}, ptl...)
	nesting := byte(0)
	if s.TemporalIDNestingFlag {
		nesting = 1
	}
	rec = append(rec, 0xF0, 0, 0xFC, 0xFC|byte(s.ChromaFormatIdc&3), 0xF8|byte(s.BitDepthLumaMinus8&7),
		0xF8|byte(s.BitDepthChromaMinus8&7), 0, 0, (s.MaxSubLayersMinus1+1)&7<<3|nesting<<2|3)
	n := 0
	for _, a := range arrays {
		if len(a) > 0 {
			n++
		}
	}
	rec = append(rec, byte(n))
	for i, a := range arrays {
		if len(a) == 0 {
			continue
		}
		rec = append(rec, 0x80|byte(hevcNALVPS+i))
		rec = binary.BigEndian.AppendUint16(rec, uint16(len(a)))
		rec = appendNALs(rec, a)
	}
	return rec, nil
}

// tooLong reports lists that a record cannot hold: more than 65535 units,
// or a unit longer than its 2-byte length field.
func tooLong(lists ...[][]byte) bool {
	for _, l := range lists {
		if len(l) > 0xFFFF {
			return true
		}
		for _, u := range l {
			if len(u) > 0xFFFF {
				return true
			}
		}
	}
	return false
}

// appendNALs appends each unit behind a 2-byte length, as parameter-set
// records store them (see tooLong).
func appendNALs(b []byte, units [][]byte) []byte {
	for _, u := range units {
		b = binary.BigEndian.AppendUint16(b, uint16(len(u)))
		b = append(b, u...)
	}
	return b
}
