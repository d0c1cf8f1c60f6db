-- GetUser{id}: the statement users-server runs, with a random seeded id
-- (1 .. 100000).
\set id random(1, 100000)
SELECT id, name, create_time, update_time, revision FROM users WHERE id = :id LIMIT 1;
