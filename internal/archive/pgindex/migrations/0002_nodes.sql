-- Several nodes on one database: who they are, which segments each writes,
-- and which node ingests which stream.

-- A node writes only its own segments; recovery after a crash cuts only
-- its own, and other nodes leave a segment alone while its writer may
-- still commit to it. '' is a node that runs alone (local media).
ALTER TABLE segments ADD COLUMN node_id TEXT COLLATE "C" NOT NULL DEFAULT '';

-- Nodes renew seen_ms every second; a node not seen for a few seconds is
-- taken for dead (its ingest claims lapse).
CREATE TABLE nodes (
	id         TEXT COLLATE "C" PRIMARY KEY,
	url        TEXT   NOT NULL,
	started_ms BIGINT NOT NULL,
	seen_ms    BIGINT NOT NULL
);

-- The node that holds a stream's PutMedia connection: one connection per
-- stream across nodes, and where GetDataEndpoint sends the producer. A
-- claim lasts while its node is alive (nodes.seen_ms) and until the
-- session ends; nothing renews it row by row.
CREATE TABLE ingest_claims (
	stream_id BIGINT PRIMARY KEY,
	node_id   TEXT COLLATE "C" NOT NULL,
	since_ms  BIGINT NOT NULL
);
