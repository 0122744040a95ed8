-- What the last discovery of an upstream left out, and why (a JSON array of
-- {"kind", "name", "reason"}), and why the upstream is degraded (its last refresh broke a
-- bound, so the catalog from the refresh before is still served), or NULL.
ALTER TABLE gateways ADD COLUMN skipped TEXT NOT NULL DEFAULT '[]';
ALTER TABLE gateways ADD COLUMN degraded_reason TEXT;
-- Why the upstream last failed (a call, the health check) and when: shown with its state.
ALTER TABLE gateways ADD COLUMN last_error TEXT;
ALTER TABLE gateways ADD COLUMN last_error_at TIMESTAMP;
