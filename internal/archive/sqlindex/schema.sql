-- Kinema embedded index, schema version 1.
-- Times are epoch milliseconds (*_ms), sizes bytes (*_bytes).

CREATE TABLE IF NOT EXISTS meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS streams (
	id              INTEGER PRIMARY KEY,
	account         TEXT    NOT NULL,
	region          TEXT    NOT NULL,
	name            TEXT    NOT NULL,
	device_name     TEXT    NOT NULL DEFAULT '',
	media_type      TEXT    NOT NULL DEFAULT '',
	kms_key_id      TEXT    NOT NULL DEFAULT '',
	version         TEXT    NOT NULL,
	status          TEXT    NOT NULL,
	created_ms      INTEGER NOT NULL,
	retention_hours INTEGER NOT NULL,
	storage_tier    TEXT    NOT NULL DEFAULT 'HOT',
	deleted         INTEGER NOT NULL DEFAULT 0
);
-- A name is unique among the account's live streams; a deleted stream frees it at once.
CREATE UNIQUE INDEX IF NOT EXISTS streams_live_name ON streams(account, name) WHERE deleted = 0;

CREATE TABLE IF NOT EXISTS stream_tags (
	stream_id INTEGER NOT NULL,
	key       TEXT    NOT NULL,
	value     TEXT    NOT NULL,
	PRIMARY KEY (stream_id, key)
) WITHOUT ROWID;

-- Track sets (MKV Info + Tracks) fragments are read with; shared by every
-- fragment of a PutMedia session, deduplicated by content.
CREATE TABLE IF NOT EXISTS headers (
	id        INTEGER PRIMARY KEY,
	stream_id INTEGER NOT NULL,
	sha256    BLOB    NOT NULL,
	data      BLOB    NOT NULL,
	UNIQUE (stream_id, sha256)
);

-- Append-only media files. Bytes past committed_bytes were never acknowledged.
CREATE TABLE IF NOT EXISTS segments (
	id              INTEGER PRIMARY KEY,
	committed_bytes INTEGER NOT NULL DEFAULT 0,
	live_fragments  INTEGER NOT NULL DEFAULT 0,
	created_ms      INTEGER NOT NULL
);

-- One row per persisted fragment; id is the fragment number.
CREATE TABLE IF NOT EXISTS fragments (
	id          INTEGER PRIMARY KEY,
	stream_id   INTEGER NOT NULL,
	producer_ms INTEGER NOT NULL,
	server_ms   INTEGER NOT NULL,
	duration_ms INTEGER NOT NULL,
	header_id   INTEGER NOT NULL,
	segment_id  INTEGER NOT NULL,
	offset      INTEGER NOT NULL,
	size_bytes  INTEGER NOT NULL,
	tags        BLOB             -- NULL when the fragment has none
);
CREATE INDEX IF NOT EXISTS fragments_by_server   ON fragments(stream_id, server_ms);
CREATE INDEX IF NOT EXISTS fragments_by_producer ON fragments(stream_id, producer_ms);
-- A stream's fragments in number order (SQLite keeps the rowid, the
-- fragment number, at the end of every index entry): the live edge reads
-- the last few without walking the stream's whole history.
CREATE INDEX IF NOT EXISTS fragments_by_number   ON fragments(stream_id, id);

-- Image generation configuration (UpdateImageGenerationConfiguration), at
-- most one per stream; no row when the stream has none. Values are the KVS
-- API's; 0 in jpeg_quality, width_pixels, height_pixels means "not given".
CREATE TABLE IF NOT EXISTS image_generation (
	stream_id          INTEGER PRIMARY KEY,
	status             TEXT    NOT NULL,
	selector           TEXT    NOT NULL,
	destination_uri    TEXT    NOT NULL,
	destination_region TEXT    NOT NULL,
	sampling_ms        INTEGER NOT NULL,
	format             TEXT    NOT NULL,
	jpeg_quality       INTEGER NOT NULL DEFAULT 0,
	width_pixels       INTEGER NOT NULL DEFAULT 0,
	height_pixels      INTEGER NOT NULL DEFAULT 0
);

