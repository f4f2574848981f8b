package ingest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/media/fmp4"
	"github.com/kinema/kinema/internal/media/mkv"
	"github.com/kinema/kinema/internal/putmedia"
	"github.com/kinema/kinema/internal/stream"
)

// Params describe one PutMedia request.
type Params struct {
	Stream          *stream.Stream
	Relative        bool  // x-amzn-fragment-timecode-type: RELATIVE
	ProducerStartMs int64 // x-amzn-producer-start-timestamp, in ms
	// SetReadDeadline bounds each body read (the HTTP connection's deadline);
	// it is how an idle or cancelled session stops a blocked read.
	SetReadDeadline func(time.Time) error
	// Send writes one ack and flushes it as its own HTTP chunk.
	Send func([]byte) error
}

// Summary is what a finished session did.
type Summary struct {
	Fragments int   // fragments completed (RECEIVED)
	Persisted int   // fragments acknowledged PERSISTED
	Bytes     int64 // body bytes read
	ErrorID   int   // the ERROR ack sent, 0 when none
}

// sessionError is a failure that ends the session with an ERROR ack.
type sessionError struct {
	id  int
	err error
}

func (e *sessionError) Error() string {
	return fmt.Sprintf("%s (%d): %v", putmedia.ErrorName(e.id), e.id, e.err)
}

func fail(id int, format string, args ...any) error {
	return &sessionError{id: id, err: fmt.Errorf(format, args...)}
}

type pendingPersist struct {
	frag     *stream.Fragment
	timecode uint64
	done     <-chan error
	received time.Time // when the fragment's end arrived: PERSISTED latency starts there
}

type session struct {
	c         *Conn
	svc       *Service
	ctx       context.Context
	cancel    context.CancelFunc
	p         Params
	bodyEnded atomic.Bool // the body reader returned io.EOF
	lim       Limits
	acks      chan putmedia.Ack
	queue     chan pendingPersist
	sum       Summary
	header    *mkv.Header
	hdrID     int64
	tracks    map[uint64]bool
	// playable is the header's tracks as readers package them, nil when
	// a codec is not one Kinema repackages; it lets ingest store each
	// fragment's sample table for clips.
	playable []*fmp4.Track

	open *fragmentBuilder
	// announced is the last fragment whose blocks went to live readers
	// before it was complete (Hub.PublishOpen).
	announced stream.FragmentNumber
	pending   []stream.Tag // tags that arrived while no fragment was open
	prevTicks uint64
	havePrev  bool
	lastTC    uint64 // timecode of the newest fragment, for ERROR acks
	lastNum   string
}

