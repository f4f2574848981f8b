package fmp4

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/kinema/kinema/internal/media/mkv"
)

// Sample is one access unit (video) or audio frame.
type Sample struct {
	Track uint64 // MKV track number
	// PTS and DTS are in the track's Timescale and absolute: the producer
	// time since the Unix epoch that the stored cluster carries (or whatever
	// origin the producer's clock had). Callers that need small numbers
	// subtract their own origin.
	PTS, DTS int64
	Duration uint32 // in the track's Timescale
	Keyframe bool   // a random access point; every audio sample is one
	// Data is the frame: length-prefixed NAL units for video (with the
	// track's length size), a raw AAC frame or G.711 bytes for audio. It
	// aliases the cluster passed to FragmentSamples unless the camera sent
	// Annex-B, which is converted.
	Data []byte
}

// FragmentSamples parses one stored cluster into samples per track number,
// each list in decode order. Blocks of tracks not in tracks are skipped.
//
// Timing rules, shared by every output format:
//
//   - Times are the cluster Timecode plus the block's relative timecode,
//     times the header's TimecodeScale, converted to the track timescale by
//     rounding down. Laced frames follow each other by the codec's frame
//     duration.
//   - Audio: DTS = PTS; samples are sorted by PTS (stable).
//   - Video: Matroska has no DTS, and the blocks are in decode order. The
//     DTS of the i-th block is the i-th smallest PTS of the fragment minus a
//     shift S. S is reorder × frame duration, where reorder comes from the
//     SPS (H.264 VUI max_num_reorder_frames, else 0 for profiles without B
//     slices and 2 otherwise; H.265 sps_max_num_reorder_pics) and the frame
//     duration from SPS timing, MKV DefaultDuration, or else the smallest PTS
//     step of the fragment. S therefore depends only on the track set (or,
//     with no frame-rate hint at all, on the frame spacing, which cameras
//     keep regular) and is the same in every fragment, so decode times run
//     on across fragment boundaries. Only when a fragment reorders deeper
//     than that (a camera whose SPS understates it, or VUI timing above the
//     real frame rate) S grows for that fragment to the smallest shift that
//     keeps DTS <= PTS.
//   - Duration: the next sample's DTS minus this one's. For the last sample
//     of a fragment: audio takes the codec's frame duration (1024 AAC
//     samples, or the G.711 sample count), which is exact; video takes the
//     gap to nextFragmentStartNs (the next fragment's start in ns, same
//     origin as the cluster times, minus S) when that is positive, else the
//     previous sample's duration, else the frame duration. Pass 0 when the
//     next fragment is not contiguous (a discontinuity), so that a gap does
//     not become the length of one frame.
//
// Errors wrap mkv.ErrInvalid for a malformed cluster and
// ErrInvalidMediaFrame for a video frame that is neither length-prefixed nor
// Annex-B or times that do not fit.
func FragmentSamples(h mkv.Header, tracks []*Track, cluster []byte, nextFragmentStartNs int64) (map[uint64][]Sample, error) {
	return samplesOf(h, tracks, func(visit func(uint64, mkv.Block) error) error { return walkCluster(cluster, visit) }, nextFragmentStartNs, false)
}

// OpenFragmentSamples is FragmentSamples for a fragment still being
// received: body is its Cluster's content so far (the Timecode and whole
// blocks, without the Cluster's ID and size). Per track it returns only the
// samples whose times can no longer change as more blocks arrive. A
// sample lasts until the next one's decode time (block times are rounded to
// the TimecodeScale, so even audio frames vary), so the newest is never
// final. A video sample's decode time is its rank among the fragment's
// presentation times: with a reorder depth of R, a frame still to come can
// outrank at most R of those already here, so all but the newest R+1 are
// final. The shift that keeps decode times before presentation times must
// not move either: it is fixed by the track's frame duration, so a
// reordering track whose frame rate neither the SPS nor the MKV header
// gives (its frame spacing is then guessed from the whole fragment) has no
// final samples until the fragment is complete. (A camera that reorders
// deeper than its SPS says can still move them; FragmentSamples of the
// whole fragment is then what counts.)
func OpenFragmentSamples(h mkv.Header, tracks []*Track, body []byte) (map[uint64][]Sample, error) {
	out, err := samplesOf(h, tracks, func(visit func(uint64, mkv.Block) error) error { return walkClusterBody(body, 0, nil, visit) }, 0, true)
	if err != nil {
		return nil, err
	}
	for num, ss := range out {
		t := findTrack(tracks, num)
		keep := len(ss) - 1
		if t.Kind == Video {
			keep -= t.reorder
			if t.reorder > 0 && t.frameDur == 0 {
				keep = 0
			}
		}
		out[num] = ss[:max(keep, 0)]
	}
	return out, nil
}

