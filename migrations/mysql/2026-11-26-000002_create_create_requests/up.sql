-- The request ids of recent CreateUser calls (and BatchCreateUsers entries),
-- so that a retry returns the user the first call created. Written in the
-- same transaction as the user; purged after the server's --request-id-ttl.
CREATE TABLE create_requests (
    -- A UUID in canonical form (lowercase, hyphenated).
    request_id  VARCHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    -- The name asked for: a retry with another name is refused.
    name        VARCHAR(256) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL,
    -- The user created. No foreign key: the user may be deleted while the
    -- request id is still remembered.
    user_id     BIGINT NOT NULL,
    -- UTC; when the purge may drop the row.
    create_time DATETIME(6) NOT NULL
) ENGINE = InnoDB;

CREATE INDEX create_requests_create_time_idx ON create_requests (create_time);
