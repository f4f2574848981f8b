package fmp4

import (
	"errors"
	"math"
)

// movieTimescale is the mvhd timescale of a clip: milliseconds, the
// precision of the producer's timestamps.
const movieTimescale = 1000

// clipTables accumulates one track's sample tables while a clip is planned.
type clipTables struct {
	t          *Track
	sizes      []uint32
	durs       []uint32
	ctts       []int32
	sync       []uint32 // 1-based numbers of key frames
	chunkOff   []int64  // chunk offsets inside the mdat payload
	chunkCount []uint32 // samples per chunk
	firstDTS   int64    // absolute DTS of the first sample
	lastDTS    int64    // absolute DTS of the last sample so far
}

// add appends one fragment's run as a chunk at payload offset off and
// returns its size in bytes. The previous fragment's last sample is
// stretched (or shrunk) to end where this run starts, when that is a
// positive duration; otherwise it keeps the duration it had.
func (tb *clipTables) add(run *ClipRun, off int64) (int64, error) {
	if len(tb.sizes)+len(run.Samples) > math.MaxUint32 {
		return 0, errors.New("too many samples")
	}
	if len(tb.sizes) == 0 {
		tb.firstDTS = run.FirstDTS
	} else if gap := run.FirstDTS - tb.lastDTS; gap > 0 && gap <= math.MaxUint32 {
		tb.durs[len(tb.durs)-1] = uint32(gap)
	}
	dts, n := run.FirstDTS, int64(0)
	for i, s := range run.Samples {
		tb.sizes = append(tb.sizes, s.Size)
		tb.durs = append(tb.durs, s.Duration)
		tb.ctts = append(tb.ctts, s.CompOffset)
		if s.Keyframe {
			tb.sync = append(tb.sync, uint32(len(tb.sizes)))
		}
		n += int64(s.Size)
		if i < len(run.Samples)-1 {
			dts += int64(s.Duration)
		}
	}
	tb.lastDTS = dts
	tb.chunkOff = append(tb.chunkOff, off)
	tb.chunkCount = append(tb.chunkCount, uint32(len(run.Samples)))
	return n, nil
}

// presentation returns, in the track timescale and relative to the first
// DTS, when the first sample is presented and when the last one ends.
func (tb *clipTables) presentation() (first, end int64) {
	first = math.MaxInt64
	var dts int64
	for i, d := range tb.durs {
		pts := dts + int64(tb.ctts[i])
		first = min(first, pts)
		end = max(end, pts+int64(d))
		dts += int64(d)
	}
	return max(first, 0), max(end, dts)
}

// startNs is when the track's first sample is presented, in absolute ns.
func (tb *clipTables) startNs() int64 {
	first, _ := tb.presentation()
	return ticksToNs(tb.firstDTS+first, tb.t.Timescale)
}

// ticksToNs converts ticks of timescale to ns, rounding down, without
// overflowing on epoch-scale values.
func ticksToNs(v int64, timescale uint32) int64 {
	ts := int64(timescale)
	sec, rem := v/ts, v%ts
	if rem < 0 {
		sec, rem = sec-1, rem+ts
	}
	return sec*1e9 + rem*1e9/ts
}

// appendClipMoov appends the moov of a progressive MP4 whose mdat payload
// starts at file offset base.
func appendClipMoov(b []byte, tabs []*clipTables, originNs, base int64, co64 bool) ([]byte, error) {
	var movieDur uint64
	type trackTimes struct{ empty, media, mediaStart, mediaDur uint64 }
	times := make([]trackTimes, len(tabs))
	for k, tb := range tabs {
		first, end := tb.presentation()
		ts := uint64(tb.t.Timescale)
		var mediaDur uint64
		for _, d := range tb.durs {
			mediaDur += uint64(d)
		}
		tt := trackTimes{
			empty:      uint64(max(tb.startNs()-originNs, 0)) / (1e9 / movieTimescale),
			media:      (uint64(end-first)*movieTimescale + ts - 1) / ts, // rounded up: never cut the last frame
			mediaStart: uint64(first),
			mediaDur:   mediaDur,
		}
		times[k] = tt
		movieDur = max(movieDur, tt.empty+tt.media)
	}
	b, moov := start(b, "moov")
	b = appendMvhd(b, movieTimescale, movieDur, nextTrackID(trackList(tabs)))
	for k, tb := range tabs {
		tt := times[k]
		var trak, mdia, minf, stbl int
		b, trak = start(b, "trak")
		b = appendTkhd(b, tb.t, tt.empty+tt.media)
		b = appendElst(b, tt.empty, tt.media, tt.mediaStart)
		b, mdia = start(b, "mdia")
		b = appendMdiaHead(b, tb.t, tt.mediaDur)
		b, minf = start(b, "minf")
		b = appendMinfHead(b, tb.t)
		b, stbl = start(b, "stbl")
		var err error
		if b, err = appendStsd(b, tb.t); err != nil {
			return nil, err
		}
		b = tb.appendTables(b, base, co64)
		b = end(b, stbl)
		b = end(b, minf)
		b = end(b, mdia)
		b = end(b, trak)
	}
	return end(b, moov), nil
}

