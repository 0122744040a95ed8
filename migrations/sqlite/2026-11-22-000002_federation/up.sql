-- Federation: what the gateway knows about each upstream, and per-call metrics.
ALTER TABLE gateways ADD COLUMN prefix_tool_names BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE gateways ADD COLUMN auth_type TEXT;
ALTER TABLE gateways ADD COLUMN auth_secret TEXT;
ALTER TABLE gateways ADD COLUMN protocol_version TEXT;
ALTER TABLE gateways ADD COLUMN capabilities TEXT NOT NULL DEFAULT '{}';
ALTER TABLE gateways ADD COLUMN reachable BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE gateways ADD COLUMN last_seen_at TIMESTAMP;

CREATE UNIQUE INDEX tools_gateway_original ON tools (gateway_id, original_name) WHERE gateway_id IS NOT NULL;
CREATE UNIQUE INDEX prompts_gateway_original ON prompts (gateway_id, original_name) WHERE gateway_id IS NOT NULL;

CREATE TABLE tool_metrics (
    id TEXT PRIMARY KEY,
    tool_name TEXT NOT NULL,
    gateway_id TEXT,
    started_at TIMESTAMP NOT NULL,
    duration_ms DOUBLE NOT NULL,
    success BOOLEAN NOT NULL,
    error TEXT
);
CREATE INDEX tool_metrics_tool_name ON tool_metrics (tool_name, started_at);
