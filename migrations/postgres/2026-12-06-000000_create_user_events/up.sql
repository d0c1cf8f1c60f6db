-- The outbox of change events (WatchUsers, the NATS relay): every write to
-- `users` inserts its event here in the same transaction, so an event
-- exists exactly when its write committed.
CREATE TABLE user_events (
    -- Insertion order, given as the write runs; not commit order.
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Commit order: NULL until the server's sequencer numbers the event,
    -- after its write committed (see Event::sequence_committed in
    -- server/src/models/event.rs).
    sequence    BIGINT UNIQUE,
    -- 1 created, 2 updated, 3 deleted (WatchUsersResponse.Kind).
    kind        SMALLINT NOT NULL,
    -- The user as the write left it (for a delete, as it was).
    user_id     BIGINT NOT NULL,
    name        TEXT COLLATE "C" NOT NULL,
    create_time TIMESTAMP NOT NULL,
    update_time TIMESTAMP NOT NULL,
    revision    BIGINT NOT NULL,
    -- UTC, when the write happened.
    event_time  TIMESTAMP NOT NULL,
    -- The x-request-id of the call that wrote.
    request_id  TEXT NOT NULL
);

-- Named positions in the event log: `sequenced` (the last sequence number
-- given), `expired` (events up to it were deleted), `published` (the last
-- one JetStream acknowledged).
CREATE TABLE user_event_cursors (
    name     TEXT COLLATE "C" PRIMARY KEY,
    sequence BIGINT NOT NULL
);

INSERT INTO user_event_cursors (name, sequence)
VALUES ('sequenced', 0), ('expired', 0), ('published', 0);
