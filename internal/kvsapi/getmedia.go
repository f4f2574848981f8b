package kvsapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/kinema/kinema/internal/apierr"
	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/media/kvsmkv"
	"github.com/kinema/kinema/internal/media/mkv"
	"github.com/kinema/kinema/internal/stream"
)

// chunkHeader returns a stored track set (the Info and Tracks elements a
// response opens with), memoized: every fragment of a session shares one,
// and an index lookup per fragment would be wasted work.
func (s *Server) chunkHeader(ctx context.Context, id int64) ([]byte, error) {
	if b, ok := s.headers.Get(id); ok {
		return b, nil
	}
	_, b, err := s.cfg.Archive.Index.Header(ctx, id)
	if err != nil {
		return nil, err
	}
	s.headers.Put(id, b)
	return b, nil
}

// fragmentBytes returns a fragment's Cluster from the live hub when it is
// there (a fragment not yet durable), else from the archive.
func (s *Server) fragmentBytes(ctx context.Context, f *stream.Fragment, live []byte) ([]byte, error) {
	if live != nil {
		return live, nil
	}
	return s.cfg.Archive.Read(ctx, f)
}

type getMediaForFragmentListInput struct {
	streamRef
	Fragments []string `json:"Fragments"`
}

func (s *Server) getMediaForFragmentList(c *call) error {
	var in getMediaForFragmentListInput
	if err := c.decode(&in); err != nil {
		return err
	}
	if len(in.Fragments) < 1 || len(in.Fragments) > 1000 {
		return apierr.InvalidArg("Fragments must list 1 to 1000 fragment numbers; got %d", len(in.Fragments))
	}
	nums := make([]stream.FragmentNumber, len(in.Fragments))
	for i, v := range in.Fragments {
		if err := checkPattern("fragment number", v, 1, 128, reFragNumber); err != nil {
			return err
		}
		n, err := stream.ParseFragmentNumber(v)
		if err != nil {
			return apierr.InvalidArg("Fragment numbers are invalid: %v", err)
		}
		nums[i] = n
	}
	st, err := s.resolve(c.ctx, in.streamRef)
	if err != nil {
		return err
	}
	frags := make([]*stream.Fragment, len(nums))
	found := 0
	for i, n := range nums {
		f, err := s.cfg.Archive.Index.Fragment(c.ctx, st.ID, n)
		if errors.Is(err, archive.ErrNotFound) {
			continue
		}
		if err != nil {
			return apierr.Internal(err)
		}
		frags[i] = f
		found++
	}
	if found == 0 {
		return apierr.NotFound("none of the requested fragments exist in stream %s", st.Name)
	}
	c.w.Header().Set("Content-Type", "video/webm")
	c.w.WriteHeader(http.StatusOK)
	// A fragment that went missing since it was listed is reported in-band,
	// as KVS does, so the rest of the list still arrives.
	var buf []byte
	mw := &kvsmkv.Writer{Flavor: kvsmkv.FragmentList}
	for i, f := range frags {
		buf = buf[:0]
		if f == nil {
			buf = mw.AppendError(buf, "FRAGMENT_NOT_FOUND", 3000, in.Fragments[i])
		} else if buf, err = s.appendFragment(c.ctx, mw, buf, f, nil, nil); err != nil {
			c.log.Error("reading fragment failed", "fragment", f.Number.String(), "err", err)
			buf = mw.AppendError(buf[:0], "INTERNAL_ERROR", 5000, in.Fragments[i])
		}
		if _, err := c.w.Write(buf); err != nil {
			return nil // the client went away
		}
	}
	return nil
}

func (s *Server) appendFragment(ctx context.Context, mw *kvsmkv.Writer, dst []byte, f *stream.Fragment, live []byte, trailer []mkv.SimpleTag) ([]byte, error) {
	hdr, err := s.chunkHeader(ctx, f.HeaderID)
	if err != nil {
		return dst, err
	}
	cluster, err := s.fragmentBytes(ctx, f, live)
	if err != nil {
		return dst, err
	}
	return mw.AppendFragment(dst, f.HeaderID, hdr, f, cluster, trailer), nil
}

