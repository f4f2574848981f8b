// Package indextest is the contract of archive.Index as a test suite: every
// Index implementation runs it unchanged (the embedded SQLite one today,
// PostgreSQL later). Only tests import it.
package indextest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/stream"
)

// Run runs the suite; open returns a fresh, empty index for each subtest.
func Run(t *testing.T, open func(t *testing.T) archive.Index) {
	tests := []struct {
		name string
		fn   func(t *testing.T, x archive.Index)
	}{
		{"Streams", testStreams},
		{"Tags", testTags},
		{"Headers", testHeaders},
		{"FragmentQueries", testFragmentQueries},
		{"SampleTables", testSampleTables},
		{"FragmentNumbers", testFragmentNumbers},
		{"ExpiryAndReclaim", testExpiry},
		{"Segments", testSegments},
		{"FragmentAtOrBefore", testFragmentAtOrBefore},
		{"ImageGenerationConfig", testImageGenerationConfig},
		{"Outbox", testOutbox},
		{"OutboxRedriveAndPrune", testOutboxRedrive},
		{"NotificationConfig", testNotificationConfig},
		{"Leases", testLeases},
		{"GenerateFragments", testGenerateFragments},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

var ctx = context.Background()

func newStream(t *testing.T, x archive.Index, name string, hours int) *stream.Stream {
	t.Helper()
	s := &stream.Stream{Account: "000000000000", Region: "us-east-1", Name: name, Version: "v1",
		Status: stream.StatusActive, Created: time.UnixMilli(1_700_000_000_000), RetentionHours: hours, StorageTier: "HOT"}
	if err := x.CreateStream(ctx, s, map[string]string{"a": "1"}); err != nil {
		t.Fatal(err)
	}
	return s
}

func testStreams(t *testing.T, x archive.Index) {
	s := newStream(t, x, "cam-b", 2)
	newStream(t, x, "cam-a", 0)
	newStream(t, x, "door", 0)
	if err := x.CreateStream(ctx, &stream.Stream{Account: "000000000000", Name: "cam-b", Version: "v", Status: stream.StatusActive, Created: time.Now()}, nil); !errors.Is(err, archive.ErrExists) {
		t.Fatalf("duplicate name: %v", err)
	}
	got, err := x.StreamByName(ctx, "000000000000", "cam-b")
	if err != nil || got.ID != s.ID || got.RetentionHours != 2 || !got.Created.Equal(s.Created) {
		t.Fatalf("StreamByName: %+v %v", got, err)
	}
	if _, err := x.StreamByName(ctx, "111111111111", "cam-b"); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("another account sees the stream: %v", err)
	}
	list, _ := x.ListStreams(ctx, "000000000000", "cam-", "", 10)
	if len(list) != 2 || list[0].Name != "cam-a" || list[1].Name != "cam-b" {
		t.Fatalf("prefix list %v", list)
	}
	list, _ = x.ListStreams(ctx, "000000000000", "", "cam-b", 10)
	if len(list) != 1 || list[0].Name != "door" {
		t.Fatalf("list after cam-b: %v", list)
	}
	up, err := x.UpdateStream(ctx, s.ID, func(st *stream.Stream) error { st.Version, st.RetentionHours = "v2", 5; return nil })
	if err != nil || up.Version != "v2" {
		t.Fatal(err)
	}
	boom := errors.New("refused")
	if _, err := x.UpdateStream(ctx, s.ID, func(st *stream.Stream) error { st.Version = "v3"; return boom }); !errors.Is(err, boom) {
		t.Fatalf("update error not passed through: %v", err)
	}
	if got, _ := x.StreamByID(ctx, s.ID); got.Version != "v2" || got.RetentionHours != 5 {
		t.Fatalf("after a refused update: %+v", got)
	}
	if err := x.DeleteStream(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := x.StreamByID(ctx, s.ID); !errors.Is(err, archive.ErrNotFound) {
		t.Fatal("deleted stream still found by id")
	}
	if err := x.DeleteStream(ctx, s.ID); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	again := newStream(t, x, "cam-b", 1)
	if again.ID == s.ID {
		t.Fatal("a new stream reused a deleted stream's id")
	}
	if ids, _ := x.DeletedStreams(ctx); len(ids) != 1 || ids[0] != s.ID {
		t.Fatalf("DeletedStreams %v", ids)
	}
	if err := x.PurgeStream(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if ids, _ := x.DeletedStreams(ctx); len(ids) != 0 {
		t.Fatalf("purged stream still pending: %v", ids)
	}
}

func testTags(t *testing.T, x archive.Index) {
	s := newStream(t, x, "cam", 1)
	if err := x.TagStream(ctx, s.ID, map[string]string{"b": "2", "a": "9"}, []string{"zzz"}, 50); err != nil {
		t.Fatal(err)
	}
	tags, _ := x.StreamTags(ctx, s.ID)
	if fmt.Sprint(tags) != "map[a:9 b:2]" {
		t.Fatalf("tags %v", tags)
	}
	if err := x.TagStream(ctx, s.ID, map[string]string{"c": "3"}, nil, 2); !errors.Is(err, archive.ErrTooManyTags) {
		t.Fatalf("limit: %v", err)
	}
	if tags, _ := x.StreamTags(ctx, s.ID); len(tags) != 2 {
		t.Fatalf("a refused tag change was applied: %v", tags)
	}
}

func testHeaders(t *testing.T, x archive.Index) {
	s := newStream(t, x, "cam", 1)
	a, _ := x.PutHeader(ctx, s.ID, []byte("tracks-1"))
	b, _ := x.PutHeader(ctx, s.ID, []byte("tracks-2"))
	a2, _ := x.PutHeader(ctx, s.ID, []byte("tracks-1"))
	if a != a2 || a == b {
		t.Fatalf("header ids %d %d %d: same content must give the same id", a, b, a2)
	}
	if sid, d, _ := x.Header(ctx, b); string(d) != "tracks-2" || sid != s.ID {
		t.Fatalf("header %q of stream %d", d, sid)
	}
	if id, d, _ := x.LastHeader(ctx, s.ID); id != b || string(d) != "tracks-2" {
		t.Fatalf("last header %d %q", id, d)
	}
	if _, _, err := x.LastHeader(ctx, s.ID+100); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("last header of an unknown stream: %v", err)
	}
}

// commit stores fragments at the given (server ms, producer ms) pairs.
func commit(t *testing.T, x archive.Index, s *stream.Stream, seg int64, times ...[2]int64) []stream.Fragment {
	t.Helper()
	first, err := x.ReserveFragmentNumbers(ctx, int64(len(times)))
	if err != nil {
		t.Fatal(err)
	}
	frags := make([]stream.Fragment, len(times))
	for i, tm := range times {
		frags[i] = stream.Fragment{Number: first + stream.FragmentNumber(i), StreamID: s.ID, ServerMs: tm[0], ProducerMs: tm[1],
			DurationMs: 1000, SizeBytes: 100, Location: stream.Location{SegmentID: seg, Offset: int64(i) * 132, Length: 100},
			Tags: []stream.Tag{{Name: "n", Value: fmt.Sprint(i)}}}
	}
	if err := x.CommitFragments(ctx, seg, int64(len(times))*132, frags); err != nil {
		t.Fatal(err)
	}
	return frags
}

func testFragmentQueries(t *testing.T, x archive.Index) {
	s := newStream(t, x, "cam", 1)
	other := newStream(t, x, "other", 1)
	seg, _ := x.NewSegment(ctx)
	// Producer times out of order with server times: ordering follows the selected clock.
	fr := commit(t, x, s, seg, [2]int64{1000, 5000}, [2]int64{2000, 4000}, [2]int64{3000, 3000}, [2]int64{3000, 2000}, [2]int64{4000, 1000})
	commit(t, x, other, seg, [2]int64{2500, 2500})
	q := archive.FragmentQuery{StreamID: s.ID, Kind: archive.ServerTimestamp, StartMs: 2000, EndMs: 3000, Limit: 10}
	got, _ := x.Fragments(ctx, q)
	if len(got) != 3 || got[0].Number != fr[1].Number || got[2].Number != fr[3].Number {
		t.Fatalf("inclusive server range: %v", numbers(got))
	}
	q.Limit = 2
	page1, _ := x.Fragments(ctx, q)
	q.AfterMs, q.AfterNumber = page1[1].ServerMs, page1[1].Number
	page2, _ := x.Fragments(ctx, q)
	if len(page1) != 2 || len(page2) != 1 || page2[0].Number != fr[3].Number {
		t.Fatalf("pages %v %v (equal timestamps must page by number)", numbers(page1), numbers(page2))
	}
	pq := archive.FragmentQuery{StreamID: s.ID, Kind: archive.ProducerTimestamp, StartMs: 0, EndMs: 10000, Limit: 10}
	got, _ = x.Fragments(ctx, pq)
	if len(got) != 5 || got[0].Number != fr[4].Number || got[4].Number != fr[0].Number {
		t.Fatalf("producer order: %v", numbers(got))
	}
	f, err := x.Fragment(ctx, s.ID, fr[2].Number)
	if err != nil || f.Location != fr[2].Location || f.Tags[0].Value != "2" || f.ProducerMs != 3000 {
		t.Fatalf("Fragment: %+v %v", f, err)
	}
	if _, err := x.Fragment(ctx, other.ID, fr[2].Number); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("a fragment is found through another stream: %v", err)
	}
	after, _ := x.FragmentsAfter(ctx, s.ID, fr[1].Number, 2)
	if len(after) != 2 || after[0].Number != fr[2].Number {
		t.Fatalf("FragmentsAfter %v", numbers(after))
	}
	if l, _ := x.LatestFragment(ctx, s.ID); l.Number != fr[4].Number {
		t.Fatal("latest")
	}
	latest, _ := x.LatestFragments(ctx, s.ID, 2)
	if len(latest) != 2 || latest[0].Number != fr[3].Number || latest[1].Number != fr[4].Number {
		t.Fatalf("LatestFragments %v", numbers(latest))
	}
	if n, _ := x.CountFragments(ctx, s.ID, archive.ServerTimestamp, 2000, 4000, fr[4].Number); n != 3 {
		t.Fatalf("CountFragments server before the fragment at 4000: %d", n)
	}
	// Two fragments share server time 3000: the later number counts the earlier.
	if n, _ := x.CountFragments(ctx, s.ID, archive.ServerTimestamp, 0, 3000, fr[3].Number); n != 3 {
		t.Fatalf("CountFragments with a tie: %d, want 3", n)
	}
	if n, _ := x.CountFragments(ctx, s.ID, archive.ProducerTimestamp, 0, 3000, fr[2].Number); n != 2 {
		t.Fatalf("CountFragments producer before 3000: %d", n)
	}
	segs, _ := x.Segments(ctx)
	if len(segs) != 1 || segs[0].LiveFragments != 6 || segs[0].CommittedBytes != 132 {
		t.Fatalf("segments %+v", segs)
	}
}

func numbers(fs []stream.Fragment) []stream.FragmentNumber {
	out := make([]stream.FragmentNumber, len(fs))
	for i, f := range fs {
		out[i] = f.Number
	}
	return out
}

func testFragmentNumbers(t *testing.T, x archive.Index) {
	a, _ := x.ReserveFragmentNumbers(ctx, 100)
	b, _ := x.ReserveFragmentNumbers(ctx, 10)
	if a < 1 || b != a+100 {
		t.Fatalf("reservations %d then %d", a, b)
	}
}

// testSegments: segments are listed with their creation time, and a commit
// into a segment that is gone records nothing (another node's janitor may
// have dropped it as empty).
func testSegments(t *testing.T, x archive.Index) {
	s := newStream(t, x, "cam", 1)
	before := time.Now().UnixMilli()
	seg, err := x.NewSegment(ctx)
	if err != nil {
		t.Fatal(err)
	}
	segs, err := x.Segments(ctx)
	if err != nil || len(segs) != 1 || segs[0].ID != seg || segs[0].CreatedMs < before || segs[0].LiveFragments != 0 {
		t.Fatalf("segments %+v %v", segs, err)
	}
	if err := x.DropSegment(ctx, seg); err != nil {
		t.Fatal(err)
	}
	f := stream.Fragment{Number: 1, StreamID: s.ID, ServerMs: 1000, ProducerMs: 1000, DurationMs: 1000,
		Location: stream.Location{SegmentID: seg, Offset: 32, Length: 100}, SizeBytes: 100}
	if err := x.CommitFragments(ctx, seg, 132, []stream.Fragment{f}); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("commit into a dropped segment: %v", err)
	}
	if got, _ := x.FragmentsAfter(ctx, s.ID, 0, 10); len(got) != 0 {
		t.Fatalf("a commit into a dropped segment left fragments: %+v", got)
	}
}

