-- FindUsers ordered by create_time, paged on (create_time, id), in one scan.
-- CONCURRENTLY: a big table stays writable while the index builds (which is
-- why this migration runs outside a transaction, see metadata.toml).
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_create_time_id_idx ON users (create_time, id);
