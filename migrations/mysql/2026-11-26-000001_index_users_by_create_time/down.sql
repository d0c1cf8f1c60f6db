DROP INDEX users_create_time_id_idx ON users;
