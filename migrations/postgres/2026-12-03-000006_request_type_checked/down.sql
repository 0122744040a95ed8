ALTER TABLE tools DROP CONSTRAINT tools_request_type_known;