// Run reads the body to its end (or the first error) and acknowledges every
// fragment. It returns once the last ack has been written.
func (c *Conn) Run(ctx context.Context, p Params, body io.Reader) (Summary, error) {
	svc := c.svc
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	svc.Metrics.SessionStarted()
	defer svc.Metrics.SessionEnded()
	s := &session{
		c: c, svc: svc, ctx: ctx, cancel: cancel, p: p, lim: svc.Limits,
		acks:  make(chan putmedia.Ack, 64),
		queue: make(chan pendingPersist, 64),
	}

	// Acks go out from one goroutine, one flushed chunk each, in the order
	// they were produced.
	var writeErr error
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for a := range s.acks {
			if writeErr != nil {
				continue
			}
			if err := p.Send(a.Marshal()); err != nil {
				writeErr = err
				cancel()
			}
		}
	}()

	// PERSISTED acks follow the archive's outcomes in fragment order.
	var persistErr error
	persisterDone := make(chan struct{})
	go func() {
		defer close(persisterDone)
		for pp := range s.queue {
			err := <-pp.done
			if err != nil {
				if persistErr == nil {
					persistErr = err
					svc.Log.Error("fragment not persisted", "stream", p.Stream.Name, "fragment", pp.frag.Number.String(), "err", err)
					s.acks <- putmedia.Ack{EventType: putmedia.AckError, HasFragment: true, FragmentTimecode: pp.timecode,
						FragmentNumber: pp.frag.Number.String(), ErrorID: putmedia.ErrArchival}
					cancel()
				}
				continue
			}
			s.sum.Persisted++
			svc.Metrics.Persisted(time.Since(pp.received))
			s.acks <- putmedia.Ack{EventType: putmedia.AckPersisted, HasFragment: true, FragmentTimecode: pp.timecode, FragmentNumber: pp.frag.Number.String()}
		}
	}()

	// IDLE acks while the producer sends nothing; the body read deadline ends
	// the session after IdleTimeout.
	idleDone, idleExited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(idleExited)
		s.idleLoop(idleDone)
	}()
	// Whatever cancels the session must also unblock a body read in progress.
	// The deadline belongs to the connection, which may carry the next
	// request: Run does not return while the func may still set it.
	// Once the body has ended net/http reads the connection in the
	// background, and a past deadline there would cancel the connection's
	// context for good, failing the next request on it: set it only while
	// the body can still be read.
	readStopped := make(chan struct{})
	stopRead := context.AfterFunc(ctx, func() {
		defer close(readStopped)
		if p.SetReadDeadline != nil && !s.bodyEnded.Load() {
			p.SetReadDeadline(time.Unix(1, 0))
		}
	})
	defer func() {
		if !stopRead() {
			<-readStopped
		}
	}()

	err := s.read(body)
	c.Release()
	close(idleDone)
	<-idleExited

	var se *sessionError
	switch {
	case err == nil:
	case errors.As(err, &se):
		s.sum.ErrorID = se.id
	case ctx.Err() != nil:
		err = nil // stopped on purpose: write failure, persist failure, pre-emption
	}
	if s.open != nil && err == nil {
		err = s.complete()
		errors.As(err, &se)
	}
	// A fragment cut off unfinished is no longer being received.
	s.svc.Archive.Live.DropOpen(p.Stream.ID, s.announced)
	close(s.queue)
	<-persisterDone
	if se != nil {
		if persistErr == nil {
			s.acks <- s.errorAck(se.id)
			svc.Metrics.Error(se.id)
		}
		svc.Log.Warn("PutMedia ended with an error", "stream", p.Stream.Name, "error_id", se.id, "err", se.err)
	}
	close(s.acks)
	<-writerDone
	if persistErr != nil {
		s.sum.ErrorID = putmedia.ErrArchival
		svc.Metrics.Error(putmedia.ErrArchival)
		return s.sum, persistErr
	}
	if err == nil {
		err = writeErr
	}
	return s.sum, err
}

func (s *session) errorAck(id int) putmedia.Ack {
	a := putmedia.Ack{EventType: putmedia.AckError, ErrorID: id}
	switch {
	case s.open != nil:
		a.HasFragment, a.FragmentTimecode, a.FragmentNumber = true, s.open.sentTimecode, s.open.frag.Number.String()
	case s.lastNum != "":
		a.HasFragment, a.FragmentTimecode, a.FragmentNumber = true, s.lastTC, s.lastNum
	}
	return a
}

func (s *session) idleLoop(done <-chan struct{}) {
	t := time.NewTicker(s.lim.IdleAckInterval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-s.c.preempt:
			// A newer connection took over: stop reading now.
			s.cancel()
			return
		case <-t.C:
			idle := time.Duration(s.svc.Now().UnixNano() - s.c.lastData.Load())
			if idle >= s.lim.IdleAckInterval {
				select {
				case s.acks <- putmedia.Ack{EventType: putmedia.AckIdle}:
				default:
				}
			}
		}
	}
}

// deadlineReader refreshes the read deadline before every read and records
// when bytes last arrived.
type deadlineReader struct {
	r io.Reader
	s *session
}

