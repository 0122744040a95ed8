//! The Model Context Protocol's shared vocabulary, below both sides of the gateway: the MCP
//! server it is to clients (`mcp`, `http::mcp`) and the MCP client it is to upstreams
//! (`upstream`). Protocol revisions and their eras, `_meta` keys, log levels, the identity the
//! gateway gives, and the header encoding of the 2026-07-28 revision.

mod reply;

use serde_json::{Value, json};

pub use self::reply::{Encoded, MAX_NESTING, RawObject, Reply};

/// The modern (stateless) revision.
pub const MODERN_VERSION: &str = "2026-07-28";

/// Legacy (session) revisions served, newest first.
pub const LEGACY_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// `_meta` keys of the modern era.
pub mod meta {
    /// The request's protocol version.
    pub const PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
    /// The client's capabilities for this request.
    pub const CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
    /// The client's name and version.
    pub const CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
    /// The minimum log level for this request.
    pub const LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
    /// The server's name and version, on results.
    pub const SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
    /// The subscription a notification belongs to.
    pub const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
}

/// Every version served, modern first.
pub fn supported_versions() -> Vec<&'static str> {
    let mut versions = vec![MODERN_VERSION];
    versions.extend(LEGACY_VERSIONS);
    versions
}

/// Which protocol era a request is served in, or an upstream connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// 2026-07-28: stateless, per-request `_meta`.
    Modern,
    /// 2025-11-25 and older: `initialize` and sessions (or stateless `/rpc`).
    Legacy {
        /// The negotiated revision.
        version: &'static str,
    },
}

impl Era {
    /// The protocol version string.
    pub fn version(self) -> &'static str {
        match self {
            Era::Modern => MODERN_VERSION,
            Era::Legacy { version } => version,
        }
    }
}

/// The legacy version to use for a client asking for `requested`: the same when served, else
/// the newest legacy version (the client then decides whether it can continue).
pub fn negotiate_legacy(requested: Option<&str>) -> &'static str {
    requested
        .and_then(|requested| LEGACY_VERSIONS.iter().find(|v| **v == requested).copied())
        .unwrap_or(LEGACY_VERSIONS[0])
}

/// The legacy version string if `value` is one.
pub fn legacy_version(value: &str) -> Option<&'static str> {
    LEGACY_VERSIONS.iter().find(|v| **v == value).copied()
}

/// MCP log levels, in increasing severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// debug
    Debug,
    /// info
    Info,
    /// notice
    Notice,
    /// warning
    Warning,
    /// error
    Error,
    /// critical
    Critical,
    /// alert
    Alert,
    /// emergency
    Emergency,
}

impl LogLevel {
    /// Parses an MCP level name.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "debug" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "notice" => LogLevel::Notice,
            "warning" => LogLevel::Warning,
            "error" => LogLevel::Error,
            "critical" => LogLevel::Critical,
            "alert" => LogLevel::Alert,
            "emergency" => LogLevel::Emergency,
            _ => return None,
        })
    }

    /// The MCP level name.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Notice => "notice",
            LogLevel::Warning => "warning",
            LogLevel::Error => "error",
            LogLevel::Critical => "critical",
            LogLevel::Alert => "alert",
            LogLevel::Emergency => "emergency",
        }
    }
}

/// The gateway's name and version (`serverInfo` to clients, `clientInfo` to upstreams).
pub fn implementation_info() -> Value {
    json!({ "name": "mcpgate", "version": env!("CARGO_PKG_VERSION") })
}

/// The prefix and suffix of a header value sent in Base64 (2026-07-28 mirrored headers).
const BASE64_OPEN: &str = "=?base64?";
const BASE64_CLOSE: &str = "?=";

/// A mirrored header value (`Mcp-Name`, `Mcp-Param-*`): plain when it is safe as it is, else
/// the `=?base64?…?=` form.
pub fn encode_header(value: &str) -> String {
    use base64::Engine;
    let safe = !value.starts_with(BASE64_OPEN)
        && value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && value.trim() == value;
    if safe {
        value.to_owned()
    } else {
        format!(
            "{BASE64_OPEN}{}{BASE64_CLOSE}",
            base64::engine::general_purpose::STANDARD.encode(value)
        )
    }
}

/// Decodes a mirrored header value; `None` when its Base64 form is malformed.
pub fn decode_header(value: &str) -> Option<String> {
    use base64::Engine;
    match value
        .strip_prefix(BASE64_OPEN)
        .and_then(|rest| rest.strip_suffix(BASE64_CLOSE))
    {
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok()),
        None => Some(value.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_round_trip() {
        for value in [
            "get_weather",
            "caf\u{e9}",
            " padded ",
            "=?base64?looks-encoded?=",
        ] {
            let encoded = encode_header(value);
            assert!(encoded.is_ascii());
            assert_eq!(decode_header(&encoded).as_deref(), Some(value));
        }
        assert_eq!(encode_header("plain"), "plain");
        assert_eq!(decode_header("=?base64?not base64!?="), None);
    }
}
