-- Tokens are bound to an account's immutable id (a re-created email is another account), and
-- sign-in tokens issued before `tokens_valid_after` (a password change, an admin reset, a
-- disable) are refused.
ALTER TABLE users ADD COLUMN id TEXT;
UPDATE users SET id = lower(hex(randomblob(16))) WHERE id IS NULL;
CREATE UNIQUE INDEX users_id ON users (id);
ALTER TABLE users ADD COLUMN tokens_valid_after TIMESTAMP;
