package sqlindex

import (
	"context"
	"path/filepath"
	"testing"
)

// PERSISTED promises survive power loss: the index must run in WAL mode with
// synchronous=FULL (2), which fsyncs the WAL at every commit.
func TestDurabilitySettings(t *testing.T) {
	x, err := Open(context.Background(), filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	var mode string
	var sync int
	x.w.QueryRow(`PRAGMA journal_mode`).Scan(&mode)
	x.w.QueryRow(`PRAGMA synchronous`).Scan(&sync)
	if mode != "wal" || sync != 2 {
		t.Fatalf("journal_mode=%s synchronous=%d, want wal and 2", mode, sync)
	}
}
