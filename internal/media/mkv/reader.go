package mkv

import (
	"errors"
	"io"
)

// Default limits; see Options.
const (
	DefaultMaxBlockSize   = 50 << 20 // KVS rejects fragments over 50 MB, so no single block can be larger
	DefaultMaxElementSize = 1 << 20
)

// scratchKeep is the largest scratch buffer a Reader keeps between elements.
// Bigger ones (a rare large Tracks) are dropped so that hundreds of idle
// camera connections do not each pin a megabyte.
const scratchKeep = 64 << 10

// Options configure a Reader. The zero value reads a normal stream that
// starts with an EBML header, with the default limits.
type Options struct {
	// Header is assumed when the stream starts without an EBML header: a
	// producer resuming after an ERROR ack starts at a Cluster or Tags (or,
	// with MaxResync, in the middle of a block). It is also used for a later
	// Segment that reaches a Cluster without Tracks of its own. The Reader
	// does not emit an EventHeader for it, and never modifies it. Without
	// it, a stream that starts at a Cluster or Tags is ErrInvalid.
	Header *Header
	// MaxResync, when positive, lets a stream that starts with neither an
	// EBML header nor a Cluster or Tags skip up to this many bytes to the
	// next Cluster ID followed by a valid Timecode element; Next then
	// returns an EventResync. Resync needs Header. Zero makes such a start
	// an error.
	MaxResync int64
	// MaxBlockSize bounds a SimpleBlock or BlockGroup (DefaultMaxBlockSize
	// when zero or negative); a larger one is an error wrapping ErrTooLarge.
	MaxBlockSize int64
	// MaxElementSize bounds every other element that is read whole (EBML
	// header, Info, Tracks, Tags); DefaultMaxElementSize when zero or
	// negative. Skipped elements are streamed through and not bounded.
	MaxElementSize int64
}

// Reader reads a Matroska stream element by element. It is not safe for
// concurrent use.
type Reader struct {
	b   bufReader
	opt Options
	err error // sticky: once Next fails it keeps failing the same way

	started       bool // the start of the stream has been classified
	expectSegment bool // an EBML header was read; its Segment comes next

	inSegment bool
	segOff    int64
	segEnd    int64 // -1: unknown size, or a resumed stream

	inCluster    bool
	clusterOff   int64
	clusterEnd   int64 // -1: unknown size
	haveTimecode bool

	info    Header  // Info of the current Segment (no Tracks)
	hdr     *Header // header in force: from this Segment's Tracks, or Options.Header
	scratch []byte  // reused for elements that are parsed and dropped
}

// elemHeader is a parsed element header.
type elemHeader struct {
	id     uint32
	off    int64 // stream offset of the ID
	hdrLen int   // ID plus size vint
	size   int64 // payload size; -1 when unknown
}

func (h elemHeader) payloadOff() int64 { return h.off + int64(h.hdrLen) }

// NewReader returns a Reader of r with the given options.
func NewReader(r io.Reader, opt Options) *Reader {
	if opt.MaxBlockSize <= 0 {
		opt.MaxBlockSize = DefaultMaxBlockSize
	}
	if opt.MaxElementSize <= 0 {
		opt.MaxElementSize = DefaultMaxElementSize
	}
	return &Reader{
		b:   bufReader{src: r, buf: make([]byte, bufSize)},
		opt: opt,
	}
}

// Offset returns the number of bytes consumed so far: after an event, the
// end of the element that produced it.
func (r *Reader) Offset() int64 { return r.b.off }

// Header returns the header in force for the current Segment: the one of
// the last EventHeader, Options.Header in a resumed stream, or nil.
func (r *Reader) Header() *Header { return r.hdr }

// Next returns the next event. It returns io.EOF at a clean end of the
// stream (between elements, and not inside an element of known size), an
// error wrapping io.ErrUnexpectedEOF when the stream ends inside an element,
// and errors wrapping ErrInvalid or ErrTooLarge for bad data. After an error,
// every later call returns the same error.
func (r *Reader) Next() (Event, error) {
	if r.err != nil {
		return Event{}, r.err
	}
	ev, err := r.next()
	if err != nil {
		r.err = err
	}
	return ev, err
}

