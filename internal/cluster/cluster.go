// Package cluster is what Kinema nodes that share one index (PostgreSQL)
// and one media store (S3) do for each other, beyond sharing them: each
// node beats a heartbeat into the index, which keeps it listed as alive and
// keeps its claims on the streams it ingests valid (so GetDataEndpoint sends a
// reconnecting producer to the node that holds its stream, and to another
// one once that node is dead); and each node announces the fragments it
// made durable on NATS, so that live readers on every node (GetMedia
// tails, LL-HLS blocking reloads) follow streams ingested on any node
// within milliseconds instead of polling the index.
//
// None of this is a cluster of Kinema's own: liveness and ownership are
// rows and advisory locks in PostgreSQL, the fan-out is a NATS subject.
// A node alone (the embedded default) uses neither.
package cluster

import (
	"context"
	"log/slog"
	"time"
)

// Beater records a node's heartbeat (pgindex.Index implements it).
type Beater interface {
	// Heartbeat marks the node alive, which keeps its ingest claims.
	Heartbeat(ctx context.Context) error
}

// HeartbeatInterval is how often a node beats; the index gives a node up
// after missing a few beats (pgindex.LiveFor).
const HeartbeatInterval = time.Second

// Heartbeats beats every interval until ctx ends. A failed beat is logged and retried at the
// next tick: the node's claims lapse if the database stays unreachable,
// which is right, since its ingest cannot commit either.
func Heartbeats(ctx context.Context, b Beater, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		beatCtx, cancel := context.WithTimeout(ctx, interval)
		err := b.Heartbeat(beatCtx)
		cancel()
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			log.Warn("node heartbeat failed", "err", err)
			failing = true
		case err == nil && failing:
			log.Info("node heartbeat recovered")
			failing = false
		}
	}
}
