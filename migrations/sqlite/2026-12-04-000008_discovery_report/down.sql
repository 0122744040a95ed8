ALTER TABLE gateways DROP COLUMN last_error_at;
ALTER TABLE gateways DROP COLUMN last_error;
ALTER TABLE gateways DROP COLUMN degraded_reason;
ALTER TABLE gateways DROP COLUMN skipped;
