CREATE TABLE users (
    -- Never reused; grows in creation order (FindUsers pages on it).
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- "C" collation: byte order, so the (name, id) index also serves
    -- `name LIKE 'prefix%'`, and comparisons don't depend on the server locale.
    name        TEXT COLLATE "C" NOT NULL,
    -- UTC, set by the server.
    create_time TIMESTAMP NOT NULL,
    update_time TIMESTAMP NOT NULL
);

-- FindUsers by name (exact or prefix), ordered and paged by id, in one scan.
CREATE INDEX users_name_id_idx ON users (name, id);
