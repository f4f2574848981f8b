package archive

import (
	"testing"

	"github.com/kinema/kinema/internal/stream"
)

// The hub holds a fragment's bytes only while readers cannot get them from
// the archive: until it is persisted, or, for a stream without an archive,
// while it is the newest.
func TestHubKeepsBytesOnlyWhileNeeded(t *testing.T) {
	h := NewHub()
	data := []byte("cluster")
	h.Publish(stream.Fragment{Number: 1, StreamID: 7}, data, false)
	h.Publish(stream.Fragment{Number: 2, StreamID: 7}, data, false)
	h.Persisted(7, 1)
	r := h.Recent(7)
	if len(r) != 2 || r[0].Data != nil || !r[0].Persisted || r[1].Data == nil {
		t.Fatalf("after persisting 1 of 2: %+v", r)
	}
	// Without an archive, only the newest keeps its bytes.
	h.Publish(stream.Fragment{Number: 10, StreamID: 8}, data, true)
	h.Publish(stream.Fragment{Number: 11, StreamID: 8}, data, true)
	r = h.Recent(8)
	if r[0].Data != nil || r[1].Data == nil {
		t.Fatalf("retention 0: %+v", r)
	}
	// Only the last few fragments are kept at all.
	for n := 3; n < 20; n++ {
		h.Publish(stream.Fragment{Number: stream.FragmentNumber(n), StreamID: 7}, data, false)
	}
	if r := h.Recent(7); len(r) != recentPerStream || r[len(r)-1].Fragment.Number != 19 {
		t.Fatalf("recent window: %d entries", len(r))
	}
}

// A subscriber gets the recent fragments first, then new ones; one that
// falls behind is dropped (its channel closes) instead of stalling ingest.
func TestHubSubscriptions(t *testing.T) {
	h := NewHub()
	h.Publish(stream.Fragment{Number: 1, StreamID: 7}, nil, false)
	sub := h.Subscribe(7)
	h.Publish(stream.Fragment{Number: 2, StreamID: 7}, nil, false)
	if a, b := <-sub.C, <-sub.C; a.Fragment.Number != 1 || b.Fragment.Number != 2 {
		t.Fatalf("got %d then %d", a.Fragment.Number, b.Fragment.Number)
	}
	for n := 3; n < 3+cap(sub.C)+1; n++ {
		h.Publish(stream.Fragment{Number: stream.FragmentNumber(n), StreamID: 7}, nil, false)
	}
	for range sub.C {
	}
	// Forget ends the subscriptions of a deleted stream.
	sub = h.Subscribe(7)
	h.Forget(7)
	for range sub.C {
	}
	if len(h.Recent(7)) != 0 {
		t.Fatal("a forgotten stream still has fragments")
	}
}

// The open fragment: published block by block, replaced by the complete
// fragment or dropped with its producer; every change wakes waiters.
func TestHubOpenFragment(t *testing.T) {
	h := NewHub()
	changed := h.Changed(7)
	body := []byte("timecode+block1+block2")
	h.PublishOpen(stream.Fragment{Number: 5, StreamID: 7}, body[:15])
	select {
	case <-changed:
	default:
		t.Fatal("PublishOpen did not wake a waiter")
	}
	h.PublishOpen(stream.Fragment{Number: 5, StreamID: 7}, body)
	if o, ok := h.Open(7); !ok || o.Fragment.Number != 5 || string(o.Body) != string(body) {
		t.Fatalf("open fragment %+v %v", o, ok)
	}
	if _, ok := h.Open(8); ok {
		t.Fatal("another stream has an open fragment")
	}
	changed = h.Changed(7)
	h.Publish(stream.Fragment{Number: 5, StreamID: 7}, body, false)
	if _, ok := h.Open(7); ok {
		t.Fatal("a complete fragment is still open")
	}
	select {
	case <-changed:
	default:
		t.Fatal("Publish did not wake a waiter")
	}
	h.PublishOpen(stream.Fragment{Number: 6, StreamID: 7}, body)
	h.DropOpen(7, 5) // not the open one: no effect
	if _, ok := h.Open(7); !ok {
		t.Fatal("dropping another fragment closed the open one")
	}
	changed = h.Changed(7)
	h.DropOpen(7, 6)
	if _, ok := h.Open(7); ok {
		t.Fatal("DropOpen kept the fragment")
	}
	<-changed
	changed = h.Changed(7)
	h.Forget(7)
	<-changed
}
