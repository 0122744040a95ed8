ALTER TABLE prompts DROP COLUMN passthrough;
ALTER TABLE resources DROP COLUMN passthrough;
ALTER TABLE tools DROP COLUMN passthrough;
