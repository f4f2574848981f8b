package iampg_test

import (
	"context"
	"testing"

	"github.com/kinema/kinema/internal/archive/pgindex"
	"github.com/kinema/kinema/internal/archive/pgindex/pgtest"
	"github.com/kinema/kinema/internal/iam"
	"github.com/kinema/kinema/internal/iam/iampg"
	"github.com/kinema/kinema/internal/iam/iamtest"
)

func open(t *testing.T, dsn string) *iampg.Store {
	t.Helper()
	s, err := iampg.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestConformance runs the Store contract, and two Services on one schema
// (two nodes), on PostgreSQL.
func TestConformance(t *testing.T) {
	iamtest.Run(t, func(t *testing.T) (iam.Store, iam.Store) {
		dsn := pgtest.Schema(t)
		return open(t, dsn), open(t, dsn)
	})
}

// TestBesideTheIndex: the store lives in the index's schema with
// migrations of its own, whichever opens first, and reopening applies
// nothing.
func TestBesideTheIndex(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Schema(t)
	s := open(t, dsn)
	x, err := pgindex.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if v, err := x.SchemaVersion(ctx); err != nil || v < 1 {
		t.Fatalf("index schema version %d, %v", v, err)
	}
	v, err := s.Apply(ctx, 0, []iam.Record{{Kind: "account", Key: "1", Value: []byte(`{}`)}})
	if err != nil || v != 1 {
		t.Fatalf("Apply: %d, %v", v, err)
	}
	again := open(t, dsn)
	recs, v, err := again.All(ctx)
	if err != nil || v != 1 || len(recs) != 1 {
		t.Fatalf("after reopening: %d records at version %d, %v", len(recs), v, err)
	}
}
