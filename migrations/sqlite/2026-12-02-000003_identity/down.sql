DROP TABLE revoked_tokens;
DROP TABLE api_tokens;
DROP TABLE role_assignments;
DROP TABLE team_members;
DROP TABLE teams;
ALTER TABLE users DROP COLUMN password_changed_at;
ALTER TABLE users DROP COLUMN locked_until;
ALTER TABLE users DROP COLUMN failed_logins;
