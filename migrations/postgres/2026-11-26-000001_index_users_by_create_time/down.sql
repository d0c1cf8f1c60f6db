DROP INDEX IF EXISTS users_create_time_id_idx;
