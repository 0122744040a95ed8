-- Foundation: bootstrap secrets, the platform admin, and the registry.
-- JSON values are stored as TEXT so one schema.rs serves PostgreSQL and SQLite.

CREATE TABLE bootstrap_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE users (
    email TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    full_name TEXT,
    is_admin BOOLEAN NOT NULL DEFAULT FALSE,
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE gateways (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    slug TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    transport TEXT NOT NULL,
    description TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    owner_email TEXT,
    team_id TEXT,
    visibility TEXT NOT NULL DEFAULT 'public',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE tools (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT,
    integration_type TEXT NOT NULL,
    url TEXT,
    request_type TEXT,
    headers TEXT NOT NULL DEFAULT '{}',
    input_schema TEXT NOT NULL,
    output_schema TEXT,
    annotations TEXT NOT NULL DEFAULT '{}',
    tags TEXT NOT NULL DEFAULT '[]',
    gateway_id TEXT REFERENCES gateways (id) ON DELETE CASCADE,
    original_name TEXT,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    owner_email TEXT,
    team_id TEXT,
    visibility TEXT NOT NULL DEFAULT 'public',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX tools_gateway_id ON tools (gateway_id);

CREATE TABLE resources (
    id TEXT PRIMARY KEY,
    uri TEXT UNIQUE,
    uri_template TEXT UNIQUE,
    name TEXT NOT NULL,
    description TEXT,
    mime_type TEXT,
    content TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    gateway_id TEXT REFERENCES gateways (id) ON DELETE CASCADE,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    owner_email TEXT,
    team_id TEXT,
    visibility TEXT NOT NULL DEFAULT 'public',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    CHECK ((uri IS NULL) <> (uri_template IS NULL))
);
CREATE INDEX resources_gateway_id ON resources (gateway_id);

CREATE TABLE prompts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT,
    template TEXT NOT NULL,
    arguments TEXT NOT NULL DEFAULT '[]',
    tags TEXT NOT NULL DEFAULT '[]',
    gateway_id TEXT REFERENCES gateways (id) ON DELETE CASCADE,
    original_name TEXT,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    owner_email TEXT,
    team_id TEXT,
    visibility TEXT NOT NULL DEFAULT 'public',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX prompts_gateway_id ON prompts (gateway_id);

CREATE TABLE servers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT,
    icon TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    owner_email TEXT,
    team_id TEXT,
    visibility TEXT NOT NULL DEFAULT 'public',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE server_tools (
    server_id TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    tool_id TEXT NOT NULL REFERENCES tools (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    PRIMARY KEY (server_id, tool_id)
);
CREATE INDEX server_tools_tool_id ON server_tools (tool_id);

CREATE TABLE server_resources (
    server_id TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    resource_id TEXT NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    PRIMARY KEY (server_id, resource_id)
);
CREATE INDEX server_resources_resource_id ON server_resources (resource_id);

CREATE TABLE server_prompts (
    server_id TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    prompt_id TEXT NOT NULL REFERENCES prompts (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    PRIMARY KEY (server_id, prompt_id)
);
CREATE INDEX server_prompts_prompt_id ON server_prompts (prompt_id);
