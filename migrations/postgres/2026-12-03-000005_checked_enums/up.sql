-- Columns that hold one of a few values accept only those values: what the gateway reads as a
-- typed enum (src/db/stored.rs) can never be something it does not know.
ALTER TABLE gateways ADD CONSTRAINT gateways_transport_known CHECK (transport IN ('streamablehttp', 'sse'));
ALTER TABLE tools ADD CONSTRAINT tools_integration_type_known CHECK (integration_type IN ('REST', 'MCP'));
ALTER TABLE tools ADD CONSTRAINT tools_visibility_known CHECK (visibility IN ('public', 'team', 'private'));
ALTER TABLE resources ADD CONSTRAINT resources_visibility_known CHECK (visibility IN ('public', 'team', 'private'));
ALTER TABLE prompts ADD CONSTRAINT prompts_visibility_known CHECK (visibility IN ('public', 'team', 'private'));
ALTER TABLE servers ADD CONSTRAINT servers_visibility_known CHECK (visibility IN ('public', 'team', 'private'));
ALTER TABLE gateways ADD CONSTRAINT gateways_visibility_known CHECK (visibility IN ('public', 'team', 'private'));
