-- When each API token was last used (to the minute), written in batches by the AuthActor.
ALTER TABLE api_tokens ADD COLUMN last_used_at TIMESTAMP;
