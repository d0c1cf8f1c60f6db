-- CreateUser{name, request_id}: users-server's transaction for a create
-- under a request id: look the id up (a new one: nothing found), insert the
-- user, record the id. The ids are text in the table; any unique text does
-- for the ceiling. `bench/run` deletes the bench-% rows and the request ids
-- afterwards.
\set k random(0, 999999999)
\set r random(0, 9000000000000000000)
BEGIN;
SELECT request_id, name, user_id, create_time FROM create_requests WHERE request_id = ANY(ARRAY['ceiling-' || :r]);
INSERT INTO users (name, create_time, update_time) VALUES ('bench-' || :k, now()::timestamp, now()::timestamp) RETURNING id, name, create_time, update_time, revision \gset
INSERT INTO create_requests (request_id, name, user_id, create_time) VALUES ('ceiling-' || :r, 'bench-' || :k, :id, now()::timestamp);
COMMIT;
