ALTER TABLE users DROP COLUMN revision;
