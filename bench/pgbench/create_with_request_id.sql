-- CreateUser{name, request_id} with a new request id: users-server's one
-- statement for it, which inserts the user and records the request id
-- together (only a known request id makes the server look it up first).
-- The ids are text in the table; any unique text does for the ceiling.
-- `bench/run` deletes the bench-% rows and the request ids afterwards.
\set k random(0, 999999999)
\set r random(0, 9000000000000000000)
WITH new_user AS (INSERT INTO users (name, create_time, update_time) VALUES ('bench-' || :k, now()::timestamp, now()::timestamp) RETURNING id, name, create_time, update_time, revision), remembered AS (INSERT INTO create_requests (request_id, name, user_id, create_time) SELECT 'ceiling-' || :r, name, id, create_time FROM new_user) SELECT id, name, create_time, update_time, revision FROM new_user;