func testExpiry(t *testing.T, x archive.Index) {
	s := newStream(t, x, "cam", 1)
	seg, _ := x.NewSegment(ctx)
	commit(t, x, s, seg, [2]int64{1000, 1000}, [2]int64{2000, 2000}, [2]int64{3000, 3000})
	n, err := x.ExpireFragments(ctx, s.ID, 2500, 1)
	if err != nil || n != 1 {
		t.Fatalf("expire limit 1: %d %v", n, err)
	}
	n, _ = x.ExpireFragments(ctx, s.ID, 2500, 100)
	if n != 1 {
		t.Fatalf("second expiry removed %d", n)
	}
	left, _ := x.FragmentsAfter(ctx, s.ID, 0, 10)
	if len(left) != 1 || left[0].ServerMs != 3000 {
		t.Fatalf("left %v", left)
	}
	rs, _ := x.Reclaims(ctx, 10)
	if len(rs) != 2 || rs[0].SegmentID != seg || rs[0].Length != 100 {
		t.Fatalf("reclaims %+v", rs)
	}
	x.ReclaimsDone(ctx, []int64{rs[0].ID, rs[1].ID})
	if rs, _ := x.Reclaims(ctx, 10); len(rs) != 0 {
		t.Fatal("reclaims not forgotten")
	}
	segs, _ := x.Segments(ctx)
	if segs[0].LiveFragments != 1 {
		t.Fatalf("live fragments %d", segs[0].LiveFragments)
	}
	if r, _ := x.RetentionStreams(ctx); r[s.ID] != 1 {
		t.Fatalf("retention map %v", r)
	}
}

