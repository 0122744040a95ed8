//! The MCP protocol layer, transport-independent: JSON-RPC framing, both protocol eras, the
//! method handlers, legacy sessions. The HTTP transports live in `crate::http::mcp`.
//!
//! Era selection (see `README.md` beside this file):
//! - a request whose `params._meta` carries `io.modelcontextprotocol/protocolVersion` is served
//!   statelessly as 2026-07-28;
//! - `initialize` starts a legacy session (2025-11-25 or the older version the client asks
//!   for), named by `Mcp-Session-Id`;
//! - anything else needs that session.

pub mod context;
pub mod error;
pub mod jsonrpc;
pub mod methods;
pub mod parked;
pub mod protocol;
pub mod session;
