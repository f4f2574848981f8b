package pgindex

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// LiveFor is how long a node counts as alive after its last heartbeat.
// Nodes beat every second (cluster.Heartbeats), so a node is given up
// after missing a few beats; its ingest claims go with it, so a killed
// node's streams can be ingested elsewhere after at most this.
const LiveFor = 3 * time.Second

// ErrNodeLocked is returned by Join when another running process holds the
// node identity (or, for a node alone on its schema, the schema).
var ErrNodeLocked = errors.New("another Kinema process is running as this node on this PostgreSQL database (schema)")

// Join makes this handle the node id (reachable at url) until Close: it
// takes the node's advisory lock on a connection kept for the purpose, so
// a second process with the same identity is refused (two writers of the
// same segments would cut each other's data at recovery), and registers
// the node. Segments created from now on are the node's own.
//
// alone is for nodes whose media only they can read (segment files on
// their own disk): the lock is then the whole schema's, so no other node
// can join at all. The lock goes with its connection: PostgreSQL drops it
// when the node dies.
func (x *Index) Join(ctx context.Context, id, url string, alone bool) error {
	if alone {
		id = ""
	} else if id == "" {
		return errors.New("postgres index: a node sharing the database needs an id")
	}
	c, err := x.takeLock(ctx, id)
	if err != nil {
		if alone && errors.Is(err, ErrNodeLocked) {
			return fmt.Errorf("%w: it runs alone on it (its media are on its own disk)", err)
		}
		return err
	}
	if !alone {
		// Nobody else runs as this node, so whatever ingest claims it left
		// (it crashed) are void.
		if err := x.tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `DELETE FROM ingest_claims WHERE node_id = $1`, id); err != nil {
				return err
			}
			now := time.Now().UnixMilli()
			_, err := tx.ExecContext(ctx, `INSERT INTO nodes (id, url, started_ms, seen_ms) VALUES ($1, $2, $3, $3)
				ON CONFLICT (id) DO UPDATE SET url = excluded.url, started_ms = excluded.started_ms, seen_ms = excluded.seen_ms`, id, url, now)
			return err
		}); err != nil {
			c.Close()
			return err
		}
	}
	x.lockMu.Lock()
	x.lock, x.node = c, id
	x.lockMu.Unlock()
	return nil
}

// takeLock takes the node's advisory locks on a connection of its own: the
// schema's lock, exclusive for a node alone ("" id) and shared otherwise,
// and a shared node's own lock, so that a node alone and shared nodes
// exclude each other and two processes never run as the same node.
func (x *Index) takeLock(ctx context.Context, id string) (*sql.Conn, error) {
	c, err := x.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	var ok bool
	if id == "" {
		err = c.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1, hashtext(current_schema()))`, int32(lockNode)).Scan(&ok)
	} else {
		err = c.QueryRowContext(ctx, `SELECT pg_try_advisory_lock_shared($1, hashtext(current_schema()))
			AND pg_try_advisory_lock($1, hashtext(current_schema() || '/' || $2))`, int32(lockNode), id).Scan(&ok)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	if !ok {
		// The connection goes back to the pool, not away: drop whichever
		// of the two locks it did get.
		c.ExecContext(ctx, `SELECT pg_advisory_unlock_all()`)
		c.Close()
		if id == "" {
			return nil, ErrNodeLocked
		}
		return nil, fmt.Errorf("%w (node id %q)", ErrNodeLocked, id)
	}
	return c, nil
}

// Node is the id this handle joined as ("" for a node alone).
func (x *Index) Node() string { return x.node }

// Heartbeat tells other nodes this one is alive, which keeps its ingest
// claims valid: one row per node and beat, however many streams it ingests.
func (x *Index) Heartbeat(ctx context.Context) error {
	if err := x.keepLock(ctx); err != nil {
		return err
	}
	if x.node == "" {
		return nil
	}
	_, err := x.db.ExecContext(ctx, `UPDATE nodes SET seen_ms = $2 WHERE id = $1`, x.node, time.Now().UnixMilli())
	return err
}

// ClaimIngest makes this node the one that ingests the stream, unless
// another live node holds it; then ok is false and ownerURL says where the
// stream's producer should go.
func (x *Index) ClaimIngest(ctx context.Context, streamID int64) (ok bool, ownerURL string, err error) {
	if x.node == "" {
		return true, "", nil
	}
	now := time.Now().UnixMilli()
	stale := now - LiveFor.Milliseconds()
	var got string
	err = x.db.QueryRowContext(ctx, `INSERT INTO ingest_claims (stream_id, node_id, since_ms) VALUES ($1, $2, $3)
		ON CONFLICT (stream_id) DO UPDATE SET node_id = excluded.node_id, since_ms = excluded.since_ms
		WHERE ingest_claims.node_id = excluded.node_id
			OR NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = ingest_claims.node_id AND n.seen_ms >= $4)
		RETURNING node_id`, streamID, x.node, now, stale).Scan(&got)
	if err == nil {
		return true, "", nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return false, "", err
	}
	url, held, err := x.IngestOwner(ctx, streamID)
	if err != nil {
		return false, "", err
	}
	if !held { // the claim lapsed in between: try again later
		return false, "", nil
	}
	return false, url, nil
}

// ReleaseIngest gives up this node's claim on the stream.
func (x *Index) ReleaseIngest(ctx context.Context, streamID int64) error {
	if x.node == "" {
		return nil
	}
	_, err := x.db.ExecContext(ctx, `DELETE FROM ingest_claims WHERE stream_id = $1 AND node_id = $2`, streamID, x.node)
	return err
}

// IngestOwner returns the URL of the live node that holds the stream's
// ingest claim, if any.
func (x *Index) IngestOwner(ctx context.Context, streamID int64) (url string, ok bool, err error) {
	stale := time.Now().UnixMilli() - LiveFor.Milliseconds()
	err = x.db.QueryRowContext(ctx, `SELECT n.url FROM ingest_claims c JOIN nodes n ON n.id = c.node_id
		WHERE c.stream_id = $1 AND n.seen_ms >= $2`, streamID, stale).Scan(&url)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	return url, err == nil, err
}

// keepLock takes the node lock again when its connection died (the server
// restarted, or terminated it): the lock went with it.
func (x *Index) keepLock(ctx context.Context) error {
	x.lockMu.Lock()
	defer x.lockMu.Unlock()
	if x.lock == nil || x.lock.PingContext(ctx) == nil {
		return nil
	}
	x.lock.Close()
	c, err := x.takeLock(ctx, x.node)
	if err != nil {
		x.lock = nil
		return fmt.Errorf("taking the node lock again: %w", err)
	}
	x.lock = c
	return nil
}