-- Each fragment's sample table (stream.Fragment.SampleTable), apart from
-- the fragments table so that time-range scans for playlists stay on small
-- rows. id is the fragment number; fragments without one have no row.
CREATE TABLE IF NOT EXISTS sample_tables (
	id   INTEGER PRIMARY KEY,
	data BLOB    NOT NULL
);

-- Byte ranges of deleted fragments whose disk space is still to be freed.
CREATE TABLE IF NOT EXISTS reclaims (
	id         INTEGER PRIMARY KEY,
	segment_id INTEGER NOT NULL,
	offset     INTEGER NOT NULL,
	length     INTEGER NOT NULL
);

-- Clip records of the device clip-metadata API (internal/clipmeta,
-- docs/clip-metadata.md). One row per (client, device, stream, begin); id is
-- clipmeta.ClipID of that key. Secondary indexes of a WITHOUT ROWID table
-- end with the primary key, so each lists in (begin_ms, id) order; a range
-- scan starts at from - 24 h, the longest clip.
CREATE TABLE IF NOT EXISTS clips (
	id          TEXT    PRIMARY KEY,
	client_id   TEXT    NOT NULL,
	device_id   TEXT    NOT NULL,
	stream_name TEXT    NOT NULL,
	begin_ms    INTEGER NOT NULL,
	end_ms      INTEGER NOT NULL,
	duration_ms INTEGER NOT NULL,
	created_ms  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS clips_key       ON clips(client_id, device_id, stream_name, begin_ms);
CREATE INDEX IF NOT EXISTS        clips_by_device ON clips(client_id, device_id, begin_ms);
CREATE INDEX IF NOT EXISTS        clips_by_stream ON clips(client_id, stream_name, begin_ms);
CREATE INDEX IF NOT EXISTS        clips_by_client ON clips(client_id, begin_ms);

-- Notification configuration of a stream (UpdateNotificationConfiguration);
-- no row means none. status is ENABLED or DISABLED.
CREATE TABLE IF NOT EXISTS notification_configs (
	stream_id  INTEGER PRIMARY KEY,
	status     TEXT    NOT NULL,
	uri        TEXT    NOT NULL,
	updated_ms INTEGER NOT NULL
);

-- The outbox (archive/outbox.go): one row per trigger tag of a persisted
-- fragment, inserted in the transaction that commits the fragment, so the
-- work it triggers is never lost and never runs for an unpersisted
-- fragment. kind names the consumer ('notification', 'image_generation').
-- The fragment's times and tags are copied so the row outlives the
-- fragment's retention. AUTOINCREMENT: ids grow in commit order and are
-- never reused, so a consumer can resume after the highest id it has seen.
-- state: PENDING, DELIVERED, DEAD (gave up; can be redriven), SKIPPED.
CREATE TABLE IF NOT EXISTS outbox (
	id              INTEGER PRIMARY KEY AUTOINCREMENT,
	kind            TEXT    NOT NULL,
	stream_id       INTEGER NOT NULL,
	fragment        INTEGER NOT NULL,
	producer_ms     INTEGER NOT NULL,
	server_ms       INTEGER NOT NULL,
	tags            BLOB,
	created_ms      INTEGER NOT NULL,
	state           TEXT    NOT NULL DEFAULT 'PENDING',
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_ms         INTEGER NOT NULL,
	last_error      TEXT    NOT NULL DEFAULT '',
	last_attempt_ms INTEGER NOT NULL DEFAULT 0,
	done_ms         INTEGER NOT NULL DEFAULT 0,
	destination     TEXT    NOT NULL DEFAULT ''
);
-- What consumers poll: small, as rows leave it once done.
CREATE INDEX IF NOT EXISTS outbox_pending   ON outbox(kind, id) WHERE state = 'PENDING';
-- The events timeline of a stream, and the dead-letter list.
CREATE INDEX IF NOT EXISTS outbox_by_stream ON outbox(stream_id, server_ms);
CREATE INDEX IF NOT EXISTS outbox_dead      ON outbox(kind, stream_id) WHERE state = 'DEAD';
-- Pruning of finished rows.
CREATE INDEX IF NOT EXISTS outbox_done      ON outbox(done_ms) WHERE state IN ('DELIVERED', 'SKIPPED');