func (r *Reader) next() (Event, error) {
	if !r.started {
		r.started = true
		if ev, ok, err := r.start(); err != nil || ok {
			return ev, err
		}
	}
	for {
		if err := r.closeEnded(); err != nil {
			return Event{}, err
		}
		h, err := r.peekHeader()
		if err == io.EOF {
			return Event{}, r.atEOF()
		}
		if err != nil {
			return Event{}, err
		}
		if err := r.checkFits(h); err != nil {
			return Event{}, err
		}
		var ev Event
		var ok bool
		switch {
		case r.inCluster:
			ev, ok, err = r.clusterChild(h)
		case r.inSegment:
			ev, ok, err = r.segmentChild(h)
		default:
			ev, ok, err = r.topLevel(h)
		}
		if err != nil || ok {
			return ev, err
		}
	}
}

// peekHeader parses the next element header without consuming it, asking
// the source only for the bytes the header needs (so a live stream is never
// held up waiting for bytes past the element). It returns io.EOF, unwrapped,
// when the stream ends exactly here.
func (r *Reader) peekHeader() (elemHeader, error) {
	off := r.b.off
	p, err := r.b.peek(1)
	if len(p) == 0 {
		if err == io.EOF {
			return elemHeader{}, io.EOF
		}
		return elemHeader{}, readErr(err, off, "element header")
	}
	il := idLength(p[0])
	if il == 0 {
		return elemHeader{}, invalidf(off, "byte 0x%02X cannot start an element ID", p[0])
	}
	if p, err = r.b.peek(il + 1); len(p) < il+1 {
		return elemHeader{}, readErr(err, off, "element header")
	}
	id, ok := decodeID(p[:il])
	if !ok {
		return elemHeader{}, invalidf(off, "reserved element ID 0x%X", p[:il])
	}
	sl := vintLength(p[il])
	if sl == 0 {
		return elemHeader{}, invalidf(off, "%s: size byte 0x00 is not a vint", idName(id))
	}
	if p, err = r.b.peek(il + sl); len(p) < il+sl {
		return elemHeader{}, readErr(err, off, "element header")
	}
	size, unknown := decodeSize(p[il : il+sl])
	h := elemHeader{id: id, off: off, hdrLen: il + sl, size: int64(size)}
	if unknown {
		h.size = -1
	}
	return h, nil
}

// limit is the end offset of the innermost open element of known size, or
// -1 when every open element has unknown size.
func (r *Reader) limit() int64 {
	if r.inCluster && r.clusterEnd >= 0 {
		return r.clusterEnd
	}
	if r.inSegment && r.segEnd >= 0 {
		return r.segEnd
	}
	return -1
}

// checkFits rejects a child that claims to run past its parent's end.
func (r *Reader) checkFits(h elemHeader) error {
	end := r.limit()
	if end < 0 {
		return nil
	}
	if h.size < 0 && h.id == IDCluster {
		return nil // it ends with its parent at the latest
	}
	if h.size < 0 {
		return invalidf(h.off, "%s of unknown size inside an element of known size", idName(h.id))
	}
	if h.payloadOff()+h.size > end {
		return invalidf(h.off, "%s runs past the end of its parent at %d", idName(h.id), end)
	}
	return nil
}

// closeEnded closes the elements of known size whose end was reached.
func (r *Reader) closeEnded() error {
	off := r.b.off
	if r.inCluster && r.clusterEnd >= 0 && off >= r.clusterEnd {
		if err := r.endCluster(); err != nil {
			return err
		}
	}
	if r.inSegment && r.segEnd >= 0 && off >= r.segEnd {
		if r.inCluster {
			if err := r.endCluster(); err != nil {
				return err
			}
		}
		r.inSegment = false
	}
	return nil
}

// atEOF decides whether the end of the stream is clean.
func (r *Reader) atEOF() error {
	switch {
	case r.inCluster && (r.clusterEnd >= 0 || !r.haveTimecode):
		return truncated(r.clusterOff, "Cluster")
	case r.inSegment && r.segEnd >= 0:
		return truncated(r.segOff, "Segment")
	case r.expectSegment:
		return truncated(r.b.off, "document: EBML header without Segment")
	}
	return io.EOF
}

