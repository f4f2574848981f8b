package fmp4

import (
	"errors"
	"fmt"
	"testing"

	"github.com/kinema/kinema/internal/mediatest"
)

// TestTS muxes every fragment of real media into one TS segment each, as
// an HLS MPEG_TS session serves them, and checks the concatenation: every
// frame decodes, continuity counters run on across segments, times match
// the source modulo 2^33 at 90 kHz.
func TestTS(t *testing.T) {
	for _, mc := range []mediaCase{
		{"h264.mkv", perKeyframe},
		{"h264.mkv", annexB},
		{"h264.mkv", inBand},
		{"h265.mkv", perKeyframe},
		{"h265.mkv", inBand},
		{"h265-opengop.mkv", perKeyframe},
		{"aac.mkv", perKeyframe},
		{"baseline.mkv", perKeyframe},
		{"laced.mkv", asIs},
	} {
		t.Run(mc.name(), func(t *testing.T) {
			t.Parallel()
			src := media.File(t, mc.file)
			s := store(t, src, mc.mode)
			tracks, err := TracksFromHeader(s.header)
			if err != nil {
				t.Fatal(err)
			}
			var st TSState
			var file []byte
			for i, c := range s.clusters {
				ss, err := FragmentSamples(s.header, tracks, c, s.nextStart(i))
				if err != nil {
					t.Fatal(err)
				}
				segStart := len(file)
				if file, err = AppendTS(file, &st, tracks, ss); err != nil {
					t.Fatalf("fragment %d: %v", i, err)
				}
				// Every segment can be joined on its own: it starts with
				// the PAT.
				if pid := tsPID(file[segStart:]); pid != 0 {
					t.Fatalf("segment %d starts with PID 0x%X", i, pid)
				}
			}
			if err := checkContinuity(file); err != nil {
				t.Fatal(err)
			}
			path := writeTemp(t, "all.ts", file)
			mediatest.DecodeClean(t, path, "-map", "0")
			got, want := probe(t, path), probe(t, src)
			for k, tr := range tracks {
				w := want[headerIndex(s, tr.Number)]
				if got[k].CodecName != w.CodecName || got[k].NbReadFrames != w.NbReadFrames || got[k].Width != w.Width {
					t.Errorf("track %d: ffprobe says %+v, source %+v", tr.Number, got[k], w)
				}
				// TS times wrap at 2^33 ticks of 90 kHz (about 26.5 h).
				var src []int64
				for _, us := range s.ptsUs[tr.Number] {
					src = append(src, (us*9/100)%(1<<33)*100/9)
				}
				// AAC frames share a PES packet and its one PTS; the
				// player counts 1024 samples from there, while the source
				// times are rounded to the ms.
				extra := 0.0
				if tr.Kind == Audio {
					extra = 0.001
				}
				checkTimes(t, tr, framePTS(t, path, fmt.Sprint(k)), src, 0, extra)
			}
		})
	}
}

// TestTSStateless shows what TSState is for: segments muxed without it
// each restart their counters, which a player joining them sees as packet
// loss.
func TestTSStateless(t *testing.T) {
	s := store(t, media.File(t, "h264.mkv"), perKeyframe)
	tracks, err := TracksFromHeader(s.header)
	if err != nil {
		t.Fatal(err)
	}
	var file []byte
	for i, c := range s.clusters[:2] {
		ss, err := FragmentSamples(s.header, tracks, c, s.nextStart(i))
		if err != nil {
			t.Fatal(err)
		}
		if file, err = AppendTS(file, nil, tracks, ss); err != nil {
			t.Fatal(err)
		}
	}
	if checkContinuity(file) == nil {
		t.Fatal("segments muxed without state joined without a continuity break")
	}
}

// TestTSRejectsG711: HLS cannot carry G.711.
func TestTSRejectsG711(t *testing.T) {
	s := store(t, media.File(t, "h264-alaw.mkv"), perKeyframe)
	tracks, err := TracksFromHeader(s.header)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := FragmentSamples(s.header, tracks, s.clusters[0], 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := AppendTS(nil, nil, tracks, ss); !isErr(err, ErrUnsupportedCodec) {
		t.Fatalf("G.711 in TS: %v", err)
	}
	if _, err := AppendTS(nil, nil, tracks[:1], ss); err != nil {
		t.Fatalf("video alone: %v", err)
	}
}

func tsPID(p []byte) uint16 { return uint16(p[1]&0x1F)<<8 | uint16(p[2]) }

// checkContinuity verifies an MPEG-TS stream independently of the writer:
// sync bytes, and per PID a continuity counter that grows by one on every
// packet with payload and repeats on a packet without.
func checkContinuity(p []byte) error {
	if len(p)%188 != 0 {
		return fmt.Errorf("%d bytes is not a whole number of packets", len(p))
	}
	last := map[uint16]int{}
	for i := 0; i < len(p); i += 188 {
		pkt := p[i : i+188]
		if pkt[0] != 0x47 {
			return fmt.Errorf("packet %d: sync byte 0x%02X", i/188, pkt[0])
		}
		pid, cc := tsPID(pkt), int(pkt[3]&0x0F)
		prev, seen := last[pid]
		want := prev
		if pkt[3]&0x10 != 0 {
			want = (prev + 1) & 0x0F
		}
		if seen && cc != want {
			return fmt.Errorf("packet %d, PID 0x%X: continuity counter %d after %d", i/188, pid, cc, prev)
		}
		last[pid] = cc
	}
	if len(last) == 0 {
		return fmt.Errorf("no packets")
	}
	return nil
}

func isErr(err, target error) bool { return errors.Is(err, target) }