func testFragmentAtOrBefore(t *testing.T, x archive.Index) {
	s := newStream(t, x, "cam", 1)
	other := newStream(t, x, "other", 1)
	seg, _ := x.NewSegment(ctx)
	// Server and producer clocks disagree on the order; two share server time 3000.
	fr := commit(t, x, s, seg, [2]int64{1000, 5000}, [2]int64{2000, 4000}, [2]int64{3000, 3000}, [2]int64{3000, 2000})
	commit(t, x, other, seg, [2]int64{2500, 2500})
	for _, c := range []struct {
		kind archive.TimestampKind
		ms   int64
		want int // index into fr, -1 for none
	}{
		{archive.ServerTimestamp, 999, -1},
		{archive.ServerTimestamp, 1000, 0},
		{archive.ServerTimestamp, 2999, 1},
		{archive.ServerTimestamp, 3000, 3}, // the tie goes to the higher number
		{archive.ServerTimestamp, 1 << 50, 3},
		{archive.ProducerTimestamp, 1999, -1},
		{archive.ProducerTimestamp, 2500, 3},
		{archive.ProducerTimestamp, 4999, 1},
		{archive.ProducerTimestamp, 5000, 0},
	} {
		f, err := x.FragmentAtOrBefore(ctx, s.ID, c.kind, c.ms)
		if c.want < 0 {
			if !errors.Is(err, archive.ErrNotFound) {
				t.Errorf("kind %d at %d: %+v %v, want not found", c.kind, c.ms, f, err)
			}
			continue
		}
		if err != nil || f.Number != fr[c.want].Number || f.Location != fr[c.want].Location {
			t.Errorf("kind %d at %d: %+v %v, want fragment %d", c.kind, c.ms, f, err, c.want)
		}
	}
}

