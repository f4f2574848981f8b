package archive_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/archive/pgindex"
	"github.com/kinema/kinema/internal/archive/pgindex/pgtest"
	"github.com/kinema/kinema/internal/archive/s3media"
	"github.com/kinema/kinema/internal/s3conf/s3test"
	"github.com/kinema/kinema/internal/stream"
)

// node is one Kinema node's archive on the shared PostgreSQL schema and
// bucket.
type node struct {
	idx  *pgindex.Index
	a    *archive.Archive
	stop func()
}

func openNode(t *testing.T, dsn string, s3srv *s3test.Server, id string) *node {
	t.Helper()
	ctx := context.Background()
	idx, err := pgindex.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := idx.Join(ctx, id, "http://"+id, false); err != nil {
		t.Fatal(err)
	}
	media, err := s3media.Open(ctx, s3srv.Config, "media", "k/", s3media.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := archive.Open(ctx, idx, media, archive.Options{Node: id})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); a.Run(runCtx) }()
	n := &node{idx: idx, a: a}
	n.stop = func() {
		if cancel == nil {
			return
		}
		cancel()
		<-done
		media.Close()
		idx.Close()
		cancel = nil
	}
	t.Cleanup(n.stop)
	return n
}

func (n *node) persist(t *testing.T, streamID int64, data []byte) *stream.Fragment {
	t.Helper()
	ctx := context.Background()
	num, err := n.a.NextFragmentNumber(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	f := &stream.Fragment{Number: num, StreamID: streamID, ProducerMs: now, ServerMs: now, DurationMs: 1000}
	if err := n.a.Persist(ctx, f, data); err != nil {
		t.Fatalf("persist on %s: %v", n.idx.Node(), err)
	}
	return f
}

// TestNodesKeepOffEachOthersSegments: two nodes on one schema and bucket.
// A node's start-up recovery and its janitor leave the other node's
// segments alone, even the other's fresh, empty active segment (with an id
// below this node's own), so the other node goes on committing into it.
func TestNodesKeepOffEachOthersSegments(t *testing.T) {
	s3srv := s3test.Start(t)
	s3srv.Bucket(t, "media")
	dsn := pgtest.Schema(t)
	b := openNode(t, dsn, s3srv, "b") // first: its active segment has the lower id
	a := openNode(t, dsn, s3srv, "a")
	ctx := context.Background()
	s := &stream.Stream{Account: "000000000000", Region: "us-east-1", Name: "cam", Version: "v1",
		Status: stream.StatusActive, Created: time.Now(), RetentionHours: 24, StorageTier: "HOT"}
	if err := a.idx.CreateStream(ctx, s, nil); err != nil {
		t.Fatal(err)
	}

	// a's janitor runs while b's active segment is still empty.
	if err := archive.NewJanitor(a.a, time.Hour).Pass(ctx); err != nil {
		t.Fatal(err)
	}
	first := b.persist(t, s.ID, bytes.Repeat([]byte("b1"), 500))

	// A batch of b's on its way: in the bucket, not yet in the index.
	var bActive int64
	segs, _ := a.idx.Segments(ctx)
	for _, sg := range segs {
		if sg.Node == "b" {
			bActive = max(bActive, sg.ID)
		}
	}
	raw, err := s3media.Open(ctx, s3srv.Config, "media", "k/", s3media.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	inFlight, _, err := raw.Append(ctx, bActive, []archive.Record{{StreamID: s.ID, Number: 1 << 40, Data: []byte("in flight")}})
	if err != nil {
		t.Fatal(err)
	}

	// a restarts: its recovery must not cut b's segment.
	a.stop()
	a = openNode(t, dsn, s3srv, "a")
	if got, err := raw.ReadAt(ctx, inFlight[0]); err != nil || string(got) != "in flight" {
		t.Fatalf("node a's recovery cut node b's uncommitted batch: %q %v", got, err)
	}
	if err := archive.NewJanitor(a.a, time.Hour).Pass(ctx); err != nil {
		t.Fatal(err)
	}
	second := b.persist(t, s.ID, bytes.Repeat([]byte("b2"), 500))
	mine := a.persist(t, s.ID, bytes.Repeat([]byte("a1"), 500))

	for _, f := range []*stream.Fragment{first, second, mine} {
		stored, err := a.idx.Fragment(ctx, s.ID, f.Number)
		if err != nil {
			t.Fatalf("fragment %s: %v", f.Number, err)
		}
		got, err := a.a.Read(ctx, stored)
		if err != nil || len(got) != 1000 {
			t.Fatalf("fragment %s read back from node a: %d bytes, %v", f.Number, len(got), err)
		}
	}
	segs, err = a.idx.Segments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	owners := map[string]int{}
	for _, sg := range segs {
		owners[sg.Node]++
	}
	if owners["a"] == 0 || owners["b"] == 0 {
		t.Fatalf("segment owners %v", owners)
	}
}
