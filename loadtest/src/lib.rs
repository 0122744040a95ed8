//! mcpgate's load-test harness: the measurements behind the claim that the gateway does not
//! collapse the way its Python peer does (issue 7).
//!
//! Everything runs on loopback, started by one call: a fresh PostgreSQL database, a fixture
//! upstream MCP server ([`fixture`]), the real `mcpgate` binary ([`gateway`]), optionally a
//! TCP proxy in front of PostgreSQL that can cut or stall the database ([`proxy`]), virtual
//! users over one shared HTTP client ([`load`]), and a sampler of the gateway's pool,
//! `pg_stat_activity` and memory ([`sampler`]). Each scenario ([`scenario`]) writes a JSON
//! [`report::Report`] and prints its summary.
//!
//! Errors: harness code returns `anyhow::Result` with context; what a request under load ran
//! into is never an error of the harness but a [`client::Failure`] that is counted by cause.

pub mod balancer;
pub mod client;
pub mod fixture;
pub mod gateway;
pub mod load;
pub mod postgres;
pub mod proxy;
pub mod recorder;
pub mod recovery;
pub mod report;
pub mod sampler;
pub mod scenario;
pub mod units;