type getMediaInput struct {
	streamRef
	StartSelector *struct {
		StartSelectorType   *string              `json:"StartSelectorType"`
		AfterFragmentNumber *string              `json:"AfterFragmentNumber"`
		StartTimestamp      *stream.EpochSeconds `json:"StartTimestamp"`
		ContinuationToken   *string              `json:"ContinuationToken"`
	} `json:"StartSelector"`
}

// getMedia streams the stream's fragments from the chosen start, then tails
// new ones as they are received, until the client leaves or nothing new has
// come for GetMediaIdle. Each fragment ends with the millis-behind-now and
// continuation-token tags.
func (s *Server) getMedia(c *call) error {
	var in getMediaInput
	if err := c.decode(&in); err != nil {
		return err
	}
	if in.StartSelector == nil || in.StartSelector.StartSelectorType == nil {
		return apierr.InvalidArg("StartSelector with StartSelectorType is required")
	}
	sel := in.StartSelector
	typ := *sel.StartSelectorType
	if err := checkEnum("StartSelectorType", typ, "FRAGMENT_NUMBER", "SERVER_TIMESTAMP", "PRODUCER_TIMESTAMP",
		"NOW", "EARLIEST", "CONTINUATION_TOKEN"); err != nil {
		return err
	}
	st, err := s.resolve(c.ctx, in.streamRef)
	if err != nil {
		return err
	}
	if s.cfg.Limits != nil {
		release, err := s.cfg.Limits.Reader(st.ID)
		if err != nil {
			return limitError(err)
		}
		defer release()
	}
	s.cfg.Readers.GetMediaStarted()
	defer s.cfg.Readers.GetMediaEnded()
	idx := s.cfg.Archive.Index
	// cursor: the number of the last fragment "already delivered"; the
	// response starts after it. fromLatest: NOW starts with the newest fragment.
	var cursor stream.FragmentNumber
	fromLatest := false
	switch typ {
	case "EARLIEST":
	case "NOW":
		fromLatest = true
	case "FRAGMENT_NUMBER", "CONTINUATION_TOKEN":
		v, field := sel.AfterFragmentNumber, "AfterFragmentNumber"
		if typ == "CONTINUATION_TOKEN" {
			v, field = sel.ContinuationToken, "ContinuationToken"
		}
		if v == nil {
			return apierr.InvalidArg("%s is required with StartSelectorType %s", field, typ)
		}
		if err := checkPattern(field, *v, 1, 128, reFragNumber); err != nil {
			return err
		}
		n, err := stream.ParseFragmentNumber(*v)
		if err != nil {
			return apierr.InvalidArg("%s: %v", field, err)
		}
		if typ == "FRAGMENT_NUMBER" {
			if _, err := idx.Fragment(c.ctx, st.ID, n); errors.Is(err, archive.ErrNotFound) {
				return apierr.NotFound("fragment %s is not found in stream %s", *v, st.Name)
			}
		}
		cursor = n
	case "SERVER_TIMESTAMP", "PRODUCER_TIMESTAMP":
		if sel.StartTimestamp == nil {
			return apierr.InvalidArg("StartTimestamp is required with StartSelectorType %s", typ)
		}
		kind, _ := selectorKind("StartSelectorType", typ)
		// Start with the fragment that contains the time: the last one that
		// starts at or before it, else the first after it.
		ts := sel.StartTimestamp.Ms()
		before, err := idx.Fragments(c.ctx, archive.FragmentQuery{StreamID: st.ID, Kind: kind, StartMs: ts - 60_000, EndMs: ts, Limit: 1000})
		if err != nil {
			return apierr.Internal(err)
		}
		if len(before) > 0 {
			cursor = before[len(before)-1].Number - 1
		} else {
			after, err := idx.Fragments(c.ctx, archive.FragmentQuery{StreamID: st.ID, Kind: kind, StartMs: ts, EndMs: 1 << 62, Limit: 1})
			if err != nil {
				return apierr.Internal(err)
			}
			if len(after) > 0 {
				cursor = after[0].Number - 1
			} else if latest, err := idx.LatestFragment(c.ctx, st.ID); err == nil {
				cursor = latest.Number // nothing at or after the time yet: tail
			}
		}
	}
	if fromLatest {
		if newest, err := s.cfg.Archive.Newest(c.ctx, st.ID); err == nil {
			cursor = newest.Number - 1
		}
	}

	c.w.Header().Set("Content-Type", "video/webm")
	c.w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(c.w)
	rc.Flush()
	t := &tailer{s: s, c: c, st: st, cursor: cursor, rc: rc, mw: &kvsmkv.Writer{Flavor: kvsmkv.GetMedia}}
	t.run()
	return nil
}