func (d deadlineReader) Read(b []byte) (int, error) {
	if d.s.p.SetReadDeadline != nil {
		d.s.p.SetReadDeadline(time.Now().Add(d.s.lim.IdleTimeout))
	}
	n, err := d.r.Read(b)
	if err == io.EOF {
		d.s.bodyEnded.Store(true)
	}
	if n > 0 {
		d.s.c.lastData.Store(d.s.svc.Now().UnixNano())
		d.s.sum.Bytes += int64(n)
		d.s.svc.Metrics.Read(n)
	}
	return n, err
}

func (s *session) read(body io.Reader) error {
	opt := mkv.Options{MaxBlockSize: s.lim.MaxFragmentBytes, MaxResync: s.lim.MaxResync}
	// A producer that reconnects after an ERROR ack may send no EBML header:
	// read such a body with the stream's last track set.
	if id, data, err := s.svc.Archive.Index.LastHeader(s.ctx, s.p.Stream.ID); err == nil {
		if h, err := mkv.DecodeHeaderTracks(data); err == nil {
			opt.Header = h
			s.setHeader(h, id)
		}
	}
	r := mkv.NewReader(deadlineReader{r: body, s: s}, opt)
	for {
		ev, err := r.Next()
		if err != nil {
			return s.readError(err)
		}
		if err := s.handle(ev); err != nil {
			return err
		}
	}
}

