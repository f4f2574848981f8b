package fmp4

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/kinema/kinema/internal/media/mkv"
)

// A ClipFragment is kept with each fragment in the index, written at
// ingest, so that a clip's moov can be laid out without reading its media:
// for an hour of 2 s fragments that is ~1,800 small rows instead of ~900 MB
// (docs/benchmarks.md). The encoding is compact because it is stored for
// every fragment ever ingested (about 0.03–0.07 % of the media at 2 Mbit/s):
//
//	version 1, uvarint run count, then per run:
//	  uvarint track, varint first DTS, uvarint sample count, flags byte
//	  (1: every sample has the same duration, 2: some sample has a
//	  composition offset), [uvarint the duration if flag 1],
//	  per sample uvarint size<<1 | key frame,
//	  [per sample uvarint duration unless flag 1],
//	  [per sample varint composition offset if flag 2].
const clipIndexVersion = 1

const (
	clipRunConstDuration = 1
	clipRunCompOffsets   = 2
)

// SampleTable is a stored cluster's sample table in the encoding kept in
// the index (stream.Fragment.SampleTable): FragmentIndex, encoded.
func SampleTable(h mkv.Header, tracks []*Track, cluster []byte) ([]byte, error) {
	cf, err := FragmentIndex(h, tracks, cluster)
	if err != nil {
		return nil, err
	}
	return AppendClipFragment(nil, cf), nil
}

// AppendClipFragment appends f's encoding to dst.
func AppendClipFragment(dst []byte, f ClipFragment) []byte {
	dst = append(dst, clipIndexVersion)
	dst = binary.AppendUvarint(dst, uint64(len(f.Runs)))
	for _, r := range f.Runs {
		var flags byte = clipRunConstDuration
		for _, s := range r.Samples {
			if s.Duration != r.Samples[0].Duration {
				flags &^= clipRunConstDuration
			}
			if s.CompOffset != 0 {
				flags |= clipRunCompOffsets
			}
		}
		dst = binary.AppendUvarint(dst, r.Track)
		dst = binary.AppendVarint(dst, r.FirstDTS)
		dst = binary.AppendUvarint(dst, uint64(len(r.Samples)))
		dst = append(dst, flags)
		if flags&clipRunConstDuration != 0 && len(r.Samples) > 0 {
			dst = binary.AppendUvarint(dst, uint64(r.Samples[0].Duration))
		}
		for _, s := range r.Samples {
			v := uint64(s.Size) << 1
			if s.Keyframe {
				v |= 1
			}
			dst = binary.AppendUvarint(dst, v)
		}
		if flags&clipRunConstDuration == 0 {
			for _, s := range r.Samples {
				dst = binary.AppendUvarint(dst, uint64(s.Duration))
			}
		}
		if flags&clipRunCompOffsets != 0 {
			for _, s := range r.Samples {
				dst = binary.AppendVarint(dst, int64(s.CompOffset))
			}
		}
	}
	return dst
}

var errClipIndex = errors.New("fmp4: malformed clip index")

// ParseClipFragment decodes what AppendClipFragment wrote.
func ParseClipFragment(b []byte) (ClipFragment, error) {
	d := clipIndexDecoder{b: b}
	if d.byte() != clipIndexVersion {
		return ClipFragment{}, fmt.Errorf("%w: unknown version", errClipIndex)
	}
	var f ClipFragment
	// Every run takes at least 4 bytes and every sample 1: counts beyond
	// what is left are corrupt, and checking first keeps a bad row from
	// allocating gigabytes.
	nRuns := d.count(4)
	for range nRuns {
		r := ClipRun{Track: d.uvarint(), FirstDTS: d.varint()}
		n := d.count(1)
		flags := d.byte()
		r.Samples = make([]ClipSample, n)
		var dur uint64
		if flags&clipRunConstDuration != 0 && n > 0 {
			dur = d.uvarint()
		}
		for i := range r.Samples {
			v := d.uvarint()
			r.Samples[i] = ClipSample{Size: uint32(v >> 1), Keyframe: v&1 != 0, Duration: uint32(dur)}
			if v>>1 > 1<<32-1 || dur > 1<<32-1 {
				d.err = errClipIndex
			}
		}
		if flags&clipRunConstDuration == 0 {
			for i := range r.Samples {
				v := d.uvarint()
				if v > 1<<32-1 {
					d.err = errClipIndex
				}
				r.Samples[i].Duration = uint32(v)
			}
		}
		if flags&clipRunCompOffsets != 0 {
			for i := range r.Samples {
				v := d.varint()
				if v != int64(int32(v)) {
					d.err = errClipIndex
				}
				r.Samples[i].CompOffset = int32(v)
			}
		}
		if flags&^(clipRunConstDuration|clipRunCompOffsets) != 0 {
			d.err = errClipIndex
		}
		if d.err != nil {
			return ClipFragment{}, d.err
		}
		f.Runs = append(f.Runs, r)
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", errClipIndex, len(d.b))
	}
	if d.err != nil {
		return ClipFragment{}, d.err
	}
	return f, nil
}

// clipIndexDecoder reads varints, remembering the first error; once it has
// failed every read returns zero.
type clipIndexDecoder struct {
	b   []byte
	err error
}

func (d *clipIndexDecoder) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.err = errClipIndex
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *clipIndexDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errClipIndex
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *clipIndexDecoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errClipIndex
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a count of items that take at least min bytes each.
func (d *clipIndexDecoder) count(min int) int {
	v := d.uvarint()
	if v > uint64(len(d.b)/min) {
		d.err = errClipIndex
		return 0
	}
	return int(v)
}
