CREATE TABLE users (
    -- Never reused (InnoDB keeps the counter across restarts since
    -- MariaDB 10.2.4); grows in creation order (FindUsers pages on it).
    id          BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    -- utf8mb4: any Unicode, emoji included. VARCHAR(256) counts characters.
    -- utf8mb4_nopad_bin: compared and ordered by code point, case- and
    -- trailing-space-sensitive, as on PostgreSQL ("C") and SQLite (BINARY).
    -- The default utf8mb4_general_ci would match `john` and `John ` to
    -- `John`; utf8mb4_bin would still ignore trailing spaces (PAD SPACE).
    name        VARCHAR(256) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL,
    -- UTC, microseconds. DATETIME, not TIMESTAMP: stored as given, never
    -- converted by the session time zone, and not bounded by 2038.
    create_time DATETIME(6) NOT NULL,
    update_time DATETIME(6) NOT NULL
) ENGINE = InnoDB;

-- FindUsers by name (exact or prefix), ordered and paged by id, in one scan.
CREATE INDEX users_name_id_idx ON users (name, id);