// samplesOf collects and times the samples of the blocks walk visits; open
// says more blocks are still to come.
func samplesOf(h mkv.Header, tracks []*Track, walk func(visit func(uint64, mkv.Block) error) error, nextFragmentStartNs int64, open bool) (map[uint64][]Sample, error) {
	scale := int64(h.TimecodeScale)
	if h.TimecodeScale == 0 {
		scale = mkv.DefaultTimecodeScale
	}
	if h.TimecodeScale > math.MaxInt64 {
		return nil, fmt.Errorf("%w: TimecodeScale %d", mkv.ErrInvalid, h.TimecodeScale)
	}
	out := make(map[uint64][]Sample, len(tracks))
	err := walk(func(tc uint64, b mkv.Block) error {
		t := findTrack(tracks, b.Track)
		if t == nil {
			return nil
		}
		ns, ok := blockTimeNs(tc, b.Timecode, scale)
		if !ok {
			return fmt.Errorf("%w: block time %d%+d ticks of %d ns overflows", ErrInvalidMediaFrame, tc, b.Timecode, scale)
		}
		frames, err := b.Frames()
		if err != nil {
			return err
		}
		pts := nsToTimescale(ns, t.Timescale)
		for _, f := range frames {
			if len(f) == 0 {
				continue // nothing to decode; an empty MP4 sample would only confuse players
			}
			s := Sample{Track: t.Number, PTS: pts, Keyframe: b.Keyframe || t.Kind == Audio, Data: f}
			if t.Kind == Video {
				if s.Data, err = t.lengthPrefixed(f); err != nil {
					return err
				}
			}
			out[t.Number] = append(out[t.Number], s)
			pts += t.nominalDuration(len(f))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for num, ss := range out {
		t := findTrack(tracks, num)
		var err error
		if t.Kind == Video {
			ranked := len(ss) // samples whose decode-order rank is final
			if open {
				ranked -= t.reorder
			}
			err = t.videoTiming(ss, nextFragmentStartNs, ranked)
		} else {
			err = t.audioTiming(ss)
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func findTrack(tracks []*Track, num uint64) *Track {
	for _, t := range tracks {
		if t.Number == num {
			return t
		}
	}
	return nil
}

// blockTimeNs is (tc + rel) × scale in ns, or false when it overflows.
func blockTimeNs(tc uint64, rel int16, scale int64) (int64, bool) {
	if tc > math.MaxInt64/2 {
		return 0, false
	}
	ticks := int64(tc) + int64(rel)
	if ticks > math.MaxInt64/scale || ticks < math.MinInt64/scale {
		return 0, false
	}
	return ticks * scale, true
}

// nsToTimescale converts ns to ticks of timescale, rounding down (also for
// negative times, so that conversion is monotonic). It splits seconds from
// the remainder so that epoch-scale nanoseconds never overflow.
func nsToTimescale(ns int64, timescale uint32) int64 {
	sec, rem := ns/1e9, ns%1e9
	if rem < 0 {
		sec, rem = sec-1, rem+1e9
	}
	return sec*int64(timescale) + rem*int64(timescale)/1e9
}

// videoTiming fills DTS and Duration of one fragment's video samples, which
// are in decode order (see FragmentSamples).
// Only the first ranked samples count towards the shift: the others' ranks
// may still change (see OpenFragmentSamples).
func (t *Track) videoTiming(ss []Sample, nextStartNs int64, ranked int) error {
	sorted := make([]int64, len(ss))
	for i := range ss {
		sorted[i] = ss[i].PTS
	}
	slices.Sort(sorted)
	var need int64 // the smallest shift with DTS <= PTS everywhere
	for i := range ss[:max(ranked, 0)] {
		need = max(need, sorted[i]-ss[i].PTS)
	}
	fd := t.frameDur
	if fd == 0 {
		for i := 1; i < len(sorted); i++ {
			if d := sorted[i] - sorted[i-1]; d > 0 && (fd == 0 || d < fd) {
				fd = d
			}
		}
	}
	shift := max(int64(t.reorder)*fd, need)
	for i := range ss {
		ss[i].DTS = sorted[i] - shift
	}
	n := len(ss)
	last := int64(0)
	if nextStartNs > 0 {
		last = nsToTimescale(nextStartNs, t.Timescale) - shift - ss[n-1].DTS
	}
	if last <= 0 && n > 1 {
		last = ss[n-1].DTS - ss[n-2].DTS
	}
	if last <= 0 {
		last = fd
	}
	return setDurations(ss, last, t.Timescale)
}

// audioTiming fills DTS and Duration of one fragment's audio samples.
func (t *Track) audioTiming(ss []Sample) error {
	slices.SortStableFunc(ss, func(a, b Sample) int { return cmp.Compare(a.PTS, b.PTS) })
	for i := range ss {
		ss[i].DTS = ss[i].PTS
	}
	n := len(ss)
	last := t.nominalDuration(len(ss[n-1].Data))
	if last <= 0 && n > 1 {
		last = ss[n-1].DTS - ss[n-2].DTS
	}
	return setDurations(ss, last, t.Timescale)
}

// setDurations sets each duration to the next DTS minus this one, and the
// last one to last; when that is unknown too (a lone sample without any
// hint), to 1/25 s.
func setDurations(ss []Sample, last int64, timescale uint32) error {
	n := len(ss)
	for i := 0; i < n-1; i++ {
		d := ss[i+1].DTS - ss[i].DTS
		if d < 0 || d > math.MaxUint32 {
			return fmt.Errorf("%w: track %d: a sample lasts %d ticks", ErrInvalidMediaFrame, ss[i].Track, d)
		}
		ss[i].Duration = uint32(d)
	}
	if last <= 0 {
		last = int64(timescale / 25)
	}
	if last > math.MaxUint32 {
		return fmt.Errorf("%w: track %d: the last sample lasts %d ticks", ErrInvalidMediaFrame, ss[n-1].Track, last)
	}
	ss[n-1].Duration = uint32(last)
	return nil
}

// lengthPrefixed returns the frame as NAL units behind length fields of the
// track's length size. Frames that already are (the normal case) are
// returned as they are; Annex-B frames, which some producers send despite
// their avcC, are converted into a new slice.
func (t *Track) lengthPrefixed(f []byte) ([]byte, error) {
	if validLengthPrefixed(f, t.lengthSize) {
		return f, nil
	}
	if isAnnexB(f) {
		units := splitAnnexB(f)
		size := 0
		for _, u := range units {
			if t.lengthSize < 4 && len(u) >= 1<<(8*t.lengthSize) {
				return nil, fmt.Errorf("%w: track %d: NAL unit of %d bytes with %d-byte lengths", ErrInvalidMediaFrame, t.Number, len(u), t.lengthSize)
			}
			size += t.lengthSize + len(u)
		}
		if len(units) > 0 {
			out := make([]byte, 0, size)
			for _, u := range units {
				for i := t.lengthSize - 1; i >= 0; i-- {
					out = append(out, byte(len(u)>>(8*i)))
				}
				out = append(out, u...)
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("%w: track %d: frame of %d bytes is neither length-prefixed nor Annex-B", ErrInvalidMediaFrame, t.Number, len(f))
}

// validLengthPrefixed reports whether f is a sequence of non-empty NAL units
// behind lengthSize-byte lengths that ends exactly at the end of f.
func validLengthPrefixed(f []byte, lengthSize int) bool {
	n := 0
	for pos := 0; pos < len(f); n++ {
		if len(f)-pos < lengthSize {
			return false
		}
		l := 0
		for _, c := range f[pos : pos+lengthSize] {
			l = l<<8 | int(c)
		}
		pos += lengthSize
		if l == 0 || l > len(f)-pos {
			return false
		}
		pos += l
	}
	return n > 0
}

// splitNALUs splits a length-prefixed frame into its units. Empty units are
// dropped and a unit that overruns the frame ends it, so that samples built
// by hand cannot make the writers index an empty unit.
func splitNALUs(f []byte, lengthSize int, dst [][]byte) [][]byte {
	for pos := 0; lengthSize > 0 && pos+lengthSize <= len(f); {
		l := 0
		for _, c := range f[pos : pos+lengthSize] {
			l = l<<8 | int(c)
		}
		pos += lengthSize
		if l > len(f)-pos {
			break
		}
		if l > 0 {
			dst = append(dst, f[pos:pos+l:pos+l])
		}
		pos += l
	}
	return dst
}