func testImageGenerationConfig(t *testing.T, x archive.Index) {
	s := newStream(t, x, "cam", 1)
	other := newStream(t, x, "other", 1)
	if _, err := x.ImageGenerationConfig(ctx, s.ID); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("a new stream has a configuration: %v", err)
	}
	c := stream.ImageGenerationConfig{Status: "ENABLED", ImageSelectorType: "PRODUCER_TIMESTAMP", DestinationURI: "s3://b/p",
		DestinationRegion: "us-east-1", SamplingIntervalMs: 3000, Format: "JPEG", JPEGQuality: 90, WidthPixels: 640}
	if err := x.SetImageGenerationConfig(ctx, s.ID, &c); err != nil {
		t.Fatal(err)
	}
	if got, err := x.ImageGenerationConfig(ctx, s.ID); err != nil || *got != c {
		t.Fatalf("stored %+v, read back %+v %v", c, got, err)
	}
	if _, err := x.ImageGenerationConfig(ctx, other.ID); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("another stream sees the configuration: %v", err)
	}
	c2 := stream.ImageGenerationConfig{Status: "DISABLED", ImageSelectorType: "SERVER_TIMESTAMP", DestinationURI: "file:///x",
		DestinationRegion: "eu-west-1", SamplingIntervalMs: 200, Format: "PNG", HeightPixels: 2160}
	if err := x.SetImageGenerationConfig(ctx, s.ID, &c2); err != nil {
		t.Fatal(err)
	}
	if got, err := x.ImageGenerationConfig(ctx, s.ID); err != nil || *got != c2 {
		t.Fatalf("replaced by %+v, read back %+v %v", c2, got, err)
	}
	if err := x.SetImageGenerationConfig(ctx, s.ID, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := x.ImageGenerationConfig(ctx, s.ID); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("after deleting: %v", err)
	}
	if err := x.SetImageGenerationConfig(ctx, s.ID, nil); err != nil {
		t.Fatalf("deleting an absent configuration: %v", err)
	}
	// A deleted stream loses its configuration and takes no new one.
	x.SetImageGenerationConfig(ctx, other.ID, &c)
	if err := x.DeleteStream(ctx, other.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := x.ImageGenerationConfig(ctx, other.ID); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("a deleted stream's configuration: %v", err)
	}
	if err := x.SetImageGenerationConfig(ctx, other.ID, &c); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("configuring a deleted stream: %v", err)
	}
}

