-- Call history that survives a restart: each process writes its own tallies per interval
-- (minutes and hours of all calls; hours per tool, virtual server and upstream, with a latency
-- sketch), overwriting its own rows as they grow, and reads the others' rows when it starts.
CREATE TABLE metric_rollups (
    instance TEXT NOT NULL,
    width INTEGER NOT NULL,
    bucket BIGINT NOT NULL,
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    calls BIGINT NOT NULL,
    failures BIGINT NOT NULL,
    duration_ms_sum DOUBLE PRECISION NOT NULL,
    latency TEXT,
    last_call_at TIMESTAMP,
    last_error TEXT,
    last_error_at TIMESTAMP,
    PRIMARY KEY (instance, width, bucket, scope, key)
);
CREATE INDEX metric_rollups_recent ON metric_rollups (width, bucket);
-- Retention purges call records by time.
CREATE INDEX tool_metrics_started_at ON tool_metrics (started_at);
