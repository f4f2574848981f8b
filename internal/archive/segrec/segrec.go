// Package segrec owns the byte format of a segment, shared by every Media
// store (local files, S3 objects): fragments back to back, each behind a
// 32-byte record header (magic, stream, fragment number, length, CRC-32C),
// so stored bytes can be checked on every read and a segment scanned
// without the index. One format means a segment can move between stores
// unchanged.
package segrec

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/stream"
)

// HeaderSize is the size of the header before each fragment's bytes.
const HeaderSize = 32

var magic = [4]byte{'K', 'F', 'R', '1'}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt is returned when stored bytes fail their checksum.
var ErrCorrupt = errors.New("fragment bytes fail their checksum")

// Header returns the record header of r.
func Header(r archive.Record) [HeaderSize]byte {
	var h [HeaderSize]byte
	copy(h[0:4], magic[:])
	binary.BigEndian.PutUint64(h[4:12], uint64(r.StreamID))
	binary.BigEndian.PutUint64(h[12:20], uint64(r.Number))
	binary.BigEndian.PutUint32(h[20:24], uint32(len(r.Data)))
	binary.BigEndian.PutUint32(h[24:28], crc32.Checksum(r.Data, castagnoli))
	return h
}

// Encode appends the records to buf as they are stored starting at offset
// base of segment seg, and returns the bytes and where each fragment's
// data landed.
func Encode(buf []byte, seg, base int64, recs []archive.Record) ([]byte, []stream.Location) {
	locs := make([]stream.Location, len(recs))
	for i, r := range recs {
		h := Header(r)
		buf = append(buf, h[:]...)
		locs[i] = stream.Location{SegmentID: seg, Offset: base + int64(len(buf)), Length: int64(len(r.Data))}
		buf = append(buf, r.Data...)
	}
	return buf, locs
}

// CheckLocation refuses a location no record can be at (before the first
// header, a negative length, longer than the header can say), before a
// store reads or allocates for it.
func CheckLocation(loc stream.Location) error {
	if loc.Offset < HeaderSize || loc.Length < 0 || loc.Length > math.MaxUint32 {
		return fmt.Errorf("no record can be at segment %d offset %d length %d", loc.SegmentID, loc.Offset, loc.Length)
	}
	return nil
}

// Check verifies a record read back (header and data, HeaderSize+length
// bytes) and returns its data.
func Check(rec []byte, length int64) ([]byte, error) {
	if int64(len(rec)) != HeaderSize+length {
		return nil, ErrCorrupt
	}
	h, data := rec[:HeaderSize], rec[HeaderSize:]
	if [4]byte(h[0:4]) != magic || int64(binary.BigEndian.Uint32(h[20:24])) != length ||
		binary.BigEndian.Uint32(h[24:28]) != crc32.Checksum(data, castagnoli) {
		return nil, ErrCorrupt
	}
	return data, nil
}

// RecordSpans turns data ranges (offset, length) into the [start, end)
// spans of their whole records, sorted and with neighbours joined, so that
// a store frees a run of fragments in one operation.
func RecordSpans(ranges [][2]int64) [][2]int64 {
	spans := make([][2]int64, len(ranges))
	for i, r := range ranges {
		spans[i] = [2]int64{r[0] - HeaderSize, r[0] + r[1]}
	}
	slices.SortFunc(spans, func(a, b [2]int64) int { return cmp.Compare(a[0], b[0]) })
	var out [][2]int64
	for _, s := range spans {
		if n := len(out); n > 0 && out[n-1][1] >= s[0] {
			out[n-1][1] = max(out[n-1][1], s[1])
			continue
		}
		out = append(out, s)
	}
	return out
}
