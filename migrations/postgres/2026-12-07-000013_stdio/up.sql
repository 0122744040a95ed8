-- Upstreams that are local programs spoken to over stdio: the transport `stdio`, and the
-- command the gateway runs (JSON: program, args, cwd, the names of its environment variables
-- and how the process is run; the variables' values are sealed in auth_secret).
ALTER TABLE gateways ADD COLUMN command TEXT;
ALTER TABLE gateways DROP CONSTRAINT gateways_transport_known;
ALTER TABLE gateways ADD CONSTRAINT gateways_transport_known CHECK (transport IN ('streamablehttp', 'sse', 'stdio'));
