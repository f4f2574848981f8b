package fmp4

import (
	"fmt"
	"math/bits"

	"github.com/kinema/kinema/internal/media/mkv"
)

// A stored cluster is walked in place rather than through mkv.Reader: the
// reader streams and so copies each block into a fresh slice, while here the
// whole cluster is already in memory and the samples can alias it. The walk
// accepts what mkv.AppendCluster writes and the usual variations (unknown
// size, non-minimal vints, Void/CRC-32/Position/PrevSize children, BlockGroups);
// lacing is left to mkv.Block.Frames.

// errCluster makes an error for a malformed stored cluster; it wraps
// mkv.ErrInvalid, since the bytes are not Matroska this package accepts.
func errCluster(off int, format string, args ...any) error {
	return fmt.Errorf("%w: stored cluster at offset %d: %s", mkv.ErrInvalid, off, fmt.Sprintf(format, args...))
}

// readID reads an element ID (1 to 4 bytes, marker bits kept).
func readID(p []byte) (id uint32, n int, ok bool) {
	if len(p) == 0 || p[0] < 0x10 {
		return 0, 0, false
	}
	n = bits.LeadingZeros8(p[0]) + 1
	if len(p) < n {
		return 0, 0, false
	}
	for _, c := range p[:n] {
		id = id<<8 | uint32(c)
	}
	return id, n, true
}

// readSize reads an element size vint; unknown is set for the all-ones
// value of any length.
func readSize(p []byte) (size uint64, n int, unknown, ok bool) {
	if len(p) == 0 || p[0] == 0 {
		return 0, 0, false, false
	}
	n = bits.LeadingZeros8(p[0]) + 1
	if len(p) < n {
		return 0, 0, false, false
	}
	size = uint64(p[0]) & (0xFF >> n)
	for _, c := range p[1:n] {
		size = size<<8 | uint64(c)
	}
	return size, n, size == 1<<(7*n)-1, true
}

// element is one child element: its ID, payload and offset in the cluster.
type element struct {
	id      uint32
	payload []byte
	off     int
}

// children calls visit for each child element in p (base is p's offset in
// the cluster, for messages). With stop set, an element for which stop is
// true ends p there (the end of a Cluster of unknown size).
func children(p []byte, base int, stop func(id uint32) bool, visit func(e element) error) error {
	for pos := 0; pos < len(p); {
		id, il, ok := readID(p[pos:])
		if !ok {
			return errCluster(base+pos, "bad element ID")
		}
		if stop != nil && stop(id) {
			return nil
		}
		size, sl, unknown, ok := readSize(p[pos+il:])
		if !ok || unknown {
			return errCluster(base+pos, "element 0x%X: bad or unknown size", id)
		}
		start := pos + il + sl
		if size > uint64(len(p)-start) {
			return errCluster(base+pos, "element 0x%X of %d bytes runs past its parent", id, size)
		}
		end := start + int(size)
		if err := visit(element{id: id, payload: p[start:end:end], off: base + start}); err != nil {
			return err
		}
		pos = end
	}
	return nil
}

// blockHeader parses the track number, relative timecode and flags that
// start a SimpleBlock or Block payload.
func blockHeader(p []byte) (track uint64, tc int16, flags byte, ok bool) {
	v, n, _, ok := readSize(p)
	if !ok || len(p) < n+3 {
		return 0, 0, 0, false
	}
	return v, int16(uint16(p[n])<<8 | uint16(p[n+1])), p[n+2], true
}

// walkCluster parses a stored cluster and calls visit for each block, with
// the cluster's Timecode. Blocks alias cluster.
func walkCluster(cluster []byte, visit func(tc uint64, b mkv.Block) error) error {
	id, il, ok := readID(cluster)
	if !ok || id != mkv.IDCluster {
		return errCluster(0, "does not start with a Cluster ID")
	}
	size, sl, unknown, ok := readSize(cluster[il:])
	if !ok {
		return errCluster(il, "bad Cluster size")
	}
	body := cluster[il+sl:]
	if !unknown {
		if size > uint64(len(body)) {
			return errCluster(0, "Cluster of %d bytes, %d present", size, len(body))
		}
		body = body[:size]
	}
	var stop func(uint32) bool
	if unknown {
		stop = endsUnknownCluster
	}
	return walkClusterBody(body, il+sl, stop, visit)
}

// walkClusterBody is walkCluster for a Cluster's content (Timecode and
// blocks) at offset off of the stored bytes; stop ends it early.
func walkClusterBody(body []byte, off int, stop func(uint32) bool, visit func(tc uint64, b mkv.Block) error) error {
	var tc uint64
	haveTC := false
	return children(body, off, stop, func(e element) error {
		switch e.id {
		case mkv.IDTimecode:
			if haveTC || len(e.payload) > 8 {
				return errCluster(e.off, "bad or repeated Timecode")
			}
			for _, c := range e.payload {
				tc = tc<<8 | uint64(c)
			}
			haveTC = true
		case mkv.IDSimpleBlock, mkv.IDBlockGroup:
			if !haveTC {
				return errCluster(e.off, "block before the Cluster Timecode")
			}
			b, err := parseBlock(e)
			if err != nil {
				return err
			}
			return visit(tc, b)
		}
		return nil
	})
}

// endsUnknownCluster reports the IDs that end a Cluster of unknown size:
// the Segment's children and a new EBML document.
func endsUnknownCluster(id uint32) bool {
	switch id {
	case mkv.IDCluster, mkv.IDTags, mkv.IDCues, mkv.IDSeekHead, mkv.IDInfo, mkv.IDTracks,
		mkv.IDChapters, mkv.IDAttachments, mkv.IDEBML, mkv.IDSegment:
		return true
	}
	return false
}

// parseBlock fills an mkv.Block from a SimpleBlock or BlockGroup element.
func parseBlock(e element) (mkv.Block, error) {
	b := mkv.Block{Element: e.payload}
	if e.id == mkv.IDSimpleBlock {
		track, tc, flags, ok := blockHeader(e.payload)
		if !ok {
			return b, errCluster(e.off, "SimpleBlock too short")
		}
		b.Track, b.Timecode, b.Flags, b.Keyframe = track, tc, flags, flags&mkv.FlagKeyframe != 0
		return b, nil
	}
	// A BlockGroup is a key frame unless it references another block.
	b.Group, b.Keyframe = true, true
	seen := false
	err := children(e.payload, e.off, nil, func(c element) error {
		switch c.id {
		case mkv.IDBlock:
			track, tc, flags, ok := blockHeader(c.payload)
			if !ok || seen {
				return errCluster(c.off, "bad or repeated Block")
			}
			b.Track, b.Timecode, b.Flags, seen = track, tc, flags, true
		case mkv.IDReferenceBlock:
			b.Keyframe = false
		case mkv.IDBlockDuration:
			for _, x := range c.payload[:min(len(c.payload), 8)] {
				b.Duration = b.Duration<<8 | uint64(x)
			}
		}
		return nil
	})
	if err == nil && !seen {
		err = errCluster(e.off, "BlockGroup without Block")
	}
	return b, err
}