// tailer delivers fragments after cursor: first from the index, then live
// from the hub, falling back to the index whenever it cannot keep up.
type tailer struct {
	s      *Server
	c      *call
	st     *stream.Stream
	cursor stream.FragmentNumber
	rc     *http.ResponseController
	mw     *kvsmkv.Writer
	buf    []byte
}

func (t *tailer) send(f *stream.Fragment, live []byte) bool {
	var err error
	behind := time.Now().UnixMilli() - (f.ServerMs + f.DurationMs)
	trailer := kvsmkv.GetMediaTrailer(behind, f.Number.String())
	t.buf, err = t.s.appendFragment(t.c.ctx, t.mw, t.buf[:0], f, live, trailer)
	if err != nil {
		t.c.log.Error("reading fragment failed", "fragment", f.Number.String(), "err", err)
		t.buf = t.mw.AppendError(t.buf[:0], "INTERNAL_ERROR", 5000, f.Number.String())
	}
	if _, err := t.c.w.Write(t.buf); err != nil {
		return false
	}
	t.rc.Flush()
	t.cursor = f.Number
	return true
}

func (t *tailer) run() {
	ctx := t.c.ctx
	idx := t.s.cfg.Archive.Index
	for ctx.Err() == nil {
		sub := t.s.cfg.Archive.Live.Subscribe(t.st.ID)
		// Catch up from the index; the subscription buffers what arrives meanwhile.
		for {
			frags, err := idx.FragmentsAfter(ctx, t.st.ID, t.cursor, 100)
			if err != nil {
				sub.Cancel()
				return
			}
			for i := range frags {
				if !t.send(&frags[i], nil) {
					sub.Cancel()
					return
				}
			}
			if len(frags) < 100 {
				break
			}
		}
		if !t.follow(sub) {
			sub.Cancel()
			return
		}
	}
}

// follow sends live fragments until the subscription lapses (returns true:
// catch up again) or the response should end (false).
func (t *tailer) follow(sub *archive.Subscription) bool {
	idle := time.NewTimer(t.s.cfg.GetMediaIdle)
	defer idle.Stop()
	for {
		select {
		case <-t.c.ctx.Done():
			return false
		case <-idle.C:
			return false
		case lf, ok := <-sub.C:
			if !ok {
				return true
			}
			if lf.Fragment.Number <= t.cursor {
				continue
			}
			if lf.Data == nil {
				// Durable already, and dropped from memory or announced by
				// the node that ingests the stream, whose earlier
				// announcements may have been lost: take what follows the
				// cursor from the index, in order.
				frags, err := t.s.cfg.Archive.Index.FragmentsAfter(t.c.ctx, t.st.ID, t.cursor, 100)
				if err != nil {
					continue
				}
				for i := range frags {
					if !t.send(&frags[i], nil) {
						return false
					}
				}
				idle.Reset(t.s.cfg.GetMediaIdle)
				continue
			}
			f := lf.Fragment
			if !t.send(&f, lf.Data) {
				return false
			}
			idle.Reset(t.s.cfg.GetMediaIdle)
		}
	}
}
