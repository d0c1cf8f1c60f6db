-- Events take their sequence as they are inserted, no longer from a numberer
-- that rewrote each row after its commit (a second write per event).
--
-- The sequence is the inserting transaction's id, shifted left 20 bits,
-- with an ordinal below it (unique within the transaction, which writes at
-- most 1,000 events). Transaction ids are not commit order either, so
-- readers only follow events below the horizon of the oldest transaction
-- still running: every transaction with a smaller id has ended, and any
-- later one gets a larger id (see Event::sequenced in
-- server/src/models/event.rs). So a reader still misses nothing, and no
-- event row is written twice.
--
-- Servers from before this step number events themselves: stop them
-- before it runs (no release had change events before it).

-- Number what the old numberer had not yet, as it would have.
UPDATE user_events AS e SET sequence = c.sequence + t.n
FROM (SELECT id, row_number() OVER (ORDER BY id) AS n
      FROM user_events WHERE sequence IS NULL) AS t,
     user_event_cursors AS c
WHERE e.id = t.id AND c.name = 'sequenced';

UPDATE user_event_cursors
SET sequence = GREATEST(sequence, (SELECT coalesce(max(sequence), 0) FROM user_events))
WHERE name = 'sequenced';

-- New sequences must follow the old ones.
DO $$
BEGIN
    IF (SELECT sequence FROM user_event_cursors WHERE name = 'sequenced')
       >= (pg_current_xact_id()::text::bigint << 20) THEN
        RAISE EXCEPTION 'user_events: the sequences given so far are past the transaction-id sequences';
    END IF;
END
$$;

-- The ordinal of an event within its transaction.
CREATE SEQUENCE user_events_ordinal MINVALUE 0 MAXVALUE 1048575 START 0 CYCLE;

ALTER TABLE user_events DROP COLUMN id;
ALTER TABLE user_events DROP CONSTRAINT user_events_sequence_key;
ALTER TABLE user_events
    ALTER COLUMN sequence SET DEFAULT
        ((pg_current_xact_id()::text::bigint << 20) | nextval('user_events_ordinal')),
    ALTER COLUMN sequence SET NOT NULL,
    ADD PRIMARY KEY (sequence);
-- Insertion order, as on MySQL (which still numbers after commit): here
-- the sequence itself. Not indexed.
ALTER TABLE user_events ADD COLUMN id BIGINT GENERATED ALWAYS AS (sequence) STORED;

-- The `sequenced` cursor is no longer moved: the horizon says where the
-- log stands. It stays, for the step down.
