-- The outbox of change events (WatchUsers, the NATS relay): every write to
-- `users` inserts its event here in the same transaction, so an event
-- exists exactly when its write committed.
CREATE TABLE user_events (
    -- Insertion order, given as the write runs; not commit order.
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Commit order: NULL until the server's sequencer numbers the event,
    -- after its write committed (see Event::sequence_committed in
    -- server/src/models/event.rs).
    sequence    INTEGER UNIQUE,
    -- 1 created, 2 updated, 3 deleted (WatchUsersResponse.Kind).
    kind        INTEGER NOT NULL,
    -- The user as the write left it (for a delete, as it was).
    user_id     INTEGER NOT NULL,
    name        TEXT NOT NULL,
    create_time TEXT NOT NULL,
    update_time TEXT NOT NULL,
    revision    INTEGER NOT NULL,
    -- UTC, when the write happened.
    event_time  TEXT NOT NULL,
    -- The x-request-id of the call that wrote.
    request_id  TEXT NOT NULL
);

-- Named positions in the event log: `sequenced` (the last sequence number
-- given), `expired` (events up to it were deleted), `published` (the last
-- one JetStream acknowledged).
CREATE TABLE user_event_cursors (
    name     TEXT PRIMARY KEY NOT NULL,
    sequence INTEGER NOT NULL
);

INSERT INTO user_event_cursors (name, sequence)
VALUES ('sequenced', 0), ('expired', 0), ('published', 0);
