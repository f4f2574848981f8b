package iam_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/kinema/kinema/internal/iam"
	"github.com/kinema/kinema/internal/iam/iamtest"
)

// TestSQLiteStoreConformance: the embedded store keeps the Store contract,
// two connections on one file included.
func TestSQLiteStoreConformance(t *testing.T) {
	iamtest.Run(t, func(t *testing.T) (iam.Store, iam.Store) {
		path := filepath.Join(t.TempDir(), "index.db")
		var out [2]iam.Store
		for i := range out {
			s, err := iam.OpenSQLite(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			out[i] = s
		}
		return out[0], out[1]
	})
}
