package mkv

// Parsers for the master elements that are read whole (EBML header, Info,
// Tracks, Tags, BlockGroup). They work on a payload already in memory, so
// they only need bounds checks, not I/O. Unknown children are skipped, as
// Matroska requires; CRC-32 and Void children are unknown to them too.

// maxTagDepth bounds SimpleTag nesting; real files nest one or two levels.
const maxTagDepth = 16

// walk calls fn for each child element of p, the payload of the master
// element parent; base is p's stream offset, used in error messages.
func walk(p []byte, base int64, parent uint32, fn func(id uint32, data []byte, off int64) error) error {
	for pos := 0; pos < len(p); {
		q := p[pos:]
		off := base + int64(pos)
		il := idLength(q[0])
		if il == 0 || il >= len(q) {
			return invalidf(off, "bad element header inside %s", idName(parent))
		}
		id, ok := decodeID(q[:il])
		if !ok {
			return invalidf(off, "reserved element ID inside %s", idName(parent))
		}
		sl := vintLength(q[il])
		if sl == 0 || il+sl > len(q) {
			return invalidf(off, "bad size of %s inside %s", idName(id), idName(parent))
		}
		size, unknown := decodeSize(q[il : il+sl])
		if unknown {
			return invalidf(off, "%s of unknown size inside %s", idName(id), idName(parent))
		}
		start := il + sl
		if size > uint64(len(q)-start) {
			return invalidf(off, "%s overruns its parent %s", idName(id), idName(parent))
		}
		end := start + int(size)
		if err := fn(id, q[start:end], off); err != nil {
			return err
		}
		pos += end
	}
	return nil
}

func uintField(data []byte, off int64, id uint32) (uint64, error) {
	v, ok := decodeUint(data)
	if !ok {
		return 0, invalidf(off, "%s: unsigned integer of %d bytes", idName(id), len(data))
	}
	return v, nil
}

// cloneBytes copies p so that results never alias a reused read buffer.
func cloneBytes(p []byte) []byte {
	return append([]byte(nil), p...)
}

// parseEBMLHeader checks the EBML header; only the DocType matters to us.
func parseEBMLHeader(p []byte, base int64) error {
	docType, seen := "", false
	err := walk(p, base, IDEBML, func(id uint32, data []byte, off int64) error {
		if id == IDDocType {
			docType, seen = decodeString(data), true
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !seen {
		return invalidf(base, "EBML header without DocType")
	}
	if docType != "matroska" && docType != "webm" {
		return invalidf(base, "DocType %q is not matroska or webm", docType)
	}
	return nil
}

// parseInfo sets the Info fields of h. Duration, DateUTC and the rest are
// ignored: for a live stream they are absent or meaningless.
func parseInfo(p []byte, base int64, h *Header) error {
	h.TimecodeScale = DefaultTimecodeScale
	h.SegmentUID, h.Title, h.MuxingApp, h.WritingApp = nil, "", "", ""
	return walk(p, base, IDInfo, func(id uint32, data []byte, off int64) error {
		switch id {
		case IDTimecodeScale:
			v, err := uintField(data, off, id)
			if err != nil {
				return err
			}
			if v == 0 {
				return invalidf(off, "TimecodeScale is 0")
			}
			h.TimecodeScale = v
		case IDSegmentUID:
			h.SegmentUID = cloneBytes(data)
		case IDTitle:
			h.Title = decodeString(data)
		case IDMuxingApp:
			h.MuxingApp = decodeString(data)
		case IDWritingApp:
			h.WritingApp = decodeString(data)
		}
		return nil
	})
}

func parseTracks(p []byte, base int64) ([]Track, error) {
	var tracks []Track
	err := walk(p, base, IDTracks, func(id uint32, data []byte, off int64) error {
		if id != IDTrackEntry {
			return nil
		}
		t, err := parseTrackEntry(data, off)
		tracks = append(tracks, t)
		return err
	})
	return tracks, err
}

func parseTrackEntry(p []byte, base int64) (Track, error) {
	var t Track
	err := walk(p, base, IDTrackEntry, func(id uint32, data []byte, off int64) error {
		var err error
		switch id {
		case IDTrackNumber:
			t.Number, err = uintField(data, off, id)
		case IDTrackUID:
			t.UID, err = uintField(data, off, id)
		case IDTrackType:
			t.Type, err = uintField(data, off, id)
		case IDTrackName:
			t.Name = decodeString(data)
		case IDCodecID:
			t.CodecID = decodeString(data)
		case IDCodecPrivate:
			if len(data) > 0 {
				t.CodecPrivate = cloneBytes(data)
			}
		case IDDefaultDuration:
			t.DefaultDuration, err = uintField(data, off, id)
		case IDVideo:
			err = walk(data, off, id, func(id uint32, data []byte, off int64) error {
				var err error
				switch id {
				case IDPixelWidth:
					t.PixelWidth, err = uintField(data, off, id)
				case IDPixelHeight:
					t.PixelHeight, err = uintField(data, off, id)
				}
				return err
			})
		case IDAudio:
			err = walk(data, off, id, func(id uint32, data []byte, off int64) error {
				var err error
				switch id {
				case IDSamplingFrequency:
					var ok bool
					if t.SamplingFrequency, ok = decodeFloat(data); !ok {
						err = invalidf(off, "SamplingFrequency: float of %d bytes", len(data))
					}
				case IDChannels:
					t.Channels, err = uintField(data, off, id)
				case IDBitDepth:
					t.BitDepth, err = uintField(data, off, id)
				}
				return err
			})
		}
		return err
	})
	return t, err
}

// parseTags returns the SimpleTags of every Tag in a Tags payload, nested
// SimpleTags flattened in document order (parent before its children).
// Targets are skipped: KVS does not send them and Kinema does not use them.
func parseTags(p []byte, base int64) ([]SimpleTag, error) {
	var out []SimpleTag
	err := walk(p, base, IDTags, func(id uint32, data []byte, off int64) error {
		if id != IDTag {
			return nil
		}
		return walk(data, off, IDTag, func(id uint32, data []byte, off int64) error {
			if id != IDSimpleTag {
				return nil
			}
			return parseSimpleTag(data, off, 0, &out)
		})
	})
	return out, err
}

func parseSimpleTag(p []byte, base int64, depth int, out *[]SimpleTag) error {
	if depth >= maxTagDepth {
		return invalidf(base, "SimpleTag nested deeper than %d", maxTagDepth)
	}
	i := len(*out)
	*out = append(*out, SimpleTag{})
	return walk(p, base, IDSimpleTag, func(id uint32, data []byte, off int64) error {
		switch id {
		case IDTagName:
			(*out)[i].Name = decodeString(data)
		case IDTagString:
			(*out)[i].Value = decodeString(data)
		case IDTagBinary:
			// Non-nil even when empty: Binary != nil means "TagBinary present".
			(*out)[i].Binary = append([]byte{}, data...)
		case IDSimpleTag:
			return parseSimpleTag(data, off, depth+1, out)
		}
		return nil
	})
}