// testSampleTables: a fragment's sample table comes back only from a
// time-range query that asks for it; fragments stored without one have none.
func testSampleTables(t *testing.T, x archive.Index) {
	s := newStream(t, x, "cam", 1)
	seg, _ := x.NewSegment(ctx)
	first, _ := x.ReserveFragmentNumbers(ctx, 2)
	frags := []stream.Fragment{
		{Number: first, StreamID: s.ID, ServerMs: 1000, ProducerMs: 1000, SizeBytes: 10, Location: stream.Location{SegmentID: seg, Length: 10},
			SampleTable: []byte("table-1")},
		{Number: first + 1, StreamID: s.ID, ServerMs: 2000, ProducerMs: 2000, SizeBytes: 10, Location: stream.Location{SegmentID: seg, Offset: 10, Length: 10}},
	}
	if err := x.CommitFragments(ctx, seg, 20, frags); err != nil {
		t.Fatal(err)
	}
	q := archive.FragmentQuery{StreamID: s.ID, Kind: archive.ProducerTimestamp, StartMs: 0, EndMs: 5000, Limit: 10}
	plain, _ := x.Fragments(ctx, q)
	q.SampleTables = true
	with, err := x.Fragments(ctx, q)
	if err != nil || len(with) != 2 || len(plain) != 2 {
		t.Fatalf("queries: %v, %d and %d fragments", err, len(with), len(plain))
	}
	if string(with[0].SampleTable) != "table-1" || with[1].SampleTable != nil {
		t.Fatalf("sample tables %q %q", with[0].SampleTable, with[1].SampleTable)
	}
	if plain[0].SampleTable != nil {
		t.Fatal("a query that did not ask for sample tables returned one")
	}
	q.SampleTables, q.Brief = false, true
	brief, err := x.Fragments(ctx, q)
	if err != nil || len(brief) != 2 {
		t.Fatalf("brief query: %v, %d fragments", err, len(brief))
	}
	full := plain[1]
	full.Location, full.Tags = stream.Location{}, nil
	if !reflect.DeepEqual(brief[1], full) {
		t.Fatalf("brief fragment %+v, want %+v without location and tags", brief[1], full)
	}
	if f, _ := x.Fragment(ctx, s.ID, first); f.SampleTable != nil {
		t.Fatal("Fragment returned a sample table")
	}
}

// commitTagged stores one fragment per tag set, server times 1000 ms apart
// from startMs.
func commitTagged(t *testing.T, x archive.Index, s *stream.Stream, seg int64, startMs int64, tagSets ...[]stream.Tag) []stream.Fragment {
	t.Helper()
	first, err := x.ReserveFragmentNumbers(ctx, int64(len(tagSets)))
	if err != nil {
		t.Fatal(err)
	}
	frags := make([]stream.Fragment, len(tagSets))
	for i, tags := range tagSets {
		frags[i] = stream.Fragment{Number: first + stream.FragmentNumber(i), StreamID: s.ID, ServerMs: startMs + int64(i)*1000,
			ProducerMs: startMs + int64(i)*1000 - 7, DurationMs: 1000, SizeBytes: 10,
			Location: stream.Location{SegmentID: seg, Offset: int64(i) * 10, Length: 10}, Tags: tags}
	}
	if err := x.CommitFragments(ctx, seg, int64(len(tagSets))*10, frags); err != nil {
		t.Fatal(err)
	}
	return frags
}

var (
	notifyTag = stream.Tag{Name: stream.TagNotification}
	imageTag  = stream.Tag{Name: stream.TagImageGeneration}
)

