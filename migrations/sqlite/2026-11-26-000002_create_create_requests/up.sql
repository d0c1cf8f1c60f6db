-- The request ids of recent CreateUser calls (and BatchCreateUsers entries),
-- so that a retry returns the user the first call created. Written in the
-- same transaction as the user; purged after the server's --request-id-ttl.
CREATE TABLE create_requests (
    -- A UUID in canonical form (lowercase, hyphenated).
    request_id  TEXT PRIMARY KEY NOT NULL,
    -- The name asked for: a retry with another name is refused.
    name        TEXT NOT NULL,
    -- The user created. No foreign key: the user may be deleted while the
    -- request id is still remembered.
    user_id     INTEGER NOT NULL,
    -- UTC, as diesel writes it; when the purge may drop the row.
    create_time TEXT NOT NULL
);

CREATE INDEX create_requests_create_time_idx ON create_requests (create_time);
