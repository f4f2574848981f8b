package fmp4

import (
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/kinema/kinema/internal/media/mkv"
)

// ClipSample is one sample's row in a progressive MP4's sample tables.
type ClipSample struct {
	Size       uint32
	Duration   uint32 // track timescale
	CompOffset int32  // PTS - DTS
	Keyframe   bool
}

// ClipRun is one track's samples in one fragment, in decode order.
type ClipRun struct {
	Track    uint64
	FirstDTS int64 // absolute, track timescale (as Sample.DTS)
	Samples  []ClipSample
}

// ClipFragment is what PlanClip needs to know about one fragment: sizes and
// times, no media. A one-hour clip's fragments take a few MB.
type ClipFragment struct {
	Runs []ClipRun // one per track with samples in the fragment
}

// FragmentIndex reads a stored cluster's sample table: the same samples,
// sizes and times that FragmentSamples gives (with nextFragmentStartNs 0:
// PlanClip fixes the last durations from the next fragment), without
// keeping any media.
func FragmentIndex(h mkv.Header, tracks []*Track, cluster []byte) (ClipFragment, error) {
	samples, err := FragmentSamples(h, tracks, cluster, 0)
	if err != nil {
		return ClipFragment{}, err
	}
	return IndexSamples(tracks, samples), nil
}

// IndexSamples is FragmentIndex for samples already parsed.
func IndexSamples(tracks []*Track, samples map[uint64][]Sample) ClipFragment {
	var f ClipFragment
	for _, t := range tracks {
		ss := samples[t.Number]
		if len(ss) == 0 {
			continue
		}
		run := ClipRun{Track: t.Number, FirstDTS: ss[0].DTS, Samples: make([]ClipSample, len(ss))}
		for i := range ss {
			run.Samples[i] = ClipSample{
				Size:       uint32(min(len(ss[i].Data), math.MaxUint32)),
				Duration:   ss[i].Duration,
				CompOffset: int32(max(min(ss[i].PTS-ss[i].DTS, math.MaxInt32), math.MinInt32)),
				Keyframe:   ss[i].Keyframe,
			}
		}
		f.Runs = append(f.Runs, run)
	}
	return f
}

// ClipLayout is a planned progressive MP4: ftyp, moov (faststart), then one
// mdat holding, per fragment, one chunk per track (in the order of the
// tracks given to PlanClip) with that fragment's samples in decode order.
// Every byte offset is known before any media is read, so a server can
// answer a Range request by building only the fragments it touches.
type ClipLayout struct {
	header []byte
	frags  []plannedFragment
	size   int64
}

type plannedFragment struct {
	off, size int64
	runs      []plannedRun
}

type plannedRun struct {
	track uint64
	count int
	bytes int64
}

// Size is the length of the whole file.
func (l *ClipLayout) Size() int64 { return l.size }

// Header returns ftyp, moov and the mdat box header: the first bytes of the
// file, up to the first fragment's payload. The slice is shared; do not
// modify it.
func (l *ClipLayout) Header() []byte { return l.header }

// Fragments is the number of planned fragments.
func (l *ClipLayout) Fragments() int { return len(l.frags) }

// FragmentRange returns where fragment i's payload lies in the file.
func (l *ClipLayout) FragmentRange(i int) (off, size int64) {
	return l.frags[i].off, l.frags[i].size
}

// AppendFragmentPayload appends fragment i's part of the mdat: the samples
// of each planned track in order. samples must be what FragmentSamples gave
// for the cluster that FragmentIndex planned; a mismatch (the stored data
// changed) is an error rather than a corrupt file.
func (l *ClipLayout) AppendFragmentPayload(dst []byte, i int, samples map[uint64][]Sample) ([]byte, error) {
	if i < 0 || i >= len(l.frags) {
		return nil, fmt.Errorf("fmp4: fragment %d of a clip of %d", i, len(l.frags))
	}
	start := len(dst)
	for _, r := range l.frags[i].runs {
		ss := samples[r.track]
		if len(ss) != r.count {
			return nil, fmt.Errorf("fmp4: clip fragment %d track %d: %d samples, %d planned", i, r.track, len(ss), r.count)
		}
		for k := range ss {
			dst = append(dst, ss[k].Data...)
		}
	}
	if n := int64(len(dst) - start); n != l.frags[i].size {
		return nil, fmt.Errorf("fmp4: clip fragment %d: %d bytes, %d planned", i, n, l.frags[i].size)
	}
	return dst, nil
}

