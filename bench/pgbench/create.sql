-- CreateUser{name: "bench-N"}: one autocommitted insert returning the row,
-- as users-server does. `bench/run` deletes the bench-% rows afterwards.
\set k random(0, 999999999)
INSERT INTO users (name, create_time, update_time) VALUES ('bench-' || :k, now()::timestamp, now()::timestamp) RETURNING id, name, create_time, update_time, revision;
