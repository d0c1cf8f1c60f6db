CREATE TABLE users (
    -- AUTOINCREMENT: ids are never reused, even after the newest user is
    -- deleted; FindUsers pages on them.
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    -- BINARY collation (SQLite's default): byte order, as in PostgreSQL.
    name        TEXT NOT NULL,
    -- UTC, as diesel writes it: 'YYYY-MM-DD HH:MM:SS.ffffff'.
    create_time TEXT NOT NULL,
    update_time TEXT NOT NULL
);

-- FindUsers by name (exact or prefix), ordered and paged by id, in one scan.
CREATE INDEX users_name_id_idx ON users (name, id);
