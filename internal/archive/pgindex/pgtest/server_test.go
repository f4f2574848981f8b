package pgtest_test

import (
	"database/sql"
	"testing"
	"time"

	"github.com/kinema/kinema/internal/archive/pgindex/pgtest"
)

// TestServer: a private server answers at its DSN, Restart really restarts
// it, and it refuses connections between Stop and Start.
func TestServer(t *testing.T) {
	s := pgtest.StartServer(t)
	db, err := sql.Open("pgx", s.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxIdleConns(0) // a fresh connection per statement: none outlives the server
	started := func() time.Time {
		t.Helper()
		var at time.Time
		if err := db.QueryRow(`SELECT pg_postmaster_start_time()`).Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at
	}
	first := started()
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if again := started(); !again.After(first) {
		t.Fatalf("server started at %v before the restart and %v after", first, again)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(); err == nil {
		t.Fatal("the stopped server answers")
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(); err != nil {
		t.Fatalf("after Start: %v", err)
	}
}