// Trigger-tagged fragments get one outbox row per trigger, committed with
// the fragment; untagged fragments and plain custom tags get none.
func testOutbox(t *testing.T, x archive.Index) {
	s := newStream(t, x, "cam", 1)
	other := newStream(t, x, "other", 1)
	seg, _ := x.NewSegment(ctx)
	before := time.Now().UnixMilli()
	fr := commitTagged(t, x, s, seg, 10_000,
		nil,
		[]stream.Tag{notifyTag, {Name: "motion", Value: "door"}},
		[]stream.Tag{{Name: "plain", Value: "x"}},
		[]stream.Tag{notifyTag, imageTag, {Name: "zone", Value: "2"}},
		[]stream.Tag{imageTag},
	)
	commitTagged(t, x, other, seg, 10_500, []stream.Tag{notifyTag})
	pend, err := x.PendingOutbox(ctx, archive.TriggerNotification, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(pend) != 3 || pend[0].Fragment != fr[1].Number || pend[1].Fragment != fr[3].Number || pend[2].StreamID != other.ID {
		t.Fatalf("pending notifications %+v", pend)
	}
	e := pend[0]
	if e.Kind != archive.TriggerNotification || e.State != archive.OutboxPending || e.ServerMs != 10_000+1000 || e.ProducerMs != 10_993 ||
		e.CreatedMs < before || e.NextMs != e.CreatedMs || e.Attempts != 0 || len(e.Tags) != 2 || e.Tags[1].Value != "door" {
		t.Fatalf("entry %+v", e)
	}
	if !(pend[0].ID < pend[1].ID && pend[1].ID < pend[2].ID) {
		t.Fatal("outbox ids do not grow in commit order")
	}
	imgs, _ := x.PendingOutbox(ctx, archive.TriggerImageGeneration, 0, 10)
	if len(imgs) != 2 || imgs[0].Fragment != fr[3].Number || imgs[1].Fragment != fr[4].Number {
		t.Fatalf("pending image generation %+v", imgs)
	}
	if after, _ := x.PendingOutbox(ctx, archive.TriggerNotification, pend[1].ID, 10); len(after) != 1 || after[0].ID != pend[2].ID {
		t.Fatalf("after id: %+v", after)
	}

	// Outcomes: one delivered, one failing and due later.
	err = x.UpdateOutbox(ctx, []archive.OutboxUpdate{
		{ID: pend[0].ID, State: archive.OutboxDelivered, Attempts: 1, LastAttemptMs: 20_000, DoneMs: 20_000, Destination: "https://h/x"},
		{ID: pend[1].ID, State: archive.OutboxPending, Attempts: 2, NextMs: 30_000, LastError: "HTTP 503", LastAttemptMs: 20_001, Destination: "https://h/x"},
	})
	if err != nil {
		t.Fatal(err)
	}
	pend, _ = x.PendingOutbox(ctx, archive.TriggerNotification, 0, 10)
	if len(pend) != 2 || pend[0].Attempts != 2 || pend[0].NextMs != 30_000 || pend[0].LastError != "HTTP 503" {
		t.Fatalf("after updates: %+v", pend)
	}
	d, err := x.OutboxEntry(ctx, pend[0].ID-1)
	if err != nil || d.State != archive.OutboxDelivered || d.DoneMs != 20_000 || d.Destination != "https://h/x" {
		t.Fatalf("delivered entry %+v %v", d, err)
	}
	if _, err := x.OutboxEntry(ctx, 1<<40); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("unknown entry: %v", err)
	}

	// The events of a stream by server time, paged, with kind and state filters.
	q := archive.OutboxQuery{StreamID: s.ID, StartMs: 0, EndMs: 1 << 50, Limit: 2}
	p1, _ := x.OutboxEntries(ctx, q)
	q.AfterMs, q.AfterID = p1[1].ServerMs, p1[1].ID
	p2, _ := x.OutboxEntries(ctx, q)
	if len(p1) != 2 || len(p2) != 2 || p1[0].Fragment != fr[1].Number || p2[1].Fragment != fr[4].Number {
		t.Fatalf("stream events pages %+v / %+v", p1, p2)
	}
	if l, _ := x.OutboxEntries(ctx, archive.OutboxQuery{StreamID: s.ID, StartMs: 13_000, EndMs: 13_000, Limit: 10}); len(l) != 2 {
		t.Fatalf("one fragment with two triggers: %d entries", len(l))
	}
	if l, _ := x.OutboxEntries(ctx, archive.OutboxQuery{StreamID: s.ID, Kind: archive.TriggerNotification, State: archive.OutboxDelivered,
		StartMs: 0, EndMs: 1 << 50, Limit: 10}); len(l) != 1 || l[0].Fragment != fr[1].Number {
		t.Fatalf("kind and state filter: %+v", l)
	}
	if l, _ := x.OutboxEntries(ctx, archive.OutboxQuery{Kind: archive.TriggerNotification, StartMs: 0, EndMs: 1 << 50, Limit: 10}); len(l) != 3 {
		t.Fatalf("every stream: %d entries", len(l))
	}
}

