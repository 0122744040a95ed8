-- A REST tool's HTTP method is read as a typed enum (src/db/stored.rs): only its spellings are
-- stored. Earlier versions wrote the same upper-case spellings; UPPER() makes sure of it.
-- SQLite cannot add a CHECK constraint to an existing table; triggers refuse the same writes.
UPDATE tools SET request_type = UPPER(request_type) WHERE request_type IS NOT NULL;
CREATE TRIGGER tools_request_type_known_insert BEFORE INSERT ON tools
WHEN NEW.request_type IS NOT NULL AND NEW.request_type NOT IN ('GET', 'POST', 'PUT', 'PATCH', 'DELETE')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: tools_request_type_known');
END;
CREATE TRIGGER tools_request_type_known_update BEFORE UPDATE OF request_type ON tools
WHEN NEW.request_type IS NOT NULL AND NEW.request_type NOT IN ('GET', 'POST', 'PUT', 'PATCH', 'DELETE')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: tools_request_type_known');
END;