// WriteRange writes bytes [from, to) of the file to w. payload(i) returns
// fragment i's payload (AppendFragmentPayload); it is called only for the
// fragments that the range touches, in order.
func (l *ClipLayout) WriteRange(w io.Writer, from, to int64, payload func(i int) ([]byte, error)) error {
	if from < 0 || to > l.size || from > to {
		return fmt.Errorf("fmp4: range [%d, %d) of a %d-byte clip", from, to, l.size)
	}
	if from < int64(len(l.header)) {
		if _, err := w.Write(l.header[from:min(to, int64(len(l.header)))]); err != nil {
			return err
		}
	}
	for i := l.firstFragmentAt(from); i < len(l.frags) && l.frags[i].off < to; i++ {
		f := &l.frags[i]
		if f.size == 0 {
			continue
		}
		p, err := payload(i)
		if err != nil {
			return err
		}
		if int64(len(p)) != f.size {
			return fmt.Errorf("fmp4: clip fragment %d: %d bytes, %d planned", i, len(p), f.size)
		}
		a, b := max(from, f.off)-f.off, min(to, f.off+f.size)-f.off
		if _, err := w.Write(p[a:b]); err != nil {
			return err
		}
	}
	return nil
}

// firstFragmentAt is the first fragment whose payload ends after off.
func (l *ClipLayout) firstFragmentAt(off int64) int {
	lo, hi := 0, len(l.frags)
	for lo < hi {
		m := (lo + hi) / 2
		if l.frags[m].off+l.frags[m].size <= off {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// PlanClip lays out a progressive MP4 of the given fragments (in time
// order) and tracks. Each track's timeline starts at its first sample; an
// edit list places it against the clip's start (the earliest first PTS of
// any track) and skips the video decode-time shift, so that players show the
// first frame at its presentation time and keep audio in sync. The last
// sample of a fragment lasts until the next fragment's first sample of the
// same track, which keeps every fragment at its producer time across gaps.
func PlanClip(tracks []*Track, fragments []ClipFragment) (*ClipLayout, error) {
	if len(tracks) == 0 {
		return nil, errors.New("fmp4: PlanClip without tracks")
	}
	tabs := make([]*clipTables, len(tracks))
	for k, t := range tracks {
		tabs[k] = &clipTables{t: t}
	}
	l := &ClipLayout{frags: make([]plannedFragment, len(fragments))}
	var payload int64 // running offset inside the mdat payload
	for i := range fragments {
		f := &l.frags[i]
		f.off = payload
		for k, t := range tracks {
			run := findRun(fragments[i].Runs, t.Number)
			if run == nil || len(run.Samples) == 0 {
				continue
			}
			n, err := tabs[k].add(run, payload)
			if err != nil {
				return nil, fmt.Errorf("fmp4: clip fragment %d: %w", i, err)
			}
			f.runs = append(f.runs, plannedRun{track: t.Number, count: len(run.Samples), bytes: n})
			payload += n
		}
		f.size = payload - f.off
	}
	var used []*clipTables
	for _, tb := range tabs {
		if len(tb.sizes) > 0 {
			used = append(used, tb)
		}
	}
	if len(used) == 0 {
		return nil, errors.New("fmp4: clip without samples")
	}
	origin := used[0].startNs()
	for _, tb := range used[1:] {
		origin = min(origin, tb.startNs())
	}
	// The moov's size depends on whether chunk offsets need 64 bits, and
	// the offsets depend on the moov's size: measure, then write for real.
	ftyp := appendFtyp(nil, "isom", "isom", "iso2", "iso6", "mp41")
	var moov []byte
	co64 := false
	for {
		base := int64(len(ftyp)+len(moov)) + mdatHeaderLen(payload)
		co64 = co64 || base+payload > math.MaxUint32
		next, err := appendClipMoov(nil, used, origin, base, co64)
		if err != nil {
			return nil, err
		}
		done := len(next) == len(moov) // base was computed with this size
		moov = next
		if done {
			break
		}
	}
	base := int64(len(ftyp)+len(moov)) + mdatHeaderLen(payload)
	l.header = appendMdatHeader(append(ftyp, moov...), uint64(payload))
	for i := range l.frags {
		l.frags[i].off += base
	}
	l.size = base + payload
	return l, nil
}

func mdatHeaderLen(payload int64) int64 {
	if payload+8 > math.MaxUint32 {
		return 16
	}
	return 8
}

func findRun(runs []ClipRun, track uint64) *ClipRun {
	for i := range runs {
		if runs[i].Track == track {
			return &runs[i]
		}
	}
	return nil
}
