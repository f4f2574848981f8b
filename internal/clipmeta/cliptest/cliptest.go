// Package cliptest is the contract of clipmeta.Store as a test suite: every
// Store (the embedded index today, PostgreSQL later) runs it unchanged.
// Only tests import it.
package cliptest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/clipmeta"
)

// Run runs the suite; open returns a fresh, empty store for each subtest.
func Run(t *testing.T, open func(t *testing.T) clipmeta.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s clipmeta.Store)
	}{
		{"Upsert", testUpsert},
		{"Get", testGet},
		{"ListFilters", testListFilters},
		{"ListOverlap", testListOverlap},
		{"ListPages", testListPages},
		{"Delete", testDelete},
		{"RefusesOverlongClips", testOverlong},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

var ctx = context.Background()

const t0 = int64(1_700_000_000_000)

func put(t *testing.T, s clipmeta.Store, client, device, stream string, begin, end int64) clipmeta.Clip {
	t.Helper()
	c := clipmeta.Clip{ID: clipmeta.ClipID(client, device, stream, begin), ClientID: client, DeviceID: device,
		StreamName: stream, BeginMs: begin, EndMs: end, DurationSec: float64(end-begin) / 1000, CreatedMs: t0}
	if err := s.PutClip(ctx, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func ids(cs []clipmeta.Clip) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = fmt.Sprintf("%s/%s/%d", c.DeviceID, c.StreamName, c.BeginMs-t0)
	}
	return out
}

func same(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func testUpsert(t *testing.T, s clipmeta.Store) {
	first := put(t, s, "app", "dev", "cam", t0, t0+10_000)
	c := clipmeta.Clip{ID: first.ID, ClientID: "app", DeviceID: "dev", StreamName: "cam", BeginMs: t0, EndMs: t0 + 12_500,
		DurationSec: 12.5, CreatedMs: t0 + 99_999}
	if err := s.PutClip(ctx, &c); err != nil {
		t.Fatal(err)
	}
	if c.ID != first.ID || c.CreatedMs != t0 {
		t.Fatalf("second put: id %s created %d, want %s and the first creation time %d", c.ID, c.CreatedMs, first.ID, t0)
	}
	got, err := s.ListClips(ctx, clipmeta.ListQuery{ClientID: "app", FromMs: 0, ToMs: clipmeta.MaxTimeMs, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].EndMs != t0+12_500 || got[0].DurationSec != 12.5 || got[0].CreatedMs != t0 || got[0].ID != first.ID {
		t.Fatalf("after two puts of one key: %+v", got)
	}
	// Another device, stream or begin is another clip.
	put(t, s, "app", "dev2", "cam", t0, t0+10_000)
	put(t, s, "app", "dev", "cam2", t0, t0+10_000)
	put(t, s, "app", "dev", "cam", t0+1, t0+10_000)
	put(t, s, "other", "dev", "cam", t0, t0+10_000)
	got, _ = s.ListClips(ctx, clipmeta.ListQuery{ClientID: "app", FromMs: 0, ToMs: clipmeta.MaxTimeMs, Limit: 10})
	if len(got) != 4 {
		t.Fatalf("app has %d clips, want 4: %v", len(got), ids(got))
	}
	// Durations are kept to the millisecond.
	c = clipmeta.Clip{ClientID: "app", DeviceID: "d3", StreamName: "cam", BeginMs: t0, EndMs: t0 + 1000, DurationSec: 0.999, CreatedMs: t0}
	c.ID = clipmeta.ClipID(c.ClientID, c.DeviceID, c.StreamName, c.BeginMs)
	if err := s.PutClip(ctx, &c); err != nil {
		t.Fatal(err)
	}
	got, _ = s.ListClips(ctx, clipmeta.ListQuery{ClientID: "app", DeviceID: "d3", FromMs: 0, ToMs: clipmeta.MaxTimeMs, Limit: 10})
	if len(got) != 1 || got[0].DurationSec != 0.999 {
		t.Fatalf("duration 0.999 came back as %+v", got)
	}
}

func testGet(t *testing.T, s clipmeta.Store) {
	a := put(t, s, "app", "dev", "cam", t0, t0+10_000)
	put(t, s, "app", "dev", "cam", t0+10_000, t0+20_000)
	c, err := s.GetClip(ctx, "app", "cam", t0, t0+10_000)
	if err != nil || *c != a {
		t.Fatalf("GetClip = %+v, %v; want %+v", c, err, a)
	}
	for _, q := range []struct {
		client, stream string
		begin, end     int64
	}{
		{"other", "cam", t0, t0 + 10_000}, // another client's view
		{"app", "cam2", t0, t0 + 10_000},
		{"app", "cam", t0, t0 + 9_999}, // not the exact range
		{"app", "cam", t0 + 1, t0 + 10_000},
		{"app", "cam", t0, t0 + 20_000},
	} {
		if _, err := s.GetClip(ctx, q.client, q.stream, q.begin, q.end); !errors.Is(err, archive.ErrNotFound) {
			t.Errorf("GetClip(%+v): %v, want archive.ErrNotFound", q, err)
		}
	}
	// Two devices' clips of one range: the latest created.
	b := clipmeta.Clip{ClientID: "app", DeviceID: "dev2", StreamName: "cam", BeginMs: t0, EndMs: t0 + 10_000, DurationSec: 10, CreatedMs: t0 + 5}
	b.ID = clipmeta.ClipID(b.ClientID, b.DeviceID, b.StreamName, b.BeginMs)
	if err := s.PutClip(ctx, &b); err != nil {
		t.Fatal(err)
	}
	if c, err := s.GetClip(ctx, "app", "cam", t0, t0+10_000); err != nil || c.DeviceID != "dev2" {
		t.Fatalf("GetClip with two devices' clips = %+v, %v; want dev2's", c, err)
	}
}

func list(t *testing.T, s clipmeta.Store, q clipmeta.ListQuery) []string {
	t.Helper()
	if q.Limit == 0 {
		q.Limit = 1000
	}
	if q.ToMs == 0 {
		q.ToMs = clipmeta.MaxTimeMs
	}
	got, err := s.ListClips(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	return ids(got)
}

func testListFilters(t *testing.T, s clipmeta.Store) {
	put(t, s, "app", "d1", "s1", t0+3000, t0+4000)
	put(t, s, "app", "d1", "s2", t0+1000, t0+2000)
	put(t, s, "app", "d2", "s1", t0+2000, t0+3000)
	put(t, s, "app", "d2", "s2", t0+1000, t0+5000)
	put(t, s, "other", "d1", "s1", t0+1000, t0+2000)
	for _, tc := range []struct {
		q    clipmeta.ListQuery
		want []string
	}{
		{clipmeta.ListQuery{ClientID: "app"}, []string{"d1/s2/1000", "d2/s2/1000", "d2/s1/2000", "d1/s1/3000"}},
		{clipmeta.ListQuery{ClientID: "app", DeviceID: "d1"}, []string{"d1/s2/1000", "d1/s1/3000"}},
		{clipmeta.ListQuery{ClientID: "app", StreamName: "s1"}, []string{"d2/s1/2000", "d1/s1/3000"}},
		{clipmeta.ListQuery{ClientID: "app", DeviceID: "d2", StreamName: "s2"}, []string{"d2/s2/1000"}},
		{clipmeta.ListQuery{ClientID: "app", DeviceID: "d3"}, []string{}},
		{clipmeta.ListQuery{ClientID: "other"}, []string{"d1/s1/1000"}},
		{clipmeta.ListQuery{ClientID: "nobody"}, []string{}},
	} {
		if got := list(t, s, tc.q); !same(got, tc.want) {
			t.Errorf("%+v: got %v, want %v", tc.q, got, tc.want)
		}
	}
	// Equal begins list in ID order.
	got, _ := s.ListClips(ctx, clipmeta.ListQuery{ClientID: "app", ToMs: t0 + 1000, Limit: 10})
	if len(got) != 2 || got[0].ID >= got[1].ID {
		t.Errorf("clips with equal begins are not in ID order: %+v", got)
	}
}

func testListOverlap(t *testing.T, s clipmeta.Store) {
	day := clipmeta.MaxClipMs
	put(t, s, "app", "d", "s", t0, t0+day)            // a 24 h clip
	put(t, s, "app", "d", "s", t0+day, t0+day+10_000) // right after it
	put(t, s, "app", "d", "s", t0-5000, t0-1)         // just before
	for _, tc := range []struct {
		from, to int64
		want     []string
	}{
		{t0 + day - 1, t0 + day - 1, []string{"d/s/0"}}, // the long clip began 24 h before from
		{t0 + day, t0 + day, []string{"d/s/0", "d/s/86400000"}},
		{t0 - 1, t0, []string{"d/s/-5000", "d/s/0"}}, // both ends inclusive
		{t0 + day + 10_001, t0 + 2*day, []string{}},
		{t0 - 10_000, t0 - 5001, []string{}},
		{t0 - 10_000, t0 - 5000, []string{"d/s/-5000"}},
	} {
		if got := list(t, s, clipmeta.ListQuery{ClientID: "app", DeviceID: "d", FromMs: tc.from, ToMs: tc.to}); !same(got, tc.want) {
			t.Errorf("[%d, %d]: got %v, want %v", tc.from-t0, tc.to-t0, got, tc.want)
		}
	}
}

func testListPages(t *testing.T, s clipmeta.Store) {
	// Many clips share a begin (across devices), so pages must break ties by ID.
	for i := range int64(25) {
		put(t, s, "app", "d", "s", t0+i*1000, t0+i*1000+500)
		put(t, s, "app", fmt.Sprintf("e%d", i%3), "s", t0+i/2*2000, t0+i/2*2000+500)
	}
	for _, q := range []clipmeta.ListQuery{{ClientID: "app"}, {ClientID: "app", StreamName: "s"}, {ClientID: "app", DeviceID: "d"}} {
		all := list(t, s, q)
		var paged []string
		q.ToMs = clipmeta.MaxTimeMs
		for page := 0; ; page++ {
			q.Limit = 4
			got, err := s.ListClips(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			paged = append(paged, ids(got)...)
			if len(got) < 4 {
				break
			}
			last := got[len(got)-1]
			q.AfterBeginMs, q.AfterID = last.BeginMs, last.ID
			if page > 100 {
				t.Fatal("pagination does not end")
			}
		}
		if !same(paged, all) || len(all) == 0 {
			t.Errorf("%+v: pages %v, all at once %v", q, paged, all)
		}
	}
}

func testDelete(t *testing.T, s clipmeta.Store) {
	a := put(t, s, "app", "d", "s", t0, t0+1000)
	if err := s.DeleteClip(ctx, "other", a.ID); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("another client deleted the clip: %v", err)
	}
	if err := s.DeleteClip(ctx, "app", a.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteClip(ctx, "app", a.ID); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("second delete: %v, want archive.ErrNotFound", err)
	}
	if got := list(t, s, clipmeta.ListQuery{ClientID: "app"}); len(got) != 0 {
		t.Fatalf("deleted clip still listed: %v", got)
	}
	if _, err := s.GetClip(ctx, "app", "s", t0, t0+1000); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("deleted clip still found: %v", err)
	}
}

func testOverlong(t *testing.T, s clipmeta.Store) {
	for _, c := range []clipmeta.Clip{
		{ClientID: "app", DeviceID: "d", StreamName: "s", BeginMs: t0, EndMs: t0 + clipmeta.MaxClipMs + 1},
		{ClientID: "app", DeviceID: "d", StreamName: "s", BeginMs: t0, EndMs: t0},
	} {
		c.ID = clipmeta.ClipID(c.ClientID, c.DeviceID, c.StreamName, c.BeginMs)
		if err := s.PutClip(ctx, &c); err == nil {
			t.Errorf("stored a clip from %d to %d", c.BeginMs, c.EndMs)
		}
	}
}
