DROP INDEX tool_metrics_started_at;
DROP TABLE metric_rollups;
