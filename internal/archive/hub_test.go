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
