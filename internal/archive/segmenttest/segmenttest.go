// Package segmenttest is the contract of archive.Media as a test suite:
// every Media store (local segment files, S3 objects) runs it unchanged.
// (internal/mediatest is something else: sample media for tests.) Only
// tests import it.
package segmenttest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/stream"
)

// Opener opens the store of one subtest; calling it again opens the same
// storage afresh, as a restarted node would.
type Opener func() archive.Media

// Run runs the suite; fresh returns an Opener of new, empty storage.
func Run(t *testing.T, fresh func(t *testing.T) Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"AppendAndRead", testAppendRead},
		{"Reopen", testReopen},
		{"Truncate", testTruncate},
		{"ListAndRemove", testListRemove},
		{"Free", testFree},
		{"BadLocations", testBadLocations},
		{"ConcurrentReads", testConcurrentReads},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, fresh(t)) })
	}
}

var ctx = context.Background()

func open(t *testing.T, o Opener) archive.Media {
	m := o()
	t.Cleanup(func() { m.Close() })
	return m
}

// recs makes n records with distinct contents of growing sizes.
func recs(streamID int64, first, n int) []archive.Record {
	out := make([]archive.Record, n)
	for i := range out {
		num := first + i
		out[i] = archive.Record{StreamID: streamID, Number: 1000 + stream.FragmentNumber(num), Data: bytes.Repeat([]byte(fmt.Sprintf("<%d>", num)), 10+num*7)}
	}
	return out
}

func appendOK(t *testing.T, m archive.Media, seg int64, rs []archive.Record) ([]stream.Location, int64) {
	t.Helper()
	locs, end, err := m.Append(ctx, seg, rs)
	if err != nil {
		t.Fatalf("append to segment %d: %v", seg, err)
	}
	if len(locs) != len(rs) {
		t.Fatalf("%d locations for %d records", len(locs), len(rs))
	}
	return locs, end
}

