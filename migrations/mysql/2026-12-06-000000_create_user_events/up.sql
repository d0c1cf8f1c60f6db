-- The outbox of change events (WatchUsers, the NATS relay): every write to
-- `users` inserts its event here in the same transaction, so an event
-- exists exactly when its write committed.
CREATE TABLE user_events (
    -- Insertion order, given as the write runs; not commit order.
    id          BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    -- Commit order: NULL until the server's sequencer numbers the event,
    -- after its write committed (see Event::sequence_committed in
    -- server/src/models/event.rs).
    sequence    BIGINT NULL UNIQUE,
    -- 1 created, 2 updated, 3 deleted (WatchUsersResponse.Kind).
    kind        SMALLINT NOT NULL,
    -- The user as the write left it (for a delete, as it was).
    user_id     BIGINT NOT NULL,
    name        VARCHAR(256) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL,
    create_time DATETIME(6) NOT NULL,
    update_time DATETIME(6) NOT NULL,
    revision    BIGINT NOT NULL,
    -- UTC, when the write happened.
    event_time  DATETIME(6) NOT NULL,
    -- The x-request-id of the call that wrote (at most 128 characters).
    request_id  VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL
) ENGINE = InnoDB;

-- Named positions in the event log: `sequenced` (the last sequence number
-- given), `expired` (events up to it were deleted), `published` (the last
-- one JetStream acknowledged).
CREATE TABLE user_event_cursors (
    name     VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    sequence BIGINT NOT NULL
) ENGINE = InnoDB;

INSERT INTO user_event_cursors (name, sequence)
VALUES ('sequenced', 0), ('expired', 0), ('published', 0);