func (s *session) readError(err error) error {
	switch {
	case errors.Is(err, io.EOF):
		return nil
	case s.ctx.Err() != nil:
		return s.ctx.Err()
	case errors.Is(err, mkv.ErrTooLarge):
		if s.open != nil {
			return fail(putmedia.ErrMaxFragmentSize, "%v", err)
		}
		return fail(putmedia.ErrInvalidMKV, "%v", err)
	case errors.Is(err, mkv.ErrInvalid), errors.Is(err, io.ErrUnexpectedEOF):
		return fail(putmedia.ErrInvalidMKV, "%v", err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.svc.Log.Info("PutMedia idle timeout", "stream", s.p.Stream.Name)
		s.open = nil // an unfinished fragment is dropped, not acknowledged
		return nil
	default:
		s.open = nil
		return fail(putmedia.ErrStreamRead, "%v", err)
	}
}

func (s *session) handle(ev mkv.Event) error {
	switch ev.Type {
	case mkv.EventHeader:
		if s.open != nil {
			if err := s.complete(); err != nil {
				return err
			}
		}
		if len(ev.Header.Tracks) > s.lim.MaxTracks {
			return fail(putmedia.ErrTooManyTracks, "%d tracks, at most %d allowed", len(ev.Header.Tracks), s.lim.MaxTracks)
		}
		if len(ev.Header.Tracks) == 0 {
			return fail(putmedia.ErrInvalidMKV, "the Tracks element declares no track")
		}
		// A track set is its tracks: a producer that restarts sends a new
		// SegmentUID (and maybe another app name) with the same codec data,
		// and players must not see that as a codec change.
		h := *ev.Header
		h.SegmentUID, h.Title, h.MuxingApp, h.WritingApp = nil, "", "", ""
		id, err := s.svc.Archive.Index.PutHeader(s.ctx, s.p.Stream.ID, mkv.EncodeHeaderTracks(h))
		if err != nil {
			return fail(putmedia.ErrInternal, "storing track set: %v", err)
		}
		s.setHeader(ev.Header, id)
	case mkv.EventClusterStart:
		if s.open != nil {
			if err := s.complete(); err != nil {
				return err
			}
		}
		return s.start(ev.ClusterTimecode)
	case mkv.EventBlock:
		return s.block(ev.Block)
	case mkv.EventTags:
		return s.tags(ev.Tags)
	case mkv.EventResync:
		s.svc.Log.Warn("PutMedia body started mid-element; skipped to the next Cluster",
			"stream", s.p.Stream.Name, "skipped_bytes", ev.Skipped)
	}
	return nil
}

func (s *session) setHeader(h *mkv.Header, id int64) {
	s.header, s.hdrID = h, id
	s.playable, _ = fmp4.TracksFromHeader(*h)
	s.tracks = map[uint64]bool{}
	for _, t := range h.Tracks {
		s.tracks[t.Number] = true
	}
}

// ticksToMs converts Matroska ticks to ms.
func (s *session) ticksToMs(ticks int64) int64 {
	return ticks * int64(s.header.TimecodeScale) / 1_000_000
}

func (s *session) start(tc uint64) error {
	if s.header == nil {
		return fail(putmedia.ErrInvalidMKV, "Cluster before Tracks")
	}
	ticks := tc
	if s.p.Relative {
		ticks = uint64(s.p.ProducerStartMs*1_000_000/int64(s.header.TimecodeScale)) + tc
	}
	if s.havePrev && ticks <= s.prevTicks {
		return fail(putmedia.ErrTimecodeBackwards, "cluster timecode %d is not after the previous fragment's", tc)
	}
	producerMs := s.ticksToMs(int64(ticks))
	if ticks > 1<<62 || producerMs < 0 || producerMs > 1e13 {
		return fail(putmedia.ErrInvalidProducerTime, "cluster timecode %d gives producer time %d ms", tc, producerMs)
	}
	num, err := s.svc.Archive.NextFragmentNumber(s.ctx)
	if err != nil {
		return fail(putmedia.ErrInternal, "allocating a fragment number: %v", err)
	}
	s.prevTicks, s.havePrev = ticks, true
	f := &fragmentBuilder{sentTimecode: tc, ticks: ticks}
	f.frag = stream.Fragment{
		Number: num, StreamID: s.p.Stream.ID, ProducerMs: producerMs,
		ServerMs: s.svc.Now().UnixMilli(), HeaderID: s.hdrID,
	}
	f.begin()
	s.open = f
	s.lastTC, s.lastNum = tc, num.String()
	if err := s.addTags(s.pending); err != nil {
		return err
	}
	s.pending = nil
	s.acks <- putmedia.Ack{EventType: putmedia.AckBuffering, HasFragment: true, FragmentTimecode: tc, FragmentNumber: num.String()}
	return nil
}

func (s *session) block(b mkv.Block) error {
	f := s.open
	if f == nil {
		return fail(putmedia.ErrInvalidMKV, "block outside a Cluster")
	}
	if !s.tracks[b.Track] {
		return fail(putmedia.ErrTrackMismatch, "block for track %d, which Tracks does not declare", b.Track)
	}
	if ms := s.ticksToMs(int64(b.Timecode)); ms > s.lim.MaxFragmentDuration.Milliseconds() {
		return fail(putmedia.ErrMaxFragmentDuration, "frame %d ms into the fragment; at most %v allowed", ms, s.lim.MaxFragmentDuration)
	}
	if int64(len(f.buf)+len(b.Element))+16 > s.lim.MaxFragmentBytes {
		return fail(putmedia.ErrMaxFragmentSize, "fragment exceeds %d bytes", s.lim.MaxFragmentBytes)
	}
	f.add(b)
	// Low-latency readers serve a fragment's first frames before its end.
	s.svc.Archive.Live.PublishOpen(f.frag, f.body())
	s.announced = f.frag.Number
	return nil
}

func (s *session) tags(tags []mkv.SimpleTag) error {
	end := false
	var keep []stream.Tag
	for _, t := range tags {
		if t.Name == stream.TagEndOfFragment {
			end = true
			continue
		}
		keep = append(keep, stream.Tag{Name: t.Name, Value: t.Value})
	}
	if s.open == nil {
		s.pending = append(s.pending, keep...)
		return s.checkTags(s.pending)
	}
	if err := s.addTags(keep); err != nil {
		return err
	}
	if end {
		return s.complete()
	}
	return nil
}

func (s *session) addTags(tags []stream.Tag) error {
	s.open.frag.Tags = append(s.open.frag.Tags, tags...)
	return s.checkTags(s.open.frag.Tags)
}

// checkTags applies the KVS fragment-metadata limits: at most MaxCustomTags
// tags of the producer's own (AWS_KINESISVIDEO_* event tags do not count),
// and bounded name and value sizes for all.
func (s *session) checkTags(tags []stream.Tag) error {
	custom := 0
	for _, t := range tags {
		if len(t.Name) == 0 || len(t.Name) > s.lim.MaxTagNameBytes {
			return fail(putmedia.ErrMetadataLimit, "tag name of %d bytes; 1 to %d allowed", len(t.Name), s.lim.MaxTagNameBytes)
		}
		if len(t.Value) > s.lim.MaxTagValueBytes {
			return fail(putmedia.ErrMetadataLimit, "value of tag %q has %d bytes; at most %d allowed", t.Name, len(t.Value), s.lim.MaxTagValueBytes)
		}
		if len(t.Name) < len(stream.SystemTagPrefix) || t.Name[:len(stream.SystemTagPrefix)] != stream.SystemTagPrefix {
			custom++
		}
	}
	if custom > s.lim.MaxCustomTags {
		return fail(putmedia.ErrMetadataLimit, "%d metadata tags in one fragment; at most %d allowed", custom, s.lim.MaxCustomTags)
	}
	return nil
}

// complete closes the open fragment: RECEIVED, hand it to live readers, and
// queue it for the archive (whose outcome becomes PERSISTED or ERROR 5001).
func (s *session) complete() error {
	received := time.Now()
	f := s.open
	s.open = nil
	if _, err := s.svc.Archive.Index.StreamByID(s.ctx, s.p.Stream.ID); err != nil {
		if errors.Is(err, archive.ErrNotFound) {
			s.open = f // the ERROR ack names this fragment
			return fail(putmedia.ErrStreamNotActive, "stream %s was deleted", s.p.Stream.Name)
		}
		s.open = f
		return fail(putmedia.ErrInternal, "checking the stream: %v", err)
	}
	data := f.finish()
	f.frag.DurationMs = s.ticksToMs(f.durationTicks())
	f.frag.SizeBytes = int64(len(data))
	if s.playable != nil {
		// ~15 µs per 500 kB fragment; a clip that cannot use the table
		// (none stored) reads the fragment instead.
		f.frag.SampleTable, _ = fmp4.SampleTable(*s.header, s.playable, data)
	}
	s.sum.Fragments++
	s.svc.Metrics.Fragment()
	if dup := s.storedCopy(&f.frag, data); dup != nil {
		// A producer resends fragments whose PERSISTED ack it never got (the
		// connection dropped in between); the archive keeps one copy, and
		// the acks name the stored fragment.
		num := dup.Number.String()
		s.acks <- putmedia.Ack{EventType: putmedia.AckReceived, HasFragment: true, FragmentTimecode: f.sentTimecode, FragmentNumber: num}
		done := make(chan error, 1)
		done <- nil
		s.queue <- pendingPersist{frag: dup, timecode: f.sentTimecode, done: done, received: received}
		return nil
	}
	num := f.frag.Number.String()
	s.acks <- putmedia.Ack{EventType: putmedia.AckReceived, HasFragment: true, FragmentTimecode: f.sentTimecode, FragmentNumber: num}
	keep := s.p.Stream.RetentionHours == 0
	s.svc.Archive.Live.Publish(f.frag, data, keep)
	if keep {
		return nil // no archive: KVS sends no PERSISTED for such streams
	}
	done, err := s.svc.Archive.PersistAsync(s.ctx, &f.frag, data)
	if err != nil {
		return err
	}
	s.queue <- pendingPersist{frag: &f.frag, timecode: f.sentTimecode, done: done, received: received}
	return nil
}

// storedCopy returns the archived fragment this one repeats byte for byte
// (same stream, same producer start), or nil.
func (s *session) storedCopy(f *stream.Fragment, data []byte) *stream.Fragment {
	if s.p.Stream.RetentionHours == 0 {
		return nil
	}
	same, err := s.svc.Archive.Index.Fragments(s.ctx, archive.FragmentQuery{StreamID: f.StreamID,
		Kind: archive.ProducerTimestamp, StartMs: f.ProducerMs, EndMs: f.ProducerMs, Limit: 4})
	if err != nil {
		return nil // storing a second copy is the safe side
	}
	for i := range same {
		c := &same[i]
		if c.SizeBytes != f.SizeBytes {
			continue
		}
		if stored, err := s.svc.Archive.Read(s.ctx, c); err == nil && bytes.Equal(stored, data) {
			return c
		}
	}
	return nil
}

// fragmentBuilder accumulates one fragment's Cluster in its stored form: a
// Cluster of known size whose Timecode is the absolute producer time in
// ticks, followed by the blocks as received.
type fragmentBuilder struct {
	frag         stream.Fragment
	sentTimecode uint64
	ticks        uint64
	buf          []byte
	blocks       int
	// Per track, the two latest distinct presentation times: the last
	// frame lasts as long as the gap between them. (Tracking the jumps of
	// the running maximum instead would measure a whole B-frame mini-GOP.)
	times [maxTrackTimes]trackTimes
}

const maxTrackTimes = 4

type trackTimes struct {
	track         uint64
	last, before  int16
	seen, seenTwo bool
}

const (
	clusterSizeOffset = 4                     // after the 4-byte Cluster ID
	clusterBodyOffset = clusterSizeOffset + 8 // after its 8-byte size
)

// body is the Cluster's content so far. Its bytes are never written again
// (finish patches only the size before it; blocks are appended after it),
// so live readers may keep it.
func (f *fragmentBuilder) body() []byte {
	return f.buf[clusterBodyOffset:len(f.buf):len(f.buf)]
}

func (f *fragmentBuilder) begin() {
	f.buf = make([]byte, 0, 256<<10)
	f.buf = mkv.AppendID(f.buf, mkv.IDCluster)
	f.buf = append(f.buf, 0x01, 0, 0, 0, 0, 0, 0, 0) // 8-byte size, patched by finish
	f.buf = mkv.AppendID(f.buf, mkv.IDTimecode)
	f.buf = append(f.buf, 0x88)
	f.buf = binary.BigEndian.AppendUint64(f.buf, f.ticks)
}

func (f *fragmentBuilder) add(b mkv.Block) {
	id := uint32(mkv.IDSimpleBlock)
	if b.Group {
		id = mkv.IDBlockGroup
	}
	f.buf = mkv.AppendElement(f.buf, id, b.Element)
	f.blocks++
	for i := range f.times {
		tt := &f.times[i]
		if tt.seen && tt.track != b.Track {
			continue
		}
		tc := b.Timecode
		switch {
		case !tt.seen:
			*tt = trackTimes{track: b.Track, last: tc, seen: true}
		case tc > tt.last:
			tt.before, tt.last, tt.seenTwo = tt.last, tc, true
		case tc < tt.last && (!tt.seenTwo || tc > tt.before):
			tt.before, tt.seenTwo = tc, true
		}
		return
	}
}

func (f *fragmentBuilder) finish() []byte {
	size := uint64(len(f.buf) - clusterSizeOffset - 8)
	var sz [8]byte
	binary.BigEndian.PutUint64(sz[:], size)
	sz[0] = 0x01
	copy(f.buf[clusterSizeOffset:], sz[:])
	return f.buf
}

// durationTicks spans from the Cluster start to the end of the last frame
// of any track, each track's last frame lasting as long as the gap before it.
func (f *fragmentBuilder) durationTicks() int64 {
	var end int64
	for _, tt := range f.times {
		if !tt.seen {
			continue
		}
		frame := int64(0)
		if tt.seenTwo {
			frame = int64(tt.last) - int64(tt.before)
		}
		end = max(end, int64(tt.last)+frame)
	}
	return end
}
