-- Users' own tokens for upstreams that authenticate each user with OAuth (the authorization
-- code flow the user went through in the console): sealed JSON (access and refresh token,
-- expiry), one row per upstream and user; they go with the upstream or the account.
CREATE TABLE upstream_tokens (
    gateway_id TEXT NOT NULL REFERENCES gateways(id) ON DELETE CASCADE,
    user_email TEXT NOT NULL REFERENCES users(email) ON DELETE CASCADE,
    sealed TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (gateway_id, user_email)
);
