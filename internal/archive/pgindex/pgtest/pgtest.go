// Package pgtest gives tests a PostgreSQL database of their own: a fresh
// schema on the server named by KINEMA_TEST_POSTGRES (default: the local
// server scripts/setup.sh starts), dropped when the test ends. A test that
// cannot reach the server fails: the PostgreSQL backend is part of what
// CI must prove, so it is never skipped. Fault tests that restart or stop
// the database get a server of their own instead (StartServer). Only tests
// import it.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver
)

// DefaultDSN is the server scripts/setup.sh makes sure of.
const DefaultDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// DSN is the server tests use.
func DSN() string {
	if s := os.Getenv("KINEMA_TEST_POSTGRES"); s != "" {
		return s
	}
	return DefaultDSN
}

// Schema creates an empty schema for the test and returns a DSN whose
// connections use it (search_path).
func Schema(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", DSN())
	if err == nil {
		err = db.PingContext(ctx)
	}
	if err != nil {
		t.Fatalf("PostgreSQL is required at %s (set KINEMA_TEST_POSTGRES; scripts/setup.sh installs and starts it): %v", DSN(), err)
	}
	defer db.Close()
	b := make([]byte, 6)
	rand.Read(b)
	name := "kt_" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "_"))
	if len(name) > 40 {
		name = name[:40]
	}
	name = sanitize(name) + "_" + hex.EncodeToString(b)
	if _, err := db.ExecContext(ctx, `CREATE SCHEMA `+name); err != nil {
		t.Fatalf("creating schema %s: %v", name, err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", DSN())
		if err != nil {
			return
		}
		defer db.Close()
		if _, err := db.Exec(`DROP SCHEMA ` + name + ` CASCADE`); err != nil {
			t.Logf("dropping schema %s: %v", name, err)
		}
	})
	return WithParam(DSN(), "search_path", name)
}

// WithParam returns dsn with a connection parameter set (search_path,
// application_name, ...), in a URL or a key=value DSN.
func WithParam(dsn, key, value string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		return dsn + " " + key + "=" + value
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Terminate makes the server end every connection whose application_name
// is app, as a restart would, waits until they are gone, and returns how
// many there were.
func Terminate(t testing.TB, app string) int {
	t.Helper()
	admin, err := sql.Open("pgx", DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var killed int
	if err := admin.QueryRow(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&killed); err != nil || killed == 0 {
		t.Fatalf("terminated %d connections of %s: %v", killed, app, err)
	}
	// pg_terminate_backend signals; wait until the processes are gone.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var left int
		admin.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&left)
		if left == 0 {
			return killed
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still there", left)
		}
	}
}
