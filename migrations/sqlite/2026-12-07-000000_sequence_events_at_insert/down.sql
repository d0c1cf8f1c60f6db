-- Back to numbering after commit (for development).
ALTER TABLE user_events RENAME TO user_events_sequenced;

CREATE TABLE user_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    sequence    INTEGER UNIQUE,
    kind        INTEGER NOT NULL,
    user_id     INTEGER NOT NULL,
    name        TEXT NOT NULL,
    create_time TEXT NOT NULL,
    update_time TEXT NOT NULL,
    revision    INTEGER NOT NULL,
    event_time  TEXT NOT NULL,
    request_id  TEXT NOT NULL
);

INSERT INTO user_events
    (id, sequence, kind, user_id, name, create_time, update_time, revision, event_time, request_id)
SELECT sequence, sequence, kind, user_id, name, create_time, update_time, revision, event_time, request_id
FROM user_events_sequenced
ORDER BY sequence;

UPDATE user_event_cursors
SET sequence = coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'user_events_sequenced'), 0)
WHERE name = 'sequenced';

DROP TABLE user_events_sequenced;
