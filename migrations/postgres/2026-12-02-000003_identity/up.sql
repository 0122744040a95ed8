-- Identity and access: sign-in bookkeeping, teams and their members, role assignments,
-- API tokens (stored hashed) and revoked token ids.
ALTER TABLE users ADD COLUMN failed_logins INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locked_until TIMESTAMP;
ALTER TABLE users ADD COLUMN password_changed_at TIMESTAMP;

CREATE TABLE teams (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    slug TEXT NOT NULL UNIQUE,
    description TEXT,
    is_personal BOOLEAN NOT NULL DEFAULT FALSE,
    owner_email TEXT NOT NULL REFERENCES users (email) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX teams_owner_email ON teams (owner_email);

CREATE TABLE team_members (
    team_id TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    email TEXT NOT NULL REFERENCES users (email) ON DELETE CASCADE,
    role TEXT NOT NULL,
    joined_at TIMESTAMP NOT NULL,
    PRIMARY KEY (team_id, email)
);
CREATE INDEX team_members_email ON team_members (email);

-- scope is '*' for a global assignment, else a team id.
CREATE TABLE role_assignments (
    email TEXT NOT NULL REFERENCES users (email) ON DELETE CASCADE,
    role TEXT NOT NULL,
    scope TEXT NOT NULL,
    granted_by TEXT,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (email, role, scope)
);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    owner_email TEXT NOT NULL REFERENCES users (email) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    jti TEXT NOT NULL UNIQUE,
    server_id TEXT,
    permissions TEXT,
    ip_restrictions TEXT NOT NULL DEFAULT '[]',
    time_restrictions TEXT,
    expires_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP,
    UNIQUE (owner_email, name)
);

CREATE TABLE revoked_tokens (
    jti TEXT PRIMARY KEY,
    revoked_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP
);
