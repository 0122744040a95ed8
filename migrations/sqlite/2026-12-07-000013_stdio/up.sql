-- Upstreams that are local programs spoken to over stdio: the transport `stdio`, and the
-- command the gateway runs (JSON: program, args, cwd, the names of its environment variables
-- and how the process is run; the variables' values are sealed in auth_secret).
ALTER TABLE gateways ADD COLUMN command TEXT;
DROP TRIGGER gateways_transport_known_insert;
DROP TRIGGER gateways_transport_known_update;
CREATE TRIGGER gateways_transport_known_insert BEFORE INSERT ON gateways
WHEN NEW.transport NOT IN ('streamablehttp', 'sse', 'stdio')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: gateways_transport_known');
END;
CREATE TRIGGER gateways_transport_known_update BEFORE UPDATE OF transport ON gateways
WHEN NEW.transport NOT IN ('streamablehttp', 'sse', 'stdio')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: gateways_transport_known');
END;
