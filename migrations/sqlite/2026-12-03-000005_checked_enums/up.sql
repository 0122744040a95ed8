-- Columns that hold one of a few values accept only those values: what the gateway reads as a
-- typed enum (src/db/stored.rs) can never be something it does not know.
-- SQLite cannot add a CHECK constraint to an existing table; triggers refuse the same writes.
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
CREATE TRIGGER tools_integration_type_known_insert BEFORE INSERT ON tools
WHEN NEW.integration_type NOT IN ('REST', 'MCP')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: tools_integration_type_known');
END;
CREATE TRIGGER tools_integration_type_known_update BEFORE UPDATE OF integration_type ON tools
WHEN NEW.integration_type NOT IN ('REST', 'MCP')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: tools_integration_type_known');
END;
CREATE TRIGGER tools_visibility_known_insert BEFORE INSERT ON tools
WHEN NEW.visibility NOT IN ('public', 'team', 'private')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: tools_visibility_known');
END;
CREATE TRIGGER tools_visibility_known_update BEFORE UPDATE OF visibility ON tools
WHEN NEW.visibility NOT IN ('public', 'team', 'private')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: tools_visibility_known');
END;
CREATE TRIGGER resources_visibility_known_insert BEFORE INSERT ON resources
WHEN NEW.visibility NOT IN ('public', 'team', 'private')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: resources_visibility_known');
END;
CREATE TRIGGER resources_visibility_known_update BEFORE UPDATE OF visibility ON resources
WHEN NEW.visibility NOT IN ('public', 'team', 'private')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: resources_visibility_known');
END;
CREATE TRIGGER prompts_visibility_known_insert BEFORE INSERT ON prompts
WHEN NEW.visibility NOT IN ('public', 'team', 'private')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: prompts_visibility_known');
END;
CREATE TRIGGER prompts_visibility_known_update BEFORE UPDATE OF visibility ON prompts
WHEN NEW.visibility NOT IN ('public', 'team', 'private')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: prompts_visibility_known');
END;
CREATE TRIGGER servers_visibility_known_insert BEFORE INSERT ON servers
WHEN NEW.visibility NOT IN ('public', 'team', 'private')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: servers_visibility_known');
END;
CREATE TRIGGER servers_visibility_known_update BEFORE UPDATE OF visibility ON servers
WHEN NEW.visibility NOT IN ('public', 'team', 'private')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: servers_visibility_known');
END;
CREATE TRIGGER gateways_visibility_known_insert BEFORE INSERT ON gateways
WHEN NEW.visibility NOT IN ('public', 'team', 'private')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: gateways_visibility_known');
END;
CREATE TRIGGER gateways_visibility_known_update BEFORE UPDATE OF visibility ON gateways
WHEN NEW.visibility NOT IN ('public', 'team', 'private')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: gateways_visibility_known');
END;
