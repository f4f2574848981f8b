package mkv

import "encoding/binary"

// Block flag bits (SimpleBlock; a Block inside a BlockGroup uses only the
// lacing and invisible bits).
const (
	FlagKeyframe    = 0x80
	FlagInvisible   = 0x08
	FlagDiscardable = 0x01
	flagLacingMask  = 0x06
)

// Lacing modes, from (flags & 0x06) >> 1.
const (
	lacingNone  = 0
	lacingXiph  = 1
	lacingFixed = 2
	lacingEBML  = 3
)

// parseBlockHeader parses the track number, relative timecode and flags at
// the start of a SimpleBlock or Block payload; n is the header's length.
func parseBlockHeader(p []byte) (track uint64, tc int16, flags byte, n int, ok bool) {
	if len(p) == 0 {
		return 0, 0, 0, 0, false
	}
	l := vintLength(p[0])
	if l == 0 || len(p) < l+3 {
		return 0, 0, 0, 0, false
	}
	track, _ = decodeSize(p[:l])
	return track, int16(binary.BigEndian.Uint16(p[l:])), p[l+2], l + 3, true
}

// parseSimpleBlock fills a Block from a SimpleBlock payload; p becomes
// Block.Element as is. base is p's stream offset.
func parseSimpleBlock(p []byte, base int64) (Block, error) {
	track, tc, flags, n, ok := parseBlockHeader(p)
	if !ok {
		return Block{}, invalidf(base, "SimpleBlock of %d bytes is too short for its header", len(p))
	}
	if err := unlace(p[n:], flags, base+int64(n), nil); err != nil {
		return Block{}, err
	}
	return Block{Track: track, Timecode: tc, Flags: flags, Keyframe: flags&FlagKeyframe != 0, Element: p}, nil
}

// parseBlockGroup fills a Block from a BlockGroup payload; p becomes
// Block.Element as is. A ReferenceBlock means the frame depends on another,
// so only a group without one is a key frame.
func parseBlockGroup(p []byte, base int64) (Block, error) {
	b := Block{Group: true, Keyframe: true, Element: p}
	seen := false
	err := walk(p, base, IDBlockGroup, func(id uint32, data []byte, off int64) error {
		switch id {
		case IDBlock:
			if seen {
				return invalidf(off, "BlockGroup with more than one Block")
			}
			seen = true
			track, tc, flags, n, ok := parseBlockHeader(data)
			if !ok {
				return invalidf(off, "Block of %d bytes is too short for its header", len(data))
			}
			b.Track, b.Timecode, b.Flags = track, tc, flags
			return unlace(data[n:], flags, off+int64(n), nil)
		case IDBlockDuration:
			v, err := uintField(data, off, id)
			b.Duration = v
			return err
		case IDReferenceBlock:
			b.Keyframe = false
		}
		return nil
	})
	if err != nil {
		return Block{}, err
	}
	if !seen {
		return Block{}, invalidf(base, "BlockGroup without Block")
	}
	return b, nil
}

// Frames returns the frame payloads of the block: one for an unlaced block,
// several for Xiph, fixed-size or EBML lacing. They alias b.Element. Error
// offsets are relative to the start of b.Element.
func (b Block) Frames() ([][]byte, error) {
	p := b.Element
	if b.Group {
		var blk []byte
		found := false
		err := walk(p, 0, IDBlockGroup, func(id uint32, data []byte, off int64) error {
			if id == IDBlock && !found {
				blk, found = data, true
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, invalidf(0, "BlockGroup without Block")
		}
		p = blk
	}
	_, _, flags, n, ok := parseBlockHeader(p)
	if !ok {
		return nil, invalidf(0, "block of %d bytes is too short for its header", len(p))
	}
	var frames [][]byte
	if (flags&flagLacingMask)>>1 == lacingNone {
		frames = make([][]byte, 0, 1)
	}
	err := unlace(p[n:], flags, int64(n), func(f []byte) { frames = append(frames, f) })
	if err != nil {
		return nil, err
	}
	return frames, nil
}

// unlace splits the frame data of a block (after its header) according to
// the lacing bits of flags and calls visit for each frame in order; with a
// nil visit it only validates. base is data's offset, for messages.
func unlace(data []byte, flags byte, base int64, visit func([]byte)) error {
	lacing := (flags & flagLacingMask) >> 1
	if lacing == lacingNone {
		if visit != nil {
			visit(data)
		}
		return nil
	}
	if len(data) == 0 {
		return invalidf(base, "laced block without a frame count")
	}
	count := int(data[0]) + 1
	rest := data[1:]
	if lacing == lacingFixed {
		if len(rest)%count != 0 {
			return invalidf(base, "fixed-size lacing: %d bytes do not split into %d frames", len(rest), count)
		}
		if visit != nil {
			sz := len(rest) / count
			for i := 0; i < count; i++ {
				visit(rest[i*sz : (i+1)*sz : (i+1)*sz])
			}
		}
		return nil
	}

	// Xiph and EBML lacing store count-1 sizes; the last frame takes the
	// rest. Each size is checked against the data length as it is read, so
	// the running total cannot overflow.
	var sizes [256]int64
	pos, total := 0, int64(0)
	for i := 0; i < count-1; i++ {
		var s int64
		if lacing == lacingXiph {
			for {
				if pos >= len(rest) {
					return invalidf(base, "Xiph lacing: sizes run past the block")
				}
				c := rest[pos]
				pos++
				s += int64(c)
				if c != 0xFF {
					break
				}
			}
		} else {
			if pos >= len(rest) {
				return invalidf(base, "EBML lacing: sizes run past the block")
			}
			l := vintLength(rest[pos])
			if l == 0 || pos+l > len(rest) {
				return invalidf(base, "EBML lacing: bad size vint")
			}
			raw, _ := decodeSize(rest[pos : pos+l])
			pos += l
			// raw < 2^56, so neither branch can overflow an int64.
			if i == 0 {
				s = int64(raw)
			} else {
				s = sizes[i-1] + int64(raw) - signedVintBias(l)
			}
		}
		if s < 0 || s > int64(len(rest)) {
			return invalidf(base, "lacing: frame size %d out of range", s)
		}
		total += s
		if total > int64(len(rest)) {
			return invalidf(base, "lacing: frame sizes exceed the block")
		}
		sizes[i] = s
	}
	frames := rest[pos:]
	if total > int64(len(frames)) {
		return invalidf(base, "lacing: frame sizes exceed the block")
	}
	if visit != nil {
		for _, s := range sizes[:count-1] {
			visit(frames[:s:s]) // capped, so a caller's append cannot clobber the next frame
			frames = frames[s:]
		}
		visit(frames)
	}
	return nil
}
