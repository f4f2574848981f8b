package fmp4

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"
)

// tsPacketSize is the size of an MPEG-TS packet.
const tsPacketSize = 188

// TSState carries the continuity counters of one playlist's TS segments, so
// that consecutive segments play as one stream without a discontinuity at
// every boundary. The zero value is ready; it is not safe for concurrent
// use. Keep one per playlist (and reset it where the playlist says
// EXT-X-DISCONTINUITY, or keep it: both are valid).
type TSState struct {
	next map[uint16]byte // PID -> continuity counter of its next packet with payload
}

// audioPESFrames is how many contiguous AAC frames share one PES packet:
// fewer packets than one per frame, and still about 85 ms at 48 kHz.
const audioPESFrames = 4

// maxADTSPayload is the largest AAC frame an ADTS header can describe (13
// bits of frame length, 7 of them header).
const maxADTSPayload = 1<<13 - 1 - 7

// tsEvent is one sample in the muxed order.
type tsEvent struct {
	t       *Track
	mt      *mpegts.Track
	samples []Sample
	i       int
	dts90   int64
}

// AppendTS appends one MPEG-TS segment holding the samples of every given
// track, muxed in decode order: PAT and PMT first, H.264/H.265 as Annex-B
// with an access unit delimiter and, before each key frame, whichever of the
// VPS, SPS and PPS the frame lacks (taken from the CodecPrivate); AAC in
// ADTS. PTS and DTS are the samples' absolute times at 90 kHz, modulo 2^33
// as MPEG-TS counts them. st carries continuity counters across the
// segments of one playlist; nil starts them at zero. PIDs are 0x100 plus the
// track number, so they are stable across segments. G.711 cannot be carried
// (ErrUnsupportedCodec): pass only tracks whose SupportsTS is true.
func AppendTS(dst []byte, st *TSState, tracks []*Track, samples map[uint64][]Sample) ([]byte, error) {
	if len(tracks) == 0 {
		return nil, fmt.Errorf("fmp4: AppendTS without tracks")
	}
	mts := make([]*mpegts.Track, len(tracks))
	var events []tsEvent
	for k, t := range tracks {
		if !t.SupportsTS() {
			return nil, fmt.Errorf("%w: %s cannot be carried in MPEG-TS", ErrUnsupportedCodec, t.Codec)
		}
		// 0x100 + number stays below the PMT's PID (0x1000); the rare
		// larger track number gets a PID above it, by position.
		mt := &mpegts.Track{PID: 0x1100 + uint16(k)}
		if t.Number < 0x0F00 {
			mt.PID = 0x100 + uint16(t.Number)
		}
		switch {
		case t.Kind == Audio:
			mt.Codec = &tscodecs.MPEG4Audio{Config: *t.asc}
		case t.hevc:
			mt.Codec = &tscodecs.H265{}
		default:
			mt.Codec = &tscodecs.H264{}
		}
		mts[k] = mt
		ss := samples[t.Number]
		for i := range ss {
			if ss[i].Track != t.Number {
				return nil, fmt.Errorf("fmp4: sample of track %d listed under track %d", ss[i].Track, t.Number)
			}
			events = append(events, tsEvent{t: t, mt: mt, samples: ss, i: i, dts90: to90kHz(ss[i].DTS, t.Timescale)})
		}
	}
	if len(events) == 0 {
		return nil, fmt.Errorf("fmp4: TS segment without samples")
	}
	// Decode order across tracks, video first at equal times. The first
	// packet written also decides the PCR track (mpegts.Writer takes the
	// first one written), so a video frame goes first whenever there is one.
	slices.SortStableFunc(events, func(a, b tsEvent) int {
		if c := cmp.Compare(a.dts90, b.dts90); c != 0 {
			return c
		}
		return cmp.Compare(a.t.Kind, b.t.Kind)
	})
	if v := slices.IndexFunc(events, func(e tsEvent) bool { return e.t.Kind == Video }); v > 0 {
		first := events[v]
		copy(events[1:v+1], events[:v])
		events[0] = first
	}

	w := &appendWriter{b: dst}
	start := len(dst)
	tw := &mpegts.Writer{W: w, Tracks: mts}
	if err := tw.Initialize(); err != nil {
		return nil, fmt.Errorf("fmp4: TS writer: %w", err)
	}
	var au, aus [][]byte
	for k := 0; k < len(events); k++ {
		e := events[k]
		s := &e.samples[e.i]
		pts := to90kHz(s.PTS, e.t.Timescale)
		var err error
		switch {
		case e.t.Kind == Audio:
			if len(s.Data) > maxADTSPayload {
				return nil, fmt.Errorf("%w: track %d: AAC frame of %d bytes does not fit ADTS", ErrInvalidMediaFrame, e.t.Number, len(s.Data))
			}
			aus = append(aus[:0], s.Data)
			for len(aus) < audioPESFrames && k+1 < len(events) && contiguous(e, events[k+1]) &&
				len(events[k+1].samples[events[k+1].i].Data) <= maxADTSPayload {
				k++
				e = events[k]
				aus = append(aus, e.samples[e.i].Data)
			}
			err = tw.WriteMPEG4Audio(e.mt, pts, aus)
		default:
			au = e.t.accessUnit(au[:0], s)
			if len(au) == 0 {
				continue
			}
			if e.t.hevc {
				err = tw.WriteH265(e.mt, pts, e.dts90, au)
			} else {
				err = tw.WriteH264(e.mt, pts, e.dts90, au)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%w: track %d: %v", ErrInvalidMediaFrame, e.t.Number, err)
		}
	}
	out := w.b
	if st == nil {
		st = &TSState{}
	}
	st.renumber(out[start:])
	return out, nil
}

// contiguous reports whether next is the same audio track's next frame,
// starting where e's frame ends (within a millisecond), so that both can
// share a PES packet and its one PTS.
func contiguous(e, next tsEvent) bool {
	if next.t != e.t {
		return false
	}
	s, n := &e.samples[e.i], &next.samples[next.i]
	gap := n.PTS - (s.PTS + int64(s.Duration))
	tol := int64(e.t.Timescale / 1000)
	return gap >= -tol && gap <= tol
}

// accessUnit splits a video sample into NAL units and, for a key frame,
// adds the parameter sets it lacks after any access unit delimiter, in the
// order VPS, SPS, PPS: an HLS player may join at any segment, and cameras
// that send parameter sets only once (or no VPS) would leave it unable to
// decode.
func (t *Track) accessUnit(au [][]byte, s *Sample) [][]byte {
	nalus := splitNALUs(s.Data, t.lengthSize, nil)
	if len(nalus) == 0 || !s.Keyframe {
		return append(au, nalus...)
	}
	var have [3]bool // VPS, SPS, PPS present
	for _, u := range nalus {
		if k := t.paramSetKind(u); k >= 0 {
			have[k] = true
		}
	}
	if have[0] == t.hevc && have[1] && have[2] {
		return append(au, nalus...) // complete already (H.264 has no VPS)
	}
	if t.isAUD(nalus[0]) {
		au = append(au, nalus[0])
		nalus = nalus[1:]
	}
	for k := range have {
		src := nalus
		if !have[k] {
			src = t.paramSets
		}
		for _, u := range src {
			if t.paramSetKind(u) == k {
				au = append(au, u)
			}
		}
	}
	for _, u := range nalus {
		if t.paramSetKind(u) < 0 {
			au = append(au, u)
		}
	}
	return au
}

// paramSetKind is 0, 1, 2 for a VPS, SPS, PPS NAL unit, and -1 otherwise.
func (t *Track) paramSetKind(u []byte) int {
	if t.hevc {
		if typ := int(u[0]>>1) & 0x3F; typ >= hevcNALVPS && typ <= hevcNALPPS {
			return typ - hevcNALVPS
		}
		return -1
	}
	switch u[0] & 0x1F {
	case avcNALSPS:
		return 1
	case avcNALPPS:
		return 2
	}
	return -1
}

func (t *Track) isAUD(u []byte) bool {
	if t.hevc {
		return int(u[0]>>1)&0x3F == hevcNALAUD
	}
	return u[0]&0x1F == avcNALAUD
}

// to90kHz converts ticks of timescale to 90 kHz modulo 2^33, splitting
// seconds from the remainder so that epoch-scale times do not overflow.
func to90kHz(v int64, timescale uint32) int64 {
	ts := int64(timescale)
	sec, rem := v/ts, v%ts
	if rem < 0 {
		sec, rem = sec-1, rem+ts
	}
	return (sec*90000 + rem*90000/ts) & (1<<33 - 1)
}

// renumber rewrites the continuity counter of every packet in p, per PID:
// it counts packets that carry payload (ISO/IEC 13818-1 2.4.3.3), and a
// packet without payload repeats the last value.
func (st *TSState) renumber(p []byte) {
	if st.next == nil {
		st.next = make(map[uint16]byte)
	}
	for ; len(p) >= tsPacketSize; p = p[tsPacketSize:] {
		pid := uint16(p[1]&0x1F)<<8 | uint16(p[2])
		cc := st.next[pid]
		if p[3]&0x10 != 0 {
			st.next[pid] = (cc + 1) & 0x0F
		} else {
			cc = (cc + 15) & 0x0F
		}
		p[3] = p[3]&0xF0 | cc
	}
}

// appendWriter is an io.Writer that appends to a slice.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}
