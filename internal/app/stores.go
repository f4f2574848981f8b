package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/archive/localfs"
	"github.com/kinema/kinema/internal/archive/pgindex"
	"github.com/kinema/kinema/internal/archive/s3media"
	"github.com/kinema/kinema/internal/archive/sqlindex"
	"github.com/kinema/kinema/internal/clipmeta"
	"github.com/kinema/kinema/internal/iam"
	"github.com/kinema/kinema/internal/iam/iampg"
	"github.com/kinema/kinema/internal/metrics"
)

// Index is what a node needs of its metadata store: the archive's index
// and the clip records, which every index backend keeps in the same
// database.
type Index interface {
	archive.Index
	clipmeta.Store
}

// OpenIndex opens the index a URL names: empty for the embedded SQLite
// database in dataDir (the zero set-up default), or a postgres:// URL for
// a database shared by several nodes. It returns the backend's name too.
func OpenIndex(ctx context.Context, u, dataDir string) (Index, string, error) {
	switch {
	case u == "":
		x, err := sqlindex.Open(ctx, filepath.Join(dataDir, "index.db"))
		if err != nil { // not a typed nil in the interface
			return nil, "", err
		}
		return x, "sqlite", nil
	case strings.HasPrefix(u, "postgres://"), strings.HasPrefix(u, "postgresql://"):
		x, err := pgindex.Open(ctx, u)
		if err != nil {
			return nil, "", err
		}
		return x, "postgres", nil
	default:
		scheme, _, _ := strings.Cut(u, ":") // not the whole URL: it may hold a password
		return nil, "", fmt.Errorf("index URL of scheme %q: want a postgres:// URL, or nothing for the embedded index", scheme)
	}
}

// openMedia opens the media store Config.Media names: empty for segment
// files in the data dir, or s3://bucket/prefix on the store Config.S3
// describes.
func openMedia(ctx context.Context, cfg Config, m *metrics.S3Media) (archive.Media, string, error) {
	switch u := cfg.Media; {
	case u == "":
		m, err := localfs.Open(filepath.Join(cfg.DataDir, "media"))
		if err != nil {
			return nil, "", err
		}
		return m, "local", nil
	case strings.HasPrefix(u, "s3://"):
		bucket, prefix, err := s3media.ParseURL(u)
		if err != nil {
			return nil, "", err
		}
		m, err := s3media.Open(ctx, cfg.S3, bucket, prefix, s3media.Options{PutInterval: cfg.MediaPutInterval, Metrics: m})
		if err != nil {
			return nil, "", err
		}
		return m, "s3", nil
	default:
		return nil, "", fmt.Errorf("media %q: want s3://bucket/prefix, or nothing for files in the data dir", u)
	}
}

// joinIndex makes the node known to a PostgreSQL index before its archive
// recovers: a node with S3 media joins as one of several (it returns the
// index as the node's cluster membership), a node with local media joins
// alone and keeps other nodes out. Other indexes need nothing.
func joinIndex(ctx context.Context, cfg Config, x Index, mediaKind string) (*pgindex.Index, string, error) {
	pg, ok := x.(*pgindex.Index)
	if !ok {
		return nil, "", nil
	}
	if mediaKind != "s3" {
		if err := pg.Join(ctx, "", "", true); err != nil {
			return nil, "", fmt.Errorf("postgres index: %w", err)
		}
		return nil, "", nil
	}
	url := advertisedURL(cfg, cfg.Listen)
	if url == "" {
		return nil, "", fmt.Errorf("nodes sharing a PostgreSQL index send producers to each other: give this node's own URL with --public-url (it listens on %s)", cfg.Listen)
	}
	id := cfg.NodeID
	if id == "" {
		host, _ := os.Hostname()
		_, port, _ := net.SplitHostPort(cfg.Listen)
		id = host + "-" + port
	}
	// A node restarted at once after a crash may find its old session's
	// lock still held until the server notices that session is gone.
	for deadline := time.Now().Add(joinPatience); ; time.Sleep(250 * time.Millisecond) {
		err := pg.Join(ctx, id, url, false)
		if err == nil {
			return pg, id, nil
		}
		if !errors.Is(err, pgindex.ErrNodeLocked) || time.Now().After(deadline) {
			return nil, "", fmt.Errorf("postgres index: %w", err)
		}
	}
}

// joinPatience is how long a starting node waits for its identity's lock.
const joinPatience = 5 * time.Second

// advertisedURL is the URL other nodes and clients reach this node at:
// --public-url, else addr (the listen address, or the address listened on
// once known) when --listen names a host; "" when it does not (GetDataEndpoint
// then answers with the host the request came to).
func advertisedURL(cfg Config, addr string) string {
	if cfg.PublicURL != "" {
		return strings.TrimRight(cfg.PublicURL, "/")
	}
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil || host == "" || net.ParseIP(host).IsUnspecified() {
		return ""
	}
	scheme := "http"
	if cfg.TLS || cfg.TLSCert != "" || cfg.TLSKey != "" {
		scheme = "https"
	}
	return scheme + "://" + addr
}

// iamFile is where a node with a PostgreSQL index kept IAM before IAM
// moved to PostgreSQL: imported once into an empty shared store.
const iamFile = "iam.db"

// openIAMStore opens the IAM store beside the index: in the embedded
// index's database file, or in the PostgreSQL database (migrated like the
// index).
func openIAMStore(ctx context.Context, cfg Config) (iam.Store, error) {
	if !sharedIndex(cfg.Index) {
		s, err := iam.OpenSQLite(ctx, filepath.Join(cfg.DataDir, "index.db"))
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	s, err := iampg.Open(ctx, cfg.Index)
	if err != nil {
		return nil, err
	}
	if err := importIAM(ctx, s, filepath.Join(cfg.DataDir, iamFile)); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// importIAM copies the entities of the SQLite file at path into the
// shared store if that was never written (version 0): what a node on a
// PostgreSQL index kept in its data dir before IAM moved there. Nodes
// starting together race for it; the compare-and-swap lets one import.
func importIAM(ctx context.Context, shared iam.Store, path string) error {
	if v, err := shared.Version(ctx); err != nil || v != 0 {
		return err
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	old, err := iam.OpenSQLite(ctx, path)
	if err != nil {
		return fmt.Errorf("importing %s: %w", path, err)
	}
	defer old.Close()
	recs, _, err := old.All(ctx)
	if err != nil || len(recs) == 0 {
		return err
	}
	if _, err := shared.Apply(ctx, 0, recs); err != nil && !errors.Is(err, iam.ErrConflict) {
		return fmt.Errorf("importing %s: %w", path, err)
	}
	return nil
}