// start classifies the beginning of the stream: an EBML header (normal), a
// Cluster or Tags (a resumed upload), or anything else (resync or error).
func (r *Reader) start() (Event, bool, error) {
	h, err := r.peekHeader()
	if err == io.EOF {
		return Event{}, true, io.EOF
	}
	what := "bytes that are not an element header"
	switch {
	case err == nil && h.id == IDEBML:
		return Event{}, false, nil
	case err == nil && (h.id == IDCluster || h.id == IDTags):
		if r.opt.Header == nil {
			return Event{}, true, invalidf(0, "stream starts with %s, without an EBML header, and no Options.Header was given", idName(h.id))
		}
		r.resume()
		return Event{}, false, nil
	case err == nil:
		what = idName(h.id)
	case !errors.Is(err, ErrInvalid):
		return Event{}, true, err // truncated, or the source failed
	}
	if r.opt.MaxResync <= 0 {
		return Event{}, true, invalidf(0, "stream starts with %s, not an EBML header, Cluster or Tags", what)
	}
	if r.opt.Header == nil {
		return Event{}, true, invalidf(0, "stream starts with %s and cannot resync without Options.Header", what)
	}
	off := r.b.off
	skipped, err := r.resync()
	if err != nil {
		return Event{}, true, err
	}
	r.resume()
	return Event{Type: EventResync, Offset: off, Skipped: skipped}, true, nil
}

// resume treats the stream as the continuation of a Segment described by
// Options.Header.
func (r *Reader) resume() {
	r.enterSegment(r.b.off, -1)
	r.info = *r.opt.Header
	r.info.Tracks = nil
}

func (r *Reader) enterSegment(off, end int64) {
	r.inSegment, r.segOff, r.segEnd = true, off, end
	r.info = Header{TimecodeScale: DefaultTimecodeScale}
	r.hdr = r.opt.Header
}

func (r *Reader) topLevel(h elemHeader) (Event, bool, error) {
	switch h.id {
	case IDEBML:
		return Event{}, false, r.readEBMLHeader(h)
	case IDSegment:
		if !r.expectSegment {
			return Event{}, false, invalidf(h.off, "Segment without an EBML header")
		}
		r.expectSegment = false
		r.b.consume(h.hdrLen)
		end := int64(-1)
		if h.size >= 0 {
			end = h.payloadOff() + h.size
		}
		r.enterSegment(h.off, end)
		return Event{}, false, nil
	case IDVoid, IDCRC32:
		return Event{}, false, r.skip(h)
	}
	if r.expectSegment {
		return Event{}, false, invalidf(h.off, "%s where the Segment should start", idName(h.id))
	}
	return Event{}, false, invalidf(h.off, "%s outside a Segment", idName(h.id))
}

func (r *Reader) readEBMLHeader(h elemHeader) error {
	p, err := r.readWhole(h)
	if err != nil {
		return err
	}
	if err := parseEBMLHeader(p, h.payloadOff()); err != nil {
		return err
	}
	r.expectSegment = true
	return nil
}

func (r *Reader) segmentChild(h elemHeader) (Event, bool, error) {
	switch h.id {
	case IDEBML, IDSegment:
		// A new document: it ends a Segment of unknown size (concatenated
		// GetMedia output); inside a Segment of known size it is garbage.
		if r.segEnd >= 0 {
			return Event{}, false, invalidf(h.off, "%s inside a Segment of known size", idName(h.id))
		}
		r.inSegment = false
		return Event{}, false, nil
	case IDInfo:
		p, err := r.readWhole(h)
		if err != nil {
			return Event{}, false, err
		}
		if err := parseInfo(p, h.payloadOff(), &r.info); err != nil {
			return Event{}, false, err
		}
		if r.hdr == nil || r.hdr == r.opt.Header {
			return Event{}, false, nil
		}
		// Info after Tracks: announce the corrected header. A fresh Header,
		// so that the one returned earlier is not changed behind its user.
		nh := r.info
		nh.Tracks = r.hdr.Tracks
		r.hdr = &nh
		return Event{Type: EventHeader, Offset: h.off, Header: r.hdr}, true, nil
	case IDTracks:
		p, err := r.readWhole(h)
		if err != nil {
			return Event{}, false, err
		}
		tracks, err := parseTracks(p, h.payloadOff())
		if err != nil {
			return Event{}, false, err
		}
		nh := r.info
		nh.Tracks = tracks
		r.hdr = &nh
		return Event{Type: EventHeader, Offset: h.off, Header: r.hdr}, true, nil
	case IDCluster:
		if r.hdr == nil {
			return Event{}, false, invalidf(h.off, "Cluster before Tracks, and no Options.Header was given")
		}
		r.b.consume(h.hdrLen)
		r.inCluster, r.clusterOff, r.clusterEnd, r.haveTimecode = true, h.off, -1, false
		if h.size >= 0 {
			r.clusterEnd = h.payloadOff() + h.size
		}
		return Event{}, false, nil
	case IDTags:
		p, err := r.readWhole(h)
		if err != nil {
			return Event{}, false, err
		}
		tags, err := parseTags(p, h.payloadOff())
		if err != nil {
			return Event{}, false, err
		}
		return Event{Type: EventTags, Offset: h.off, Tags: tags}, true, nil
	}
	// SeekHead, Cues, Chapters, Attachments, Void, CRC-32 and unknown IDs.
	return Event{}, false, r.skip(h)
}

