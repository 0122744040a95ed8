DELETE FROM gateways WHERE transport = 'stdio';
DROP TRIGGER gateways_transport_known_insert;
DROP TRIGGER gateways_transport_known_update;
CREATE TRIGGER gateways_transport_known_insert BEFORE INSERT ON gateways
WHEN NEW.transport NOT IN ('streamablehttp', 'sse')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: gateways_transport_known');
END;
CREATE TRIGGER gateways_transport_known_update BEFORE UPDATE OF transport ON gateways
WHEN NEW.transport NOT IN ('streamablehttp', 'sse')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: gateways_transport_known');
END;
ALTER TABLE gateways DROP COLUMN command;
