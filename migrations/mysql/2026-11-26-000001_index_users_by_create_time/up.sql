-- FindUsers ordered by create_time, paged on (create_time, id), in one scan.
-- InnoDB builds it online: the table stays writable meanwhile.
CREATE INDEX users_create_time_id_idx ON users (create_time, id);
