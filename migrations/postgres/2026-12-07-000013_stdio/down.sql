DELETE FROM gateways WHERE transport = 'stdio';
ALTER TABLE gateways DROP CONSTRAINT gateways_transport_known;
ALTER TABLE gateways ADD CONSTRAINT gateways_transport_known CHECK (transport IN ('streamablehttp', 'sse'));
ALTER TABLE gateways DROP COLUMN command;
