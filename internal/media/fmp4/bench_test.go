package fmp4

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kinema/kinema/internal/media/mkv"
)

// benchFragment is 2 s of 25 fps video at 2 Mbit/s: a 60 kB key frame and
// 49 frames sharing the rest of 500 kB, each one NAL unit, aliasing one
// buffer as samples from a stored cluster do.
func benchFragment() (*Track, []Sample, int) {
	const total, key, frames = 500_000, 60_000, 50
	buf := make([]byte, total)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	tr := &Track{Number: 1, Kind: Video, Timescale: 90000, lengthSize: 4}
	ss := make([]Sample, frames)
	off := 0
	for i := range ss {
		n := (total - key) / (frames - 1)
		if i == 0 {
			n = key
		}
		if i == frames-1 {
			n = total - off
		}
		binary.BigEndian.PutUint32(buf[off:], uint32(n-4))
		pts := int64(i) * 3600
		ss[i] = Sample{Track: 1, PTS: pts + 7200, DTS: pts, Duration: 3600, Keyframe: i == 0, Data: buf[off : off+n]}
		off += n
	}
	return tr, ss, total
}

// BenchmarkAppendMediaSegment measures packaging one fragment as a media
// segment against a plain copy of the same bytes, in the same run: the
// x-copy metric is how many times longer the segment takes. Each iteration
// does both, so ns/op and the standard MB/s cover the pair; segment-MB/s
// and copy-MB/s are each on its own.
func BenchmarkAppendMediaSegment(b *testing.B) {
	tr, ss, total := benchFragment()
	seg := make([]byte, 0, total+4096)
	cp := make([]byte, 0, total)
	var segTime, copyTime time.Duration
	b.SetBytes(int64(total))
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		var err error
		if seg, err = AppendMediaSegment(seg[:0], 1, tr, ss); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		cp = cp[:0]
		for i := range ss {
			cp = append(cp, ss[i].Data...)
		}
		copyTime += time.Since(t1)
		segTime += t1.Sub(t0)
	}
	mb := float64(total) * float64(b.N) / 1e6
	b.ReportMetric(mb/segTime.Seconds(), "segment-MB/s")
	b.ReportMetric(mb/copyTime.Seconds(), "copy-MB/s")
	b.ReportMetric(float64(segTime)/float64(copyTime), "x-copy")
}

// BenchmarkFragmentSamples measures parsing a stored cluster of the same
// size (no media copy: samples alias the cluster).
func BenchmarkFragmentSamples(b *testing.B) {
	_, ss, total := benchFragment()
	s := store(b, media.File(b, "h264.mkv"), perKeyframe)
	tracks, err := TracksFromHeader(s.header)
	if err != nil {
		b.Fatal(err)
	}
	var blocks = make([]mkv.Block, 0, len(ss))
	for i := range ss {
		blocks = append(blocks, mkv.NewSimpleBlock(tracks[0].Number, int16(i*40), ss[i].Keyframe, ss[i].Data))
	}
	cluster := mkv.AppendCluster(nil, epochMs, blocks)
	b.SetBytes(int64(total))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := FragmentSamples(s.header, tracks, cluster, 0); err != nil {
			b.Fatal(err)
		}
	}
}
