-- Members of a federated item's definition that the gateway passes through as the upstream sent
-- them (a JSON object): `title`, `icons`, `_meta` (e.g. an MCP App's `ui` resource reference),
-- and a tool's `execution` / a resource's `annotations` and `size`. Items made in the gateway keep '{}'.
ALTER TABLE tools ADD COLUMN passthrough TEXT NOT NULL DEFAULT '{}';
ALTER TABLE resources ADD COLUMN passthrough TEXT NOT NULL DEFAULT '{}';
ALTER TABLE prompts ADD COLUMN passthrough TEXT NOT NULL DEFAULT '{}';
