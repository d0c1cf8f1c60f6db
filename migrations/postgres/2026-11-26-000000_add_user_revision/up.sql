-- Counts the writes to a user; its etag. Existing users start at 1. A
-- constant default: PostgreSQL adds the column without rewriting the table.
ALTER TABLE users ADD COLUMN revision BIGINT NOT NULL DEFAULT 1;