func testOutboxRedrive(t *testing.T, x archive.Index) {
	s := newStream(t, x, "cam", 1)
	other := newStream(t, x, "other", 1)
	seg, _ := x.NewSegment(ctx)
	commitTagged(t, x, s, seg, 1000, []stream.Tag{notifyTag}, []stream.Tag{notifyTag}, []stream.Tag{notifyTag})
	commitTagged(t, x, other, seg, 1000, []stream.Tag{notifyTag})
	pend, _ := x.PendingOutbox(ctx, archive.TriggerNotification, 0, 10)
	var ups []archive.OutboxUpdate
	for _, e := range pend {
		ups = append(ups, archive.OutboxUpdate{ID: e.ID, State: archive.OutboxDead, Attempts: 5, LastError: "refused", DoneMs: 5000})
	}
	ups[2].State, ups[2].DoneMs = archive.OutboxDelivered, 100
	x.UpdateOutbox(ctx, ups)
	dead, _ := x.OutboxEntries(ctx, archive.OutboxQuery{State: archive.OutboxDead, StartMs: 0, EndMs: 1 << 50, Limit: 10})
	if len(dead) != 3 {
		t.Fatalf("dead letters %+v", dead)
	}
	// By id, then the rest of one stream; a delivered entry is never redriven.
	r, err := x.RedriveOutbox(ctx, archive.TriggerNotification, 0, []int64{pend[0].ID, pend[2].ID}, 9000)
	if err != nil || len(r) != 1 || r[0].ID != pend[0].ID || r[0].State != archive.OutboxPending || r[0].Attempts != 0 || r[0].NextMs != 9000 {
		t.Fatalf("redrive by id: %+v %v", r, err)
	}
	if r, _ := x.RedriveOutbox(ctx, archive.TriggerImageGeneration, s.ID, nil, 9000); len(r) != 0 {
		t.Fatalf("another kind's redrive took %+v", r)
	}
	if r, _ := x.RedriveOutbox(ctx, archive.TriggerNotification, s.ID, nil, 9000); len(r) != 1 || r[0].ID != pend[1].ID {
		t.Fatalf("redrive of a stream: %+v", r)
	}
	if p, _ := x.PendingOutbox(ctx, archive.TriggerNotification, 0, 10); len(p) != 2 {
		t.Fatalf("pending after redrive: %+v", p)
	}
	// Pruning takes finished rows only.
	if n, err := x.PruneOutbox(ctx, 1000, 100); err != nil || n != 1 {
		t.Fatalf("prune: %d %v", n, err)
	}
	if _, err := x.OutboxEntry(ctx, pend[2].ID); !errors.Is(err, archive.ErrNotFound) {
		t.Fatal("pruned row still there")
	}
	if n, _ := x.PruneOutbox(ctx, 1<<50, 100); n != 0 {
		t.Fatalf("prune removed %d pending or dead rows", n)
	}
	// Purging a deleted stream removes its rows.
	x.DeleteStream(ctx, other.ID)
	x.ExpireFragments(ctx, other.ID, 1<<50, 100)
	if err := x.PurgeStream(ctx, other.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := x.OutboxEntry(ctx, pend[3].ID); !errors.Is(err, archive.ErrNotFound) {
		t.Fatal("a purged stream's outbox row is still there")
	}
}

func testNotificationConfig(t *testing.T, x archive.Index) {
	s := newStream(t, x, "cam", 1)
	if _, err := x.NotificationConfig(ctx, s.ID); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("no configuration: %v", err)
	}
	c := &archive.NotificationConfig{Status: "ENABLED", URI: "mqtt://127.0.0.1:1883/cams"}
	if err := x.SetNotificationConfig(ctx, s.ID, c); err != nil {
		t.Fatal(err)
	}
	c2 := &archive.NotificationConfig{Status: "DISABLED", URI: "https://h/x"}
	x.SetNotificationConfig(ctx, s.ID, c2)
	if got, err := x.NotificationConfig(ctx, s.ID); err != nil || *got != *c2 {
		t.Fatalf("replaced configuration %+v %v", got, err)
	}
	x.SetNotificationConfig(ctx, s.ID, nil)
	if _, err := x.NotificationConfig(ctx, s.ID); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("deleted configuration: %v", err)
	}
}

