//! The per-request metadata of the modern era, and what the gateway offers its clients (the
//! shared vocabulary is in [`crate::protocol`]).

use serde_json::{Map, Value, json};

use super::error::McpError;
use crate::protocol::{Era, LogLevel, MODERN_VERSION, implementation_info, meta};

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
    let mut info = implementation_info();
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
