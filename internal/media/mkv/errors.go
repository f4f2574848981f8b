package mkv

import (
	"errors"
	"fmt"
	"io"
)

// Sentinel errors. Every format error returned by this package wraps one of
// them, and its message carries the stream offset where the problem is.
var (
	// ErrInvalid: the bytes are not a Matroska stream this package accepts.
	ErrInvalid = errors.New("mkv: invalid data")
	// ErrTooLarge: an element is larger than the configured limit. It is kept
	// apart from ErrInvalid so that ingest can answer it differently (KVS has
	// a distinct "fragment too large" error).
	ErrTooLarge = errors.New("mkv: element too large")
)

func invalidf(off int64, format string, args ...any) error {
	return fmt.Errorf("%w at offset %d: %s", ErrInvalid, off, fmt.Sprintf(format, args...))
}

func tooLarge(off int64, id uint32, size, limit int64) error {
	return fmt.Errorf("%w at offset %d: %s of %d bytes exceeds the limit of %d", ErrTooLarge, off, idName(id), size, limit)
}

// truncated reports a stream that ended inside an element.
func truncated(off int64, what string) error {
	return fmt.Errorf("mkv: stream ends inside %s at offset %d: %w", what, off, io.ErrUnexpectedEOF)
}

// readErr turns an error of the underlying reader into one that names the
// offset; EOF inside an element becomes io.ErrUnexpectedEOF.
func readErr(err error, off int64, what string) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return truncated(off, what)
	}
	return fmt.Errorf("mkv: reading %s at offset %d: %w", what, off, err)
}

// idName names the IDs that appear in error messages.
func idName(id uint32) string {
	switch id {
	case IDEBML:
		return "EBML header"
	case IDSegment:
		return "Segment"
	case IDSeekHead:
		return "SeekHead"
	case IDInfo:
		return "Info"
	case IDTracks:
		return "Tracks"
	case IDCluster:
		return "Cluster"
	case IDCues:
		return "Cues"
	case IDChapters:
		return "Chapters"
	case IDAttachments:
		return "Attachments"
	case IDTags:
		return "Tags"
	case IDTimecode:
		return "Timecode"
	case IDSimpleBlock:
		return "SimpleBlock"
	case IDBlockGroup:
		return "BlockGroup"
	case IDBlock:
		return "Block"
	case IDTrackEntry:
		return "TrackEntry"
	case IDTag:
		return "Tag"
	case IDSimpleTag:
		return "SimpleTag"
	case IDVoid:
		return "Void"
	case IDCRC32:
		return "CRC-32"
	}
	return fmt.Sprintf("element 0x%X", id)
}
