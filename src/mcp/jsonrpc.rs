//! JSON-RPC 2.0 framing: reading one incoming message, writing results and errors.

use serde_json::{Map, Value, json};

use super::error::McpError;
use crate::protocol::{Era, Reply};

/// One message a client sent.
#[derive(Debug, Clone)]
pub enum Incoming {
    /// A request, which gets a response.
    Request {
        /// Its id (a string or an integer).
        id: Value,
        /// The method.
        method: String,
        /// Its params (an object; absent reads as empty).
        params: Map<String, Value>,
    },
    /// A notification, which gets none.
    Notification {
        /// The method.
        method: String,
        /// Its params.
        params: Map<String, Value>,
    },
    /// A response to a request the gateway sent the client (sampling, elicitation, roots
    /// relayed from an upstream).
    Response(Value),
}

impl Incoming {
    /// The method, for requests and notifications.
    pub fn method(&self) -> Option<&str> {
        match self {
            Incoming::Request { method, .. } | Incoming::Notification { method, .. } => {
                Some(method)
            }
            Incoming::Response(_) => None,
        }
    }
}

/// Parses one JSON-RPC message. Batches are refused (removed from MCP in 2025-06-18).
pub fn parse(bytes: &[u8]) -> Result<Incoming, McpError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|error| McpError::Parse(format!("the body is not valid JSON ({error})")))?;
    let Value::Object(mut object) = value else {
        return Err(McpError::InvalidRequest(if value.is_array() {
            "JSON-RPC batches are not supported; send one message per request".into()
        } else {
            "a JSON-RPC message must be a JSON object".into()
        }));
    };
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(McpError::InvalidRequest(
            "\"jsonrpc\" must be \"2.0\"".into(),
        ));
    }
    if object.contains_key("result") || object.contains_key("error") {
        return Ok(Incoming::Response(Value::Object(object)));
    }
    let method = match object.remove("method") {
        Some(Value::String(method)) if !method.is_empty() => method,
        Some(_) => {
            return Err(McpError::InvalidRequest(
                "\"method\" must be a non-empty string".into(),
            ));
        }
        None => return Err(McpError::InvalidRequest("\"method\" is missing".into())),
    };
    let params = match object.remove("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(params)) => params,
        Some(_) => {
            return Err(McpError::InvalidRequest(
                "\"params\" must be an object".into(),
            ));
        }
    };
    match object.remove("id") {
        None => Ok(Incoming::Notification { method, params }),
        Some(id @ (Value::String(_) | Value::Number(_))) => {
            if id.as_f64().is_some_and(|n| n.fract() != 0.0) {
                return Err(McpError::InvalidRequest(
                    "\"id\" must be a string or an integer".into(),
                ));
            }
            Ok(Incoming::Request { id, method, params })
        }
        Some(_) => Err(McpError::InvalidRequest(
            "\"id\" must be a string or an integer (not null)".into(),
        )),
    }
}

/// A result response.
pub fn result(id: &Value, result: Map<String, Value>) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

/// A result response, encoded (a relayed result is written as the upstream wrote it).
pub fn encoded_result(id: &Value, result: &Reply) -> String {
    #[derive(serde::Serialize)]
    struct Response<'a> {
        jsonrpc: &'static str,
        id: &'a Value,
        result: &'a Reply,
    }
    let response = Response {
        jsonrpc: "2.0",
        id,
        result,
    };
    // Serialising maps with string keys and JSON values cannot fail.
    serde_json::to_string(&response).unwrap_or_default()
}

/// An error response; `id` is absent when the request's id could not be read.
pub fn error(id: Option<&Value>, error: &McpError, era: Era) -> Value {
    let mut response = json!({ "jsonrpc": "2.0", "error": error.to_error_object(era) });
    if let Some(id) = id {
        response["id"] = id.clone();
    }
    response
}

/// A notification.
pub fn notification(method: &str, params: Value) -> Value {
    json!({ "jsonrpc": "2.0", "method": method, "params": params })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert!(matches!(parse(b"{"), Err(McpError::Parse(_))));
        assert!(matches!(parse(b"[]"), Err(McpError::InvalidRequest(_))));
        assert!(matches!(
            parse(br#"{"jsonrpc":"1.0","id":1,"method":"x"}"#),
            Err(McpError::InvalidRequest(_))
        ));
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","id":null,"method":"x"}"#),
            Err(McpError::InvalidRequest(_))
        ));
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}"#),
            Err(McpError::InvalidRequest(_))
        ));
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","method":"n"}"#),
            Ok(Incoming::Notification { .. })
        ));
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","id":"a","method":"m"}"#),
            Ok(Incoming::Request { .. })
        ));
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#),
            Ok(Incoming::Response(_))
        ));
    }
}
