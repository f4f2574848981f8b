package archive

import (
	"sync"

	"github.com/kinema/kinema/internal/stream"
)

// LiveFragment is a fragment as live readers see it: published when it is
// RECEIVED, before it is durable, so tailing readers need not wait for the
// disk. Data is kept only until the fragment is persisted (then readers go
// to the archive), except for the newest fragment of a stream without an
// archive (retention 0), which is all such a stream has.
type LiveFragment struct {
	Fragment  stream.Fragment
	Data      []byte
	Persisted bool
}

// Hub fans newly received fragments out to live readers, per stream.
type Hub struct {
	mu      sync.Mutex
	streams map[int64]*liveStream
}

// recentPerStream is how many recent fragments a new subscriber is given, so
// that a fragment received just before it subscribed, and not yet in the
// index, is not missed.
const recentPerStream = 4

type liveStream struct {
	recent []*LiveFragment
	subs   map[*Subscription]struct{}
}

// Subscription receives a stream's new fragments. C is closed when the
// subscriber fell too far behind (it should catch up from the index and
// subscribe again) or was cancelled.
type Subscription struct {
	C        chan LiveFragment
	hub      *Hub
	streamID int64
	closed   bool
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{streams: map[int64]*liveStream{}} }

func (h *Hub) stream(id int64) *liveStream {
	ls := h.streams[id]
	if ls == nil {
		ls = &liveStream{subs: map[*Subscription]struct{}{}}
		h.streams[id] = ls
	}
	return ls
}

// Publish announces a received fragment. The hub keeps data until Persisted
// is called for it (or, with keepData, for as long as it is the newest).
func (h *Hub) Publish(f stream.Fragment, data []byte, keepData bool) {
	lf := &LiveFragment{Fragment: f, Data: data}
	h.mu.Lock()
	defer h.mu.Unlock()
	ls := h.stream(f.StreamID)
	if keepData {
		for _, old := range ls.recent {
			old.Data = nil
		}
	}
	ls.recent = append(ls.recent, lf)
	if len(ls.recent) > recentPerStream {
		ls.recent = ls.recent[1:]
	}
	for s := range ls.subs {
		select {
		case s.C <- *lf: // a copy: the hub may drop its Data later
		default: // too slow: make it catch up from the index
			s.closeLocked(ls)
		}
	}
}

// Persisted marks a fragment durable; its bytes can now be read from the archive.
func (h *Hub) Persisted(streamID int64, n stream.FragmentNumber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ls := h.streams[streamID]
	if ls == nil {
		return
	}
	for _, lf := range ls.recent {
		if lf.Fragment.Number == n {
			// Readers now go to the archive (and the page cache); holding
			// every stream's newest fragment would cost a fragment per camera.
			lf.Persisted, lf.Data = true, nil
		}
	}
}

// Recent returns copies of the stream's most recently received fragments, oldest first.
func (h *Hub) Recent(streamID int64) []LiveFragment {
	h.mu.Lock()
	defer h.mu.Unlock()
	ls := h.streams[streamID]
	if ls == nil {
		return nil
	}
	out := make([]LiveFragment, len(ls.recent))
	for i, lf := range ls.recent {
		out[i] = *lf
	}
	return out
}

// Subscribe starts receiving the stream's fragments; the recent ones come first.
func (h *Hub) Subscribe(streamID int64) *Subscription {
	h.mu.Lock()
	defer h.mu.Unlock()
	ls := h.stream(streamID)
	s := &Subscription{C: make(chan LiveFragment, 64), hub: h, streamID: streamID}
	for _, lf := range ls.recent {
		s.C <- *lf
	}
	ls.subs[s] = struct{}{}
	return s
}

// Forget drops everything the hub holds for a deleted stream and ends its subscriptions.
func (h *Hub) Forget(streamID int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ls := h.streams[streamID]
	if ls == nil {
		return
	}
	for s := range ls.subs {
		s.closeLocked(ls)
	}
	delete(h.streams, streamID)
}

// Cancel ends the subscription.
func (s *Subscription) Cancel() {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	if ls := s.hub.streams[s.streamID]; ls != nil {
		s.closeLocked(ls)
	}
}

func (s *Subscription) closeLocked(ls *liveStream) {
	if s.closed {
		return
	}
	s.closed = true
	delete(ls.subs, s)
	close(s.C)
}