// isSegmentLevel reports IDs that end a Cluster of unknown size: the
// Segment's children and the level-0 elements of a following document.
func isSegmentLevel(id uint32) bool {
	switch id {
	case IDCluster, IDTags, IDCues, IDSeekHead, IDInfo, IDTracks, IDChapters, IDAttachments, IDEBML, IDSegment:
		return true
	}
	return false
}

func (r *Reader) clusterChild(h elemHeader) (Event, bool, error) {
	if isSegmentLevel(h.id) {
		if r.clusterEnd >= 0 {
			return Event{}, false, invalidf(h.off, "%s inside a Cluster of known size", idName(h.id))
		}
		return Event{}, false, r.endCluster()
	}
	switch h.id {
	case IDTimecode:
		if r.haveTimecode {
			return Event{}, false, invalidf(h.off, "second Timecode in a Cluster")
		}
		if h.size < 0 || h.size > 8 {
			return Event{}, false, invalidf(h.off, "Timecode of %d bytes", h.size)
		}
		r.b.consume(h.hdrLen)
		p, err := r.b.peek(int(h.size))
		if len(p) < int(h.size) {
			return Event{}, false, readErr(err, h.off, "Timecode")
		}
		tc, _ := decodeUint(p)
		r.b.consume(len(p))
		r.haveTimecode = true
		return Event{Type: EventClusterStart, Offset: r.clusterOff, ClusterTimecode: tc}, true, nil
	case IDSimpleBlock, IDBlockGroup:
		if !r.haveTimecode {
			return Event{}, false, invalidf(h.off, "%s before the Cluster's Timecode", idName(h.id))
		}
		if h.size < 0 {
			return Event{}, false, invalidf(h.off, "%s of unknown size", idName(h.id))
		}
		if h.size > r.opt.MaxBlockSize {
			return Event{}, false, tooLarge(h.off, h.id, h.size, r.opt.MaxBlockSize)
		}
		r.b.consume(h.hdrLen)
		// A fresh slice per block: Block.Element outlives this call.
		p, err := r.b.readPayload(nil, h.size)
		if err != nil {
			return Event{}, false, readErr(err, h.off, idName(h.id))
		}
		var blk Block
		if h.id == IDSimpleBlock {
			blk, err = parseSimpleBlock(p, h.payloadOff())
		} else {
			blk, err = parseBlockGroup(p, h.payloadOff())
		}
		if err != nil {
			return Event{}, false, err
		}
		return Event{Type: EventBlock, Offset: h.off, Block: blk}, true, nil
	}
	// Position, PrevSize, Void, CRC-32, BlockAdditions at cluster level, ...
	return Event{}, false, r.skip(h)
}

func (r *Reader) endCluster() error {
	if !r.haveTimecode {
		return invalidf(r.clusterOff, "Cluster without Timecode")
	}
	r.inCluster = false
	return nil
}

// skip streams past an element without holding its payload.
func (r *Reader) skip(h elemHeader) error {
	if h.size < 0 {
		return invalidf(h.off, "%s of unknown size cannot be skipped", idName(h.id))
	}
	r.b.consume(h.hdrLen)
	if err := r.b.discard(h.size); err != nil {
		return readErr(err, h.off, idName(h.id))
	}
	return nil
}

// readWhole reads the payload of an element that is parsed at once, into
// the scratch buffer. Its parsers copy what they keep.
func (r *Reader) readWhole(h elemHeader) ([]byte, error) {
	if h.size < 0 {
		return nil, invalidf(h.off, "%s of unknown size", idName(h.id))
	}
	if h.size > r.opt.MaxElementSize {
		return nil, tooLarge(h.off, h.id, h.size, r.opt.MaxElementSize)
	}
	r.b.consume(h.hdrLen)
	p, err := r.b.readPayload(r.scratch, h.size)
	if err != nil {
		return nil, readErr(err, h.off, idName(h.id))
	}
	if cap(p) <= scratchKeep {
		r.scratch = p[:0]
	}
	return p, nil
}