func trackList(tabs []*clipTables) []*Track {
	ts := make([]*Track, len(tabs))
	for i, tb := range tabs {
		ts[i] = tb.t
	}
	return ts
}

// appendElst appends an edit list: an empty edit for the time before the
// track starts, then the media from mediaStart (which skips the video
// decode-time shift) at normal rate.
func appendElst(b []byte, empty, media, mediaStart uint64) []byte {
	b, edts := start(b, "edts")
	v1 := max(empty, media, mediaStart) > math.MaxInt32
	var version byte
	if v1 {
		version = 1
	}
	b, elst := startFull(b, "elst", version, 0)
	n := uint32(1)
	if empty > 0 {
		n = 2
	}
	b = be32(b, n)
	entry := func(b []byte, dur uint64, mediaTime int64) []byte {
		if v1 {
			b = be64(be64(b, dur), uint64(mediaTime))
		} else {
			b = be32(be32(b, uint32(dur)), uint32(int32(mediaTime)))
		}
		return be32(b, 0x00010000) // media_rate 1.0
	}
	if empty > 0 {
		b = entry(b, empty, -1)
	}
	b = entry(b, media, int64(mediaStart))
	b = end(b, elst)
	return end(b, edts)
}

// appendTables appends stts, ctts (when any offset is not zero), stss (when
// not every sample is a key frame), stsc, stsz and stco or co64.
func (tb *clipTables) appendTables(b []byte, base int64, co64 bool) []byte {
	b = appendRuns(b, "stts", 0, len(tb.durs), func(i int) uint32 { return tb.durs[i] })
	var anyOffset, negative bool
	for _, c := range tb.ctts {
		anyOffset = anyOffset || c != 0
		negative = negative || c < 0
	}
	if anyOffset {
		var version byte
		if negative {
			version = 1 // signed offsets (ISO/IEC 14496-12 8.6.1.3)
		}
		b = appendRuns(b, "ctts", version, len(tb.ctts), func(i int) uint32 { return uint32(tb.ctts[i]) })
	}
	if len(tb.sync) < len(tb.sizes) {
		var off int
		b, off = startFull(b, "stss", 0, 0)
		b = be32(b, uint32(len(tb.sync)))
		for _, n := range tb.sync {
			b = be32(b, n)
		}
		b = end(b, off)
	}

	b, off := startFull(b, "stsc", 0, 0)
	at := len(b)
	b = be32(b, 0)
	entries := uint32(0)
	for i, c := range tb.chunkCount {
		if i == 0 || c != tb.chunkCount[i-1] {
			b = be32(be32(be32(b, uint32(i+1)), c), 1) // first chunk, samples per chunk, description 1
			entries++
		}
	}
	putBE32(b[at:], entries)
	b = end(b, off)

	b, off = startFull(b, "stsz", 0, 0)
	same := true
	for _, s := range tb.sizes {
		same = same && s == tb.sizes[0]
	}
	if same {
		b = be32(be32(b, tb.sizes[0]), uint32(len(tb.sizes)))
	} else {
		b = be32(be32(b, 0), uint32(len(tb.sizes)))
		for _, s := range tb.sizes {
			b = be32(b, s)
		}
	}
	b = end(b, off)

	if co64 {
		b, off = startFull(b, "co64", 0, 0)
		b = be32(b, uint32(len(tb.chunkOff)))
		for _, o := range tb.chunkOff {
			b = be64(b, uint64(base+o))
		}
	} else {
		b, off = startFull(b, "stco", 0, 0)
		b = be32(b, uint32(len(tb.chunkOff)))
		for _, o := range tb.chunkOff {
			b = be32(b, uint32(base+o))
		}
	}
	return end(b, off)
}

// appendRuns appends a run-length table (stts, ctts): entry count, then
// (count, value) pairs for n values.
func appendRuns(b []byte, typ string, version byte, n int, value func(int) uint32) []byte {
	b, off := startFull(b, typ, version, 0)
	at := len(b)
	b = be32(b, 0)
	entries := uint32(0)
	for i := 0; i < n; {
		v, j := value(i), i+1
		for j < n && value(j) == v {
			j++
		}
		b = be32(be32(b, uint32(j-i)), v)
		entries++
		i = j
	}
	putBE32(b[at:], entries)
	return end(b, off)
}

func putBE32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}
