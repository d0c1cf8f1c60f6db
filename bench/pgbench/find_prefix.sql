-- FindUsers{name_prefix, page_size: 10}: a random seeded four-digit prefix
-- (user-0000 .. user-0999; 10 names, 100 users each) as the range
-- [p, p2). p2 is p with its last digit incremented; because the four-digit
-- block is zero-padded, that is simply the next prefix lpad(k + 1): every
-- name starting with p sorts below it (9999 + 1 = 10000 is never drawn).
-- LIMIT is a parameter, as in the server's statement. It matters here: with
-- a constant LIMIT 11 PostgreSQL's generic plan walks the primary key (it
-- expects 11 matches early), so it keeps planning every execution anew
-- (about 0.3 ms each) or, once it switches, runs the slow walk; with the
-- limit bound it plans a bitmap scan of the (name, id) index plus a top-N
-- sort, as it does for the server.
\set k random(0, 999)
\set page 11
SELECT id, name, create_time, update_time, revision FROM users WHERE name >= 'user-' || lpad(:k::text, 4, '0') AND name < 'user-' || lpad((:k + 1)::text, 4, '0') ORDER BY id LIMIT :page;
