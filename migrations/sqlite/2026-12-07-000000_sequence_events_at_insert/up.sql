-- Events take their sequence as they are inserted, no longer from a numberer
-- that rewrote each row after its commit (a second write per event). SQLite
-- has one writer at a time, so insertion order is commit order: the
-- sequence is the row id, AUTOINCREMENT so that a number is never given
-- twice, even after the latest events expired (see Event::sequenced in
-- server/src/models/event.rs).
--
-- Servers from before this step number events themselves: stop them
-- before it runs (no release had change events before it).

ALTER TABLE user_events RENAME TO user_events_numbered;

CREATE TABLE user_events (
    -- Commit order, given at insert.
    sequence    INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Insertion order, as on MySQL (which still numbers after commit):
    -- here the sequence itself.
    id          INTEGER GENERATED ALWAYS AS (sequence) VIRTUAL NOT NULL,
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

-- New numbers follow the last one given, kept or not.
INSERT INTO sqlite_sequence (name, seq)
SELECT 'user_events', sequence FROM user_event_cursors WHERE name = 'sequenced';

-- The numbered events keep their numbers; the others are numbered after
-- them, in insertion order, as the old numberer would have.
INSERT INTO user_events
    (sequence, kind, user_id, name, create_time, update_time, revision, event_time, request_id)
SELECT sequence, kind, user_id, name, create_time, update_time, revision, event_time, request_id
FROM user_events_numbered
ORDER BY sequence IS NULL, sequence, id;

DROP TABLE user_events_numbered;
