-- The audit trail: every change to the registry, identities, tokens and sign-ins — who (the
-- account and the token it used), from where (client address, request id), what (an action
-- named like the permission it needed, and its target) and the record before and after as
-- JSON with secrets masked. Ids are UUIDv7, so they sort by time.
CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    at TIMESTAMP NOT NULL,
    actor TEXT NOT NULL,
    token_id TEXT,
    client_ip TEXT,
    request_id TEXT,
    action TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    target_id TEXT,
    target_name TEXT,
    outcome TEXT NOT NULL,
    detail TEXT,
    before_json TEXT,
    after_json TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_target ON audit_log (target_id, id);
CREATE INDEX audit_log_action ON audit_log (action, id);
