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
	open   OpenFragment // valid while isOpen; a value, so a camera's every block does not allocate
	isOpen bool
	// changed is closed at the stream's next change (a fragment or a
	// block received); made only when someone waits, so that a camera's
	// every frame does not allocate a channel nobody reads.
	changed chan struct{}
}

// OpenFragment is the fragment a producer is sending right now, as far as
// it has arrived: low-latency readers serve its first frames before it is
// complete.
type OpenFragment struct {
	Fragment stream.Fragment // number, times and track set; no duration or size yet
	// Body is the Cluster's content so far: its Timecode and whole blocks,
	// without the Cluster's ID and size. The bytes never change; later
	// blocks are published as a longer Body.
	Body []byte
}

func (ls *liveStream) notify() {
	if ls.changed != nil {
		close(ls.changed)
		ls.changed = nil
	}
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
	h.publish(&LiveFragment{Fragment: f, Data: data}, keepData, false)
}

// PublishPersisted announces a fragment that another node received and
// made durable: readers here follow it from the archive. Streams nobody
// here has followed are left out, so that a node does not hold the recent
// fragments of every camera of the cluster.
func (h *Hub) PublishPersisted(f stream.Fragment) {
	h.publish(&LiveFragment{Fragment: f, Persisted: true}, false, true)
}

func (h *Hub) publish(lf *LiveFragment, keepData, onlyFollowed bool) {
	f := &lf.Fragment
	h.mu.Lock()
	defer h.mu.Unlock()
	if onlyFollowed && h.streams[f.StreamID] == nil {
		return
	}
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
	if ls.isOpen && ls.open.Fragment.Number == f.Number {
		ls.open, ls.isOpen = OpenFragment{}, false
	}
	ls.notify()
	for s := range ls.subs {
		select {
		case s.C <- *lf: // a copy: the hub may drop its Data later
		default: // too slow: make it catch up from the index
			s.closeLocked(ls)
		}
	}
}

// PublishOpen announces the blocks received so far of the stream's open
// fragment (replacing what was published of it before).
func (h *Hub) PublishOpen(f stream.Fragment, body []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ls := h.stream(f.StreamID)
	ls.open, ls.isOpen = OpenFragment{Fragment: f, Body: body}, true
	ls.notify()
}

// DropOpen forgets the open fragment n: its producer went away before
// completing it, so it will never be RECEIVED.
func (h *Hub) DropOpen(streamID int64, n stream.FragmentNumber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ls := h.streams[streamID]; ls != nil && ls.isOpen && ls.open.Fragment.Number == n {
		ls.open, ls.isOpen = OpenFragment{}, false
		ls.notify()
	}
}

// Open returns the stream's open fragment, if a producer is sending one.
func (h *Hub) Open(streamID int64) (OpenFragment, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ls := h.streams[streamID]; ls != nil && ls.isOpen {
		return ls.open, true
	}
	return OpenFragment{}, false
}

// Changed returns a channel that is closed when the stream next receives a
// fragment or a block, or is forgotten.
func (h *Hub) Changed(streamID int64) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	ls := h.stream(streamID)
	if ls.changed == nil {
		ls.changed = make(chan struct{})
	}
	return ls.changed
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
	ls.notify()
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
