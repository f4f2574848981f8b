package mkv

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/bits"
)

// EBML variable-size integers ("vints"): the count of leading zero bits of
// the first byte, plus one, is the length; the rest are value bits. Element
// IDs keep their marker bit; sizes drop it. A size whose value bits are all
// ones, at any length, means "unknown size".

// maxSize is the largest size an 8-byte vint can hold without being the
// unknown-size sentinel.
const maxSize = 1<<56 - 2

// vintLength returns the length that the first byte of a vint announces,
// 1 to 8, or 0 when the byte is 0x00 (which would announce 9 or more).
func vintLength(first byte) int {
	if first == 0 {
		return 0
	}
	return bits.LeadingZeros8(first) + 1
}

// idLength is vintLength restricted to the 1–4 bytes Matroska allows for
// IDs (EBMLMaxIDLength 4).
func idLength(first byte) int {
	if n := vintLength(first); n <= 4 {
		return n
	}
	return 0
}

// decodeID returns the ID in p (all of p, 1–4 bytes) with its marker bit
// kept. IDs whose value bits are all zeros or all ones are reserved; they
// are reported as not ok, which also helps reject garbage early.
func decodeID(p []byte) (uint32, bool) {
	var v uint32
	for _, c := range p {
		v = v<<8 | uint32(c)
	}
	mask := uint32(1)<<(7*len(p)) - 1
	if val := v & mask; val == 0 || val == mask {
		return 0, false
	}
	return v, true
}

// decodeSize returns the size in p (all of p, 1–8 bytes) and whether it is
// the unknown-size sentinel.
func decodeSize(p []byte) (size uint64, unknown bool) {
	n := len(p)
	v := uint64(p[0] & (0xFF >> n))
	for _, c := range p[1:] {
		v = v<<8 | uint64(c)
	}
	return v, v == 1<<(7*n)-1
}

// signedVintBias is subtracted from a raw EBML-lacing vint of n bytes to get
// the signed difference it encodes.
func signedVintBias(n int) int64 {
	return 1<<(7*n-1) - 1
}

// decodeUint reads a big-endian unsigned integer of 0 to 8 bytes.
func decodeUint(p []byte) (uint64, bool) {
	if len(p) > 8 {
		return 0, false
	}
	var v uint64
	for _, c := range p {
		v = v<<8 | uint64(c)
	}
	return v, true
}

// decodeFloat reads an EBML float: 0 bytes (zero), 4 or 8 bytes.
func decodeFloat(p []byte) (float64, bool) {
	switch len(p) {
	case 0:
		return 0, true
	case 4:
		return float64(math.Float32frombits(binary.BigEndian.Uint32(p))), true
	case 8:
		return math.Float64frombits(binary.BigEndian.Uint64(p)), true
	}
	return 0, false
}

// decodeString reads an EBML string or UTF-8 element. Matroska allows
// trailing zero padding; everything from the first zero byte is dropped.
func decodeString(p []byte) string {
	if i := bytes.IndexByte(p, 0); i >= 0 {
		p = p[:i]
	}
	return string(p)
}

// sizeLen is the length of the minimal vint that holds n, or 0 when n does
// not fit in 8 bytes.
func sizeLen(n uint64) int {
	for l := 1; l <= 8; l++ {
		if n < 1<<(7*l)-1 {
			return l
		}
	}
	return 0
}

// idLen is the number of bytes of an ID written with its marker bit.
func idLen(id uint32) int {
	switch {
	case id < 1<<8:
		return 1
	case id < 1<<16:
		return 2
	case id < 1<<24:
		return 3
	}
	return 4
}

// uintLen is the number of bytes AppendUint uses for v (at least one).
func uintLen(v uint64) int {
	if v == 0 {
		return 1
	}
	return (bits.Len64(v) + 7) / 8
}
