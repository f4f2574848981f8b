package bench

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/archive/pgindex"
	"github.com/kinema/kinema/internal/archive/pgindex/pgtest"
	"github.com/kinema/kinema/internal/archive/sqlindex"
)

// TestRunIndex runs the index benchmark small on both backends: every
// query it times must succeed on each.
func TestRunIndex(t *testing.T) {
	ctx := context.Background()
	for name, open := range map[string]func() (archive.Index, error){
		"sqlite":   func() (archive.Index, error) { return sqlindex.Open(ctx, t.TempDir()+"/index.db") },
		"postgres": func() (archive.Index, error) { return pgindex.Open(ctx, pgtest.Schema(t)) },
	} {
		t.Run(name, func(t *testing.T) {
			x, err := open()
			if err != nil {
				t.Fatal(err)
			}
			defer x.Close()
			for _, commit := range []bool{false, true} {
				res, err := RunIndex(ctx, x, IndexConfig{Rows: 2500, Streams: 7, FragmentMs: 2000, Queries: 20, Batch: 1000, Commit: commit}, io.Discard)
				if err != nil {
					t.Fatal(err)
				}
				if res.Rows != 2500 || len(res.Queries) != 6 || !strings.Contains(res.Report(), "LatestFragments") {
					t.Fatalf("result %+v", res)
				}
				// Both backends generate rows themselves unless told to commit them.
				if res.Generated == commit {
					t.Fatalf("%s, commit %v: generated %v", name, commit, res.Generated)
				}
				if commit {
					continue
				}
				// The queries again, on what the fill left.
				again, err := RunIndex(ctx, x, IndexConfig{Rows: 2500, Streams: 7, FragmentMs: 2000, Queries: 20, Existing: true}, io.Discard)
				if err != nil {
					t.Fatal(err)
				}
				if again.Fill != 0 || len(again.Queries) != 6 || !strings.Contains(again.Report(), "earlier run") {
					t.Fatalf("existing: %+v", again)
				}
			}
		})
	}
}