func readOK(t *testing.T, m archive.Media, loc stream.Location, want []byte) {
	t.Helper()
	got, err := m.ReadAt(ctx, loc)
	if err != nil {
		t.Fatalf("read %+v: %v", loc, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %+v: %d bytes %.20q, want %d bytes %.20q", loc, len(got), got, len(want), want)
	}
}

func readFails(t *testing.T, m archive.Media, loc stream.Location) {
	t.Helper()
	if b, err := m.ReadAt(ctx, loc); err == nil {
		t.Fatalf("read %+v returned %d bytes, want an error", loc, len(b))
	}
}

// Records land back to back in append order; ends and locations agree;
// a later append continues at the end.
func testAppendRead(t *testing.T, o Opener) {
	m := open(t, o)
	a := recs(1, 0, 3)
	a = append(a, archive.Record{StreamID: 1, Number: 99, Data: nil}) // an empty fragment is still a record
	la, end := appendOK(t, m, 7, a)
	for i, l := range la {
		if l.SegmentID != 7 || l.Length != int64(len(a[i].Data)) {
			t.Fatalf("location %d: %+v", i, l)
		}
		if i > 0 && l.Offset <= la[i-1].Offset+la[i-1].Length {
			t.Fatalf("location %d overlaps the one before: %+v %+v", i, la[i-1], l)
		}
	}
	if last := la[len(la)-1]; end < last.Offset+last.Length {
		t.Fatalf("end %d before the last record %+v", end, last)
	}
	b := recs(2, 3, 2)
	lb, end2 := appendOK(t, m, 7, b)
	if lb[0].Offset <= end || end2 <= end {
		t.Fatalf("second append at %+v, ends %d then %d", lb[0], end, end2)
	}
	for i, l := range la {
		readOK(t, m, l, a[i].Data)
	}
	for i, l := range lb {
		readOK(t, m, l, b[i].Data)
	}
	// Another segment has its own offsets.
	lc, _ := appendOK(t, m, 8, recs(3, 5, 1))
	if lc[0].SegmentID != 8 || lc[0].Offset != la[0].Offset {
		t.Fatalf("a new segment starts at %+v, the first at %+v", lc[0], la[0])
	}
}

// A reopened store (a restarted node) reads what was stored and appends
// after it.
func testReopen(t *testing.T, o Opener) {
	m := open(t, o)
	a := recs(1, 0, 3)
	la, end := appendOK(t, m, 3, a)
	m.Close()
	m2 := open(t, o)
	if ids, err := m2.List(ctx); err != nil || !slices.Equal(ids, []int64{3}) {
		t.Fatalf("after reopening, segments %v %v", ids, err)
	}
	for i, l := range la {
		readOK(t, m2, l, a[i].Data)
	}
	lb, _ := appendOK(t, m2, 3, recs(1, 3, 1))
	if lb[0].Offset <= end {
		t.Fatalf("an append after reopening landed at %+v, inside the end %d", lb[0], end)
	}
	readOK(t, m2, la[2], a[2].Data)
}

// Truncate cuts an unacknowledged tail; the next append goes where it was.
func testTruncate(t *testing.T, o Opener) {
	m := open(t, o)
	a, b := recs(1, 0, 2), recs(1, 2, 2)
	la, end := appendOK(t, m, 1, a)
	lb, _ := appendOK(t, m, 1, b)
	if err := m.Truncate(ctx, 1, end); err != nil {
		t.Fatal(err)
	}
	readOK(t, m, la[1], a[1].Data)
	readFails(t, m, lb[0])
	c := recs(1, 9, 1)
	lc, _ := appendOK(t, m, 1, c)
	if lc[0].Offset != lb[0].Offset {
		t.Fatalf("after truncating, the append went to %+v, want where the cut tail began (%+v)", lc[0], lb[0])
	}
	readOK(t, m, lc[0], c[0].Data)
	// Cutting inside a batch (recovery to an end the index recorded in an
	// earlier run) keeps what comes before.
	if err := m.Truncate(ctx, 1, la[1].Offset-1); err != nil {
		t.Fatal(err)
	}
	readOK(t, m, la[0], a[0].Data)
	readFails(t, m, la[1])
	// Reopened, the cut holds.
	m.Close()
	m2 := open(t, o)
	readOK(t, m2, la[0], a[0].Data)
	readFails(t, m2, lc[0])
}

func testListRemove(t *testing.T, o Opener) {
	m := open(t, o)
	if ids, err := m.List(ctx); err != nil || len(ids) != 0 {
		t.Fatalf("a new store lists %v %v", ids, err)
	}
	for _, seg := range []int64{12, 3, 1 << 40} {
		appendOK(t, m, seg, recs(1, 0, 1))
	}
	l, _ := appendOK(t, m, 12, recs(1, 1, 1))
	if ids, err := m.List(ctx); err != nil || !slices.Equal(ids, []int64{3, 12, 1 << 40}) {
		t.Fatalf("segments %v %v", ids, err)
	}
	if err := m.Remove(ctx, 12); err != nil {
		t.Fatal(err)
	}
	if ids, _ := m.List(ctx); !slices.Equal(ids, []int64{3, 1 << 40}) {
		t.Fatalf("after removing 12: %v", ids)
	}
	readFails(t, m, l[0])
	if err := m.Remove(ctx, 12); err != nil {
		t.Fatalf("removing a removed segment: %v", err)
	}
}

// Freed ranges may read back or not; everything else still reads, and
// freeing again is harmless.
func testFree(t *testing.T, o Opener) {
	m := open(t, o)
	a, b := recs(1, 0, 3), recs(2, 3, 2)
	la, _ := appendOK(t, m, 1, a)
	lb, _ := appendOK(t, m, 1, b)
	ranges := func(ls ...stream.Location) [][2]int64 {
		var out [][2]int64
		for _, l := range ls {
			out = append(out, [2]int64{l.Offset, l.Length})
		}
		return out
	}
	if err := m.Free(ctx, 1, ranges(la[0], la[1])); err != nil {
		t.Fatal(err)
	}
	readOK(t, m, la[2], a[2].Data)
	readOK(t, m, lb[0], b[0].Data)
	// The last of the first batch: now all of it is free.
	if err := m.Free(ctx, 1, ranges(la[2], la[0])); err != nil {
		t.Fatal(err)
	}
	for i, l := range lb {
		readOK(t, m, l, b[i].Data)
	}
	if err := m.Free(ctx, 1, ranges(la...)); err != nil {
		t.Fatalf("freeing again: %v", err)
	}
	if err := m.Free(ctx, 99, ranges(la[0])); err != nil {
		t.Fatalf("freeing in a segment that does not exist: %v", err)
	}
	lc, _ := appendOK(t, m, 1, recs(1, 7, 1))
	readOK(t, m, lc[0], recs(1, 7, 1)[0].Data)
}

// Locations no record is at are errors, never panics or wrong bytes.
func testBadLocations(t *testing.T, o Opener) {
	m := open(t, o)
	a := recs(1, 0, 2)
	la, end := appendOK(t, m, 1, a)
	for _, l := range []stream.Location{
		{SegmentID: 1, Offset: la[0].Offset, Length: la[0].Length + 1},
		{SegmentID: 1, Offset: la[0].Offset, Length: la[0].Length - 1},
		{SegmentID: 1, Offset: la[0].Offset + 1, Length: la[0].Length},
		{SegmentID: 1, Offset: 0, Length: 10},
		{SegmentID: 1, Offset: end + 100, Length: 10},
		{SegmentID: 2, Offset: la[0].Offset, Length: la[0].Length},
		{SegmentID: 1, Offset: la[1].Offset, Length: -1},
	} {
		readFails(t, m, l)
	}
}

func testConcurrentReads(t *testing.T, o Opener) {
	m := open(t, o)
	a := recs(1, 0, 8)
	la, _ := appendOK(t, m, 1, a)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range la {
				j := (i + g) % len(la)
				got, err := m.ReadAt(ctx, la[j])
				if err != nil || !bytes.Equal(got, a[j].Data) {
					t.Errorf("concurrent read %d: %v", j, err)
				}
			}
		}()
	}
	wg.Wait()
}
