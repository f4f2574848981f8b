package mkv

// EncodeHeaderTracks serializes h for storage (the archive keeps a stream's
// track set in a database blob). The format is simply the Info and Tracks
// elements as AppendInfo and AppendTracks write them: self-describing, and
// readable by any Matroska tool when prefixed with an EBML header. Decoding
// and re-encoding gives the same bytes.
func EncodeHeaderTracks(h Header) []byte {
	return AppendTracks(AppendInfo(nil, h), h.Tracks)
}

// DecodeHeaderTracks parses what EncodeHeaderTracks wrote (any Info and
// Tracks elements, in either order; Info is optional). Error offsets are
// relative to p.
func DecodeHeaderTracks(p []byte) (*Header, error) {
	h := &Header{TimecodeScale: DefaultTimecodeScale}
	seenInfo, seenTracks := false, false
	err := walk(p, 0, 0, func(id uint32, data []byte, off int64) error {
		switch {
		case id == IDInfo && !seenInfo:
			seenInfo = true
			return parseInfo(data, off, h)
		case id == IDTracks && !seenTracks:
			seenTracks = true
			tracks, err := parseTracks(data, off)
			h.Tracks = tracks
			return err
		}
		return invalidf(off, "unexpected %s in an encoded header", idName(id))
	})
	if err != nil {
		return nil, err
	}
	if !seenTracks {
		return nil, invalidf(0, "encoded header without Tracks")
	}
	return h, nil
}
