//! mcpgate: a Model Context Protocol gateway.
//!
//! See `README.md` for use and `../shared/DESIGN.md` for the architecture. The crate is laid out
//! by subsystem: [`config`] (typed settings), [`actors`] (the DbActor and AuthActor, each the
//! sole owner of its resources), [`db`] (schema and query functions, run only inside the
//! DbActor), [`registry`] (the registry's API types and validation), [`http`] (routes, thin
//! handlers and the one error mapping) and [`app`] (wiring).

pub mod actors;
pub mod app;
pub mod auth;
pub mod bootstrap;
pub mod breaker;
pub mod catalog;
pub mod config;
pub mod db;
pub mod egress;
pub mod error;
pub mod federation;
pub mod http;
pub mod mcp;
pub mod prompt_render;
pub mod protocol;
pub mod quota;
pub mod registry;
pub mod secrets;
pub mod service;
pub mod upstream;
