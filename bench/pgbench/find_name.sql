-- FindUsers{name, page_size: 10}: the statement users-server runs, with a
-- random seeded name (user-00000 .. user-09999; 10 users each). LIMIT 11:
-- the server fetches one row more than the page to learn whether another
-- page follows. The limit is bound, as the server binds it.
\set k random(0, 9999)
\set page 11
SELECT id, name, create_time, update_time, revision FROM users WHERE name = 'user-' || lpad(:k::text, 5, '0') ORDER BY id LIMIT :page;
