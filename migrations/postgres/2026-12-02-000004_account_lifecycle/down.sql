DROP INDEX users_id;
ALTER TABLE users DROP COLUMN tokens_valid_after;
ALTER TABLE users DROP COLUMN id;
