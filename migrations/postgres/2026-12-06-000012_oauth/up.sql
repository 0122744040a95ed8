-- The built-in OAuth 2.1 authorization server: registered clients (dynamic registration or a
-- client ID metadata document), each user's consent per client, authorization codes (stored
-- hashed, single use), and grants: one per authorization, its current refresh token (hashed;
-- rotated on use) and access token id. A refresh token used twice revokes its grant.
CREATE TABLE oauth_clients (
    client_id TEXT PRIMARY KEY,
    client_name TEXT,
    redirect_uris TEXT NOT NULL,
    metadata TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE TABLE oauth_consents (
    user_email TEXT NOT NULL,
    client_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (user_email, client_id)
);
CREATE TABLE oauth_codes (
    code_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    user_email TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    resource TEXT NOT NULL,
    scope TEXT,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP,
    grant_id TEXT
);
CREATE TABLE oauth_grants (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    user_email TEXT NOT NULL,
    resource TEXT NOT NULL,
    scope TEXT,
    refresh_hash TEXT NOT NULL,
    access_jti TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    refreshed_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP,
    revoked_reason TEXT
);
CREATE UNIQUE INDEX oauth_grants_refresh ON oauth_grants (refresh_hash);
CREATE INDEX oauth_grants_user ON oauth_grants (user_email, client_id);
CREATE TABLE oauth_used_refresh (
    refresh_hash TEXT PRIMARY KEY,
    grant_id TEXT NOT NULL,
    used_at TIMESTAMP NOT NULL
);
