//! Protocol versions, eras, log levels and the per-request metadata of the modern era.

use serde_json::{Map, Value, json};

use super::error::McpError;

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

/// Which protocol era a request is served in.
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

/// The validated per-request metadata of a modern request.
#[derive(Debug, Clone)]
pub struct ModernMeta {
    /// The client's capabilities for this request.
    pub client_capabilities: Map<String, Value>,
    /// The log level asked for, if any.
    pub log_level: Option<LogLevel>,
}

/// Whether params carry modern `_meta` (a protocol version in `_meta`).
pub fn has_modern_meta(params: &Map<String, Value>) -> bool {
    params
        .get("_meta")
        .and_then(Value::as_object)
        .is_some_and(|meta| meta.contains_key(meta::PROTOCOL_VERSION))
}

/// Validates the `_meta` of a modern request.
pub fn modern_meta(params: &Map<String, Value>) -> Result<ModernMeta, McpError> {
    let meta = params
        .get("_meta")
        .and_then(Value::as_object)
        .ok_or_else(|| McpError::MissingMeta("params._meta is required".into()))?;
    let version = meta
        .get(meta::PROTOCOL_VERSION)
        .and_then(Value::as_str)
        .ok_or_else(|| {
            McpError::MissingMeta(format!(
                "_meta[\"{}\"] must be a string",
                meta::PROTOCOL_VERSION
            ))
        })?;
    if version != MODERN_VERSION {
        return Err(McpError::UnsupportedVersion {
            requested: version.to_owned(),
        });
    }
    let client_capabilities = meta
        .get(meta::CLIENT_CAPABILITIES)
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| {
            McpError::MissingMeta(format!(
                "_meta[\"{}\"] must be an object",
                meta::CLIENT_CAPABILITIES
            ))
        })?;
    let log_level = match meta.get(meta::LOG_LEVEL) {
        None => None,
        Some(Value::String(level)) => Some(
            LogLevel::parse(level)
                .ok_or_else(|| McpError::InvalidParams(format!("unknown log level {level:?}")))?,
        ),
        Some(_) => {
            return Err(McpError::InvalidParams(
                "the log level must be a string".into(),
            ));
        }
    };
    Ok(ModernMeta {
        client_capabilities,
        log_level,
    })
}

/// The gateway's identity.
pub fn server_info(title: Option<&str>) -> Value {
    let mut info = json!({ "name": "mcpgate", "version": env!("CARGO_PKG_VERSION") });
    if let Some(title) = title {
        info["title"] = json!(title);
    }
    info
}

/// The capabilities the gateway offers.
pub fn server_capabilities(era: Era) -> Value {
    match era {
        Era::Modern => json!({
            "tools": { "listChanged": true },
            "resources": { "subscribe": true, "listChanged": true },
            "prompts": { "listChanged": true },
            "completions": {},
            "logging": {},
        }),
        Era::Legacy { .. } => json!({
            "tools": { "listChanged": true },
            "resources": { "subscribe": true, "listChanged": true },
            "prompts": { "listChanged": true },
            "completions": {},
            "logging": {},
        }),
    }
}
