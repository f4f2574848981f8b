package sqlindex_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/archive/indextest"
	"github.com/kinema/kinema/internal/archive/sqlindex"
	"github.com/kinema/kinema/internal/stream"
)

func TestConformance(t *testing.T) {
	indextest.Run(t, func(t *testing.T) archive.Index {
		x, err := sqlindex.Open(context.Background(), filepath.Join(t.TempDir(), "index.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { x.Close() })
		return x
	})
}

// TestExpiryDropsSampleTables: expired fragments leave no sample table
// behind (the table is not reachable through the Index interface any more,
// so only its row count shows a leak).
func TestExpiryDropsSampleTables(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "index.db")
	x, err := sqlindex.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	s := &stream.Stream{Account: "a", Region: "r", Name: "cam", Version: "v", Status: stream.StatusActive, Created: time.UnixMilli(1), RetentionHours: 1}
	if err := x.CreateStream(ctx, s, nil); err != nil {
		t.Fatal(err)
	}
	seg, _ := x.NewSegment(ctx)
	n, _ := x.ReserveFragmentNumbers(ctx, 1)
	f := stream.Fragment{Number: n, StreamID: s.ID, ServerMs: 1000, SizeBytes: 10, Location: stream.Location{SegmentID: seg, Length: 10}, SampleTable: []byte{1}}
	if err := x.CommitFragments(ctx, seg, 10, []stream.Fragment{f}); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var c int
		if err := db.QueryRow(`SELECT count(*) FROM sample_tables`).Scan(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := count(); c != 1 {
		t.Fatalf("%d sample tables stored, want 1", c)
	}
	if n, err := x.ExpireFragments(ctx, s.ID, 2000, 10); n != 1 || err != nil {
		t.Fatalf("expired %d: %v", n, err)
	}
	if c := count(); c != 0 {
		t.Fatalf("%d sample tables left after expiry", c)
	}
}

// CountStreams counts an account's live streams only.
func TestCountStreams(t *testing.T) {
	ctx := context.Background()
	x, err := sqlindex.Open(ctx, filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	mk := func(account, name string) *stream.Stream {
		s := &stream.Stream{Account: account, Region: "r", Name: name, Version: "v", Status: stream.StatusActive, Created: time.UnixMilli(1)}
		if err := x.CreateStream(ctx, s, nil); err != nil {
			t.Fatal(err)
		}
		return s
	}
	mk("a", "cam-1")
	gone := mk("a", "cam-2")
	mk("b", "cam-1")
	if err := x.DeleteStream(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	for acct, want := range map[string]int{"a": 1, "b": 1, "c": 0} {
		if n, err := x.CountStreams(ctx, acct); err != nil || n != want {
			t.Errorf("CountStreams(%s) = %d, %v; want %d", acct, n, err, want)
		}
	}
}
