-- A REST tool's HTTP method is read as a typed enum (src/db/stored.rs): only its spellings are
-- stored. Earlier versions wrote the same upper-case spellings; UPPER() makes sure of it.
UPDATE tools SET request_type = UPPER(request_type) WHERE request_type IS NOT NULL;
ALTER TABLE tools ADD CONSTRAINT tools_request_type_known
    CHECK (request_type IS NULL OR request_type IN ('GET', 'POST', 'PUT', 'PATCH', 'DELETE'));
