ALTER TABLE gateways DROP COLUMN degraded_reason;
ALTER TABLE gateways DROP COLUMN skipped;
