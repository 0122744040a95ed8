//! The integration tests, one binary (one link): each module drives the real `mcpgate` server
//! over HTTP on SQLite and PostgreSQL, with real upstreams, clients and identity providers on
//! loopback. Shared fixtures are in `common`.

#[macro_use]
mod common;

mod accounts;
mod affinity;
mod apps;
mod audit;
mod cli;
mod conformance;
mod connect;
mod console;
mod deployment;
mod federation;
mod forwarding;
mod health;
mod hostile;
mod identity;
mod interop;
mod loadtest;
mod logs;
mod mcp;
mod metrics_page;
mod modern;
mod oauth;
mod openapi_import;
mod polish;
mod rate_limits;
mod registry;
mod replicas;
mod resilience;
mod security;
mod shared_quotas;
mod stdio;
mod telemetry;
mod tokens;
mod transfer;
mod visibility;
