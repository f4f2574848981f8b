-- IAM entities of every node sharing the database (internal/iam): one row
-- per account, user, access key, policy, role, role alias or device, its
-- JSON value as the Service writes it (secret access keys inside are
-- encrypted under the server key). iam_version moves with every write; the
-- nodes poll it to know when to reload.

CREATE TABLE iam_entities (
	kind  TEXT  NOT NULL,
	key   TEXT  NOT NULL,
	value BYTEA NOT NULL,
	PRIMARY KEY (kind, key)
);

CREATE TABLE iam_version (
	id      INTEGER PRIMARY KEY CHECK (id = 1),
	version BIGINT  NOT NULL
);
INSERT INTO iam_version (id, version) VALUES (1, 0);