// testLeases: a lease has one holder at a time, on one node as across
// nodes (which the backends that can be shared test further); released,
// it can be taken again.
func testLeases(t *testing.T, x archive.Index) {
	l, err := x.TryLease(ctx, archive.LeaseJanitor)
	if err != nil || l == nil {
		t.Fatalf("free lease: %v %v", l, err)
	}
	if l2, err := x.TryLease(ctx, archive.LeaseJanitor); err != nil || l2 != nil {
		t.Fatalf("a held lease was taken again: %v %v", l2, err)
	}
	other, err := x.TryLease(ctx, archive.OutboxLease(archive.TriggerNotification))
	if err != nil || other == nil {
		t.Fatalf("another lease: %v %v", other, err)
	}
	select {
	case <-l.Lost():
		t.Fatal("a held lease reports itself lost")
	default:
	}
	l.Release()
	l.Release()
	select {
	case <-l.Lost():
	default:
		t.Fatal("a released lease is not over")
	}
	l3, err := x.TryLease(ctx, archive.LeaseJanitor)
	if err != nil || l3 == nil {
		t.Fatalf("a released lease could not be taken again: %v %v", l3, err)
	}
	l3.Release()
	other.Release()
	// An outcome goes to pending rows only: a late one (from a node whose
	// lease has passed on) does not undo another node's.
	s := newStream(t, x, "cam", 1)
	seg, _ := x.NewSegment(ctx)
	commitTagged(t, x, s, seg, 1000, []stream.Tag{notifyTag})
	pend, _ := x.PendingOutbox(ctx, archive.TriggerNotification, 0, 10)
	if len(pend) != 1 {
		t.Fatalf("pending %+v", pend)
	}
	x.UpdateOutbox(ctx, []archive.OutboxUpdate{{ID: pend[0].ID, State: archive.OutboxDelivered, Attempts: 1, DoneMs: 5000, Destination: "b"}})
	if err := x.UpdateOutbox(ctx, []archive.OutboxUpdate{{ID: pend[0].ID, State: archive.OutboxPending, Attempts: 1, NextMs: 9000,
		LastError: "late", Destination: "a"}}); err != nil {
		t.Fatal(err)
	}
	if e, err := x.OutboxEntry(ctx, pend[0].ID); err != nil || e.State != archive.OutboxDelivered || e.Destination != "b" {
		t.Fatalf("a late outcome overwrote a delivered row: %+v %v", e, err)
	}
}

// testGenerateFragments: an index that generates rows itself (for
// benchmarks; archive.GeneratedFragments) writes the rows CommitFragments
// would write for the same fragments, and moves the segment the same way.
// Indexes without GenerateFragments pass.
func testGenerateFragments(t *testing.T, idx archive.Index) {
	x, ok := idx.(interface {
		archive.Index
		GenerateFragments(context.Context, archive.GeneratedFragments) error
	})
	if !ok {
		return
	}
	ctx := context.Background()
	var ids []int64
	for _, name := range []string{"a", "b", "c"} {
		s := &stream.Stream{Account: "000000000000", Region: "us-east-1", Name: name, Version: "1", Status: stream.StatusActive,
			Created: time.Now(), RetentionHours: 24, StorageTier: "HOT"}
		if err := x.CreateStream(ctx, s, nil); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s.ID)
	}
	hdr, err := x.PutHeader(ctx, ids[0], []byte("tracks"))
	if err != nil {
		t.Fatal(err)
	}
	seg, err := x.NewSegment(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first, err := x.ReserveFragmentNumbers(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	g := archive.GeneratedFragments{First: first, Count: 7, Row0: 5, Streams: ids, T0Ms: 1_000_000, DurationMs: 2000,
		ProducerLagMs: 150, HeaderID: hdr, SegmentID: seg, SegmentOffset: 32, Stride: 132, Size: 100}
	if err := x.GenerateFragments(ctx, g); err != nil {
		t.Fatal(err)
	}
	for r := int64(0); r < g.Count; r++ {
		row := g.Row0 + r
		ms := g.T0Ms + row/3*g.DurationMs
		want := stream.Fragment{Number: first + stream.FragmentNumber(r), StreamID: ids[row%3], ProducerMs: ms - 150, ServerMs: ms,
			DurationMs: 2000, HeaderID: hdr, SizeBytes: 100, Location: stream.Location{SegmentID: seg, Offset: 32 + r*132, Length: 100}}
		got, err := x.Fragment(ctx, want.StreamID, want.Number)
		if err != nil {
			t.Fatalf("row %d: %v", r, err)
		}
		if got.StreamID != want.StreamID || got.ProducerMs != want.ProducerMs || got.ServerMs != want.ServerMs ||
			got.DurationMs != want.DurationMs || got.HeaderID != want.HeaderID || got.SizeBytes != want.SizeBytes ||
			got.Location != want.Location || len(got.Tags) != 0 {
			t.Fatalf("row %d: got %+v, want %+v", r, got, want)
		}
	}
	segs, err := x.Segments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 1 || segs[0].CommittedBytes != 32+6*132+100 || segs[0].LiveFragments != 7 {
		t.Fatalf("segments %+v", segs)
	}
}
