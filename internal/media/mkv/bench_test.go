package mkv

import (
	"bytes"
	"io"
	"testing"
)

// BenchmarkReader measures ingest throughput over the producer captures,
// from memory, so it measures the reader and not the disk. "small-blocks"
// is a synthetic stream of 200-byte blocks (audio-sized) that shows the
// per-block cost.
func BenchmarkReader(b *testing.B) {
	h := testHeader()
	small := cat(AppendHeader(nil, h), AppendClusterStartUnknown(nil, 0))
	for i := 0; len(small) < 4<<20; i++ {
		small = AppendSimpleBlock(small, 2, int16(i), false, make([]byte, 200))
	}
	for _, bc := range []struct {
		name string
		body []byte
	}{
		{videoOnly, readFixtureBody(b, videoOnly)},
		{avEvents, readFixtureBody(b, avEvents)},
		{"small-blocks", small},
	} {
		b.Run(bc.name, func(b *testing.B) {
			src := bytes.NewReader(bc.body)
			b.SetBytes(int64(len(bc.body)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				src.Reset(bc.body)
				r := NewReader(src, Options{})
				for {
					if _, err := r.Next(); err != nil {
						if err != io.EOF {
							b.Fatal(err)
						}
						break
					}
				}
			}
		})
	}
}

// BenchmarkAppendCluster measures re-wrapping a fragment's blocks, as
// GetMedia and the archive do.
func BenchmarkAppendCluster(b *testing.B) {
	s := summarize(mustReadEvents(b, readFixtureBody(b, videoOnly), Options{}))
	blocks := s.Clusters[0].Blocks
	n := 0
	for _, blk := range blocks {
		n += len(blk.Element)
	}
	buf := make([]byte, 0, n+1024)
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf = AppendCluster(buf[:0], s.Clusters[0].Timecode, blocks)
	}
}
