package mkv

import (
	"bytes"
	"io"
)

var clusterID = []byte{0x1F, 0x43, 0xB6, 0x75}

// resync skips bytes up to the next Cluster that starts with a Timecode
// element and returns how many it skipped. A producer that resumes after an
// ERROR ack may start in the middle of a block; the Cluster ID alone occurs
// in compressed video often enough that the Timecode is checked too.
func (r *Reader) resync() (int64, error) {
	start := r.b.off
	var skipped int64
	for {
		p, err := r.b.peekSome(len(clusterID))
		if len(p) < len(clusterID) {
			if err != nil && err != io.EOF {
				return 0, readErr(err, r.b.off, "resync")
			}
			return 0, invalidf(start, "no Cluster in the %d bytes before the end of the stream", skipped+int64(len(p)))
		}
		i := bytes.Index(p, clusterID)
		if i < 0 {
			i = len(p) - (len(clusterID) - 1) // keep what may be the start of an ID
		}
		if skipped+int64(i) > r.opt.MaxResync {
			return 0, invalidf(start, "no Cluster in the first %d bytes", r.opt.MaxResync)
		}
		if i > 0 {
			r.b.consume(i)
			skipped += int64(i)
			continue
		}
		if r.clusterStartsHere() {
			return skipped, nil
		}
		r.b.consume(1)
		skipped++
	}
}

// clusterStartsHere reports whether the buffered bytes, which start with a
// Cluster ID, continue with a size vint and a Timecode element of at most 8
// bytes that fits in the Cluster.
func (r *Reader) clusterStartsHere() bool {
	n := len(clusterID)
	p, _ := r.b.peek(n + 1)
	if len(p) < n+1 {
		return false
	}
	sl := vintLength(p[n])
	if sl == 0 {
		return false
	}
	if p, _ = r.b.peek(n + sl + 2); len(p) < n+sl+2 {
		return false
	}
	csize, cunknown := decodeSize(p[n : n+sl])
	if p[n+sl] != IDTimecode {
		return false
	}
	tl := vintLength(p[n+sl+1])
	if tl == 0 {
		return false
	}
	if p, _ = r.b.peek(n + sl + 1 + tl); len(p) < n+sl+1+tl {
		return false
	}
	tsize, tunknown := decodeSize(p[n+sl+1:])
	if tunknown || tsize > 8 {
		return false
	}
	return cunknown || csize >= uint64(1+tl)+tsize
}
