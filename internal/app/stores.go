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
	url := advertisedURL(cfg)
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
// --public-url, else the listen address when it names a host.
func advertisedURL(cfg Config) string {
	if cfg.PublicURL != "" {
		return strings.TrimRight(cfg.PublicURL, "/")
	}
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil || host == "" || net.ParseIP(host).IsUnspecified() {
		return ""
	}
	scheme := "http"
	if cfg.TLS || cfg.TLSCert != "" {
		scheme = "https"
	}
	return scheme + "://" + cfg.Listen
}
