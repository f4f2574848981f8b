package sqlindex_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/archive/indextest"
	"github.com/kinema/kinema/internal/archive/sqlindex"
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
