//! mcpgate: a Model Context Protocol gateway.
//!
//! See `README.md` for use, `ARCHITECTURE.md` for the layers and the path of a request, and
//! `../shared/DESIGN.md` for why. From the top: [`app`] (wiring) and [`bootstrap`] (secrets, the
//! first admin); [`http`] (thin adapters: REST, the MCP transports, the console); [`mcp`] (the
//! MCP server: framing, eras, methods, sessions); [`service`] (every operation as a function of
//! a principal, deciding through the one authorization point); [`federation`]; [`actors`] (the
//! DbActor, AuthActor, ScopingActor, CatalogActor, UpstreamActor, MetricsActor, each the sole
//! owner of its resource); [`catalog`]; [`registry`] (API types and validation); [`db`] (schema
//! and sealed units of work, run only inside the DbActor); [`upstream`] (the MCP client and its
//! transports); and the foundations: [`protocol`], [`error`], [`auth`], [`config`], [`egress`],
//! [`secrets`], [`quota`], [`breaker`], [`prompt_render`], [`uri_template`].

pub mod actors;
pub mod app;
pub mod auth;
pub mod bootstrap;
pub mod breaker;
pub mod catalog;
pub mod cluster;
pub mod config;
pub mod db;
pub mod egress;
pub mod error;
pub mod federation;
pub mod http;
pub mod leases;
pub mod logs;
pub mod mcp;
pub mod prompt_render;
pub mod protocol;
pub mod quota;
pub mod ratelimit;
pub mod registry;
pub mod replicas;
pub mod secrets;
pub mod service;
pub mod telemetry;
pub mod upstream;
pub mod uri_template;
