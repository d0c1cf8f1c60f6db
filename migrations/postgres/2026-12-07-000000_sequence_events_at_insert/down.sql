-- Back to numbering after commit: the kept events renumbered 1, 2, ..
-- in sequence order (for development: watchers' positions are lost).
ALTER TABLE user_events DROP COLUMN id;
ALTER TABLE user_events DROP CONSTRAINT user_events_pkey;
ALTER TABLE user_events
    ALTER COLUMN sequence DROP DEFAULT,
    ALTER COLUMN sequence DROP NOT NULL;
DROP SEQUENCE user_events_ordinal;
UPDATE user_events AS e SET sequence = t.n
FROM (SELECT sequence, row_number() OVER (ORDER BY sequence) AS n FROM user_events) AS t
WHERE e.sequence = t.sequence;
ALTER TABLE user_events ADD CONSTRAINT user_events_sequence_key UNIQUE (sequence);
ALTER TABLE user_events ADD COLUMN id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY;
UPDATE user_event_cursors
SET sequence = CASE name
    WHEN 'sequenced' THEN (SELECT coalesce(max(sequence), 0) FROM user_events)
    ELSE 0 END;
