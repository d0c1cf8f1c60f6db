-- Counts the writes to a user; its etag. Existing users start at 1.
ALTER TABLE users ADD COLUMN revision BIGINT NOT NULL DEFAULT 1;
