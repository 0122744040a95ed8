ALTER TABLE gateways DROP CONSTRAINT gateways_transport_known;
ALTER TABLE tools DROP CONSTRAINT tools_integration_type_known;
ALTER TABLE tools DROP CONSTRAINT tools_visibility_known;
ALTER TABLE resources DROP CONSTRAINT resources_visibility_known;
ALTER TABLE prompts DROP CONSTRAINT prompts_visibility_known;
ALTER TABLE servers DROP CONSTRAINT servers_visibility_known;
ALTER TABLE gateways DROP CONSTRAINT gateways_visibility_known;
