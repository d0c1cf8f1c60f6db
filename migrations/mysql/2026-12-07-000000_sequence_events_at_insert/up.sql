-- Nothing changes on MySQL/MariaDB: PostgreSQL and SQLite now give an
-- event its sequence as it is inserted, but InnoDB exposes no horizon of
-- running transactions to order by, so events here are still numbered
-- after their commit (Event::sequence_committed in
-- server/src/models/event.rs).
DO 0;
