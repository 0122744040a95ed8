DROP TABLE upstream_tokens;
