//! An MCP test client speaking both eras over HTTP, and validation of what the gateway sends
//! against the MCP JSON schemas (copied from the specification into tests/data/mcp-schema).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Reply, TestServer, reply};

/// The modern revision.
pub const MODERN: &str = "2026-07-28";
/// The newest legacy revision.
pub const LEGACY: &str = "2025-11-25";

/// A client of one MCP endpoint path with one token.
pub struct McpClient<'a> {
    pub server: &'a TestServer,
    pub path: String,
    pub token: String,
    next_id: Mutex<i64>,
}

impl<'a> McpClient<'a> {
    /// A client of `path` (`/mcp`, `/servers/{id}/mcp`, `/rpc`) with the admin token.
    pub fn new(server: &'a TestServer, path: &str) -> Self {
        McpClient {
            server,
            path: path.to_owned(),
            token: server.admin_token.clone(),
            next_id: Mutex::new(1),
        }
    }

    fn id(&self) -> i64 {
        let mut next = self.next_id.lock().unwrap();
        *next += 1;
        *next
    }

    /// POSTs a raw body with headers.
    pub async fn post(&self, body: Value, headers: &[(&str, &str)]) -> Reply {
        let mut request = self
            .server
            .client
            .post(format!("{}{}", self.server.base, self.path))
            .bearer_auth(&self.token)
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        reply(request.send().await.expect("answered")).await
    }

    /// A modern request body: `_meta` with version and capabilities, plus the method's params.
    pub fn modern_body(&self, method: &str, params: Value) -> Value {
        let mut params = match params {
            Value::Object(params) => params,
            _ => serde_json::Map::new(),
        };
        let meta = params.entry("_meta").or_insert_with(|| json!({}));
        meta["io.modelcontextprotocol/protocolVersion"] = json!(MODERN);
        meta["io.modelcontextprotocol/clientCapabilities"] = json!({});
        meta["io.modelcontextprotocol/clientInfo"] =
            json!({"name": "mcpgate-tests", "version": "1"});
        json!({ "jsonrpc": "2.0", "id": self.id(), "method": method, "params": params })
    }

    /// The headers 2026-07-28 requires for a body.
    pub fn modern_headers(body: &Value) -> Vec<(&'static str, String)> {
        let method = body["method"].as_str().unwrap_or_default().to_owned();
        let mut headers = vec![
            ("mcp-protocol-version", MODERN.to_owned()),
            ("mcp-method", method.clone()),
        ];
        let name = match method.as_str() {
            "tools/call" | "prompts/get" => body["params"]["name"].as_str(),
            "resources/read" => body["params"]["uri"].as_str(),
            _ => None,
        };
        if let Some(name) = name {
            // Non-ASCII values travel in the spec's Base64 sentinel form.
            let value = if name.is_ascii() && !name.starts_with("=?base64?") {
                name.to_owned()
            } else {
                use base64::Engine;
                let encoded = base64::engine::general_purpose::STANDARD.encode(name);
                format!("=?base64?{encoded}?=")
            };
            headers.push(("mcp-name", value));
        }
        headers
    }

    /// A modern `tools/call` body of a client that declares elicitation, with `extra` params
    /// (`inputResponses`, `requestState`).
    pub fn eliciting_call(&self, tool: &str, arguments: Value, extra: Value) -> Value {
        let mut params = serde_json::json!({"name": tool, "arguments": arguments});
        for (key, value) in extra.as_object().cloned().unwrap_or_default() {
            params[key] = value;
        }
        let mut body = self.modern_body("tools/call", params);
        body["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] =
            serde_json::json!({"elicitation": {}});
        body
    }

    /// Sends a well-formed modern request.
    pub async fn modern(&self, method: &str, params: Value) -> Reply {
        self.send_modern(self.modern_body(method, params)).await
    }

    /// Sends a modern body with the headers it requires.
    pub async fn send_modern(&self, body: Value) -> Reply {
        let headers = Self::modern_headers(&body);
        let borrowed: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.post(body, &borrowed).await
    }

    /// Sends a well-formed modern request and returns the raw response (to read a stream).
    pub async fn modern_stream(&self, body: &Value) -> reqwest::Response {
        let mut request = self
            .server
            .client
            .post(format!("{}{}", self.server.base, self.path))
            .bearer_auth(&self.token)
            .header("accept", "application/json, text/event-stream")
            .json(body);
        for (name, value) in Self::modern_headers(body) {
            request = request.header(name, value);
        }
        request.send().await.expect("answered")
    }

    /// A legacy `initialize`; returns the session id and the reply.
    pub async fn initialize(&self, version: &str) -> (String, Reply) {
        let body = json!({
            "jsonrpc": "2.0", "id": self.id(), "method": "initialize",
            "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "mcpgate-tests", "version": "1"}}
        });
        let reply = self.post(body, &[]).await;
        let session = reply
            .headers
            .get("mcp-session-id")
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (session, reply)
    }

    /// A legacy request in a session.
    pub async fn legacy(&self, session: &str, method: &str, params: Value) -> Reply {
        let body = json!({ "jsonrpc": "2.0", "id": self.id(), "method": method, "params": params });
        self.post(
            body,
            &[
                ("mcp-session-id", session),
                ("mcp-protocol-version", LEGACY),
            ],
        )
        .await
    }

    /// Opens a legacy session's GET stream.
    pub async fn session_stream(&self, session: &str) -> reqwest::Response {
        self.verb(
            Method::GET,
            &[("mcp-session-id", session), ("accept", "text/event-stream")],
        )
        .await
    }

    /// Sends any method with any HTTP verb (for GET/DELETE on the endpoint).
    pub async fn verb(&self, method: Method, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self
            .server
            .client
            .request(method, format!("{}{}", self.server.base, self.path))
            .bearer_auth(&self.token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("answered")
    }
}

/// Asserts a JSON-RPC error with this code and returns its message.
pub fn expect_error(reply: &Reply, status: StatusCode, code: i64) -> String {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.body["jsonrpc"], "2.0", "{}", reply.body);
    assert_eq!(reply.body["error"]["code"], code, "{}", reply.body);
    let message = reply.body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!message.is_empty());
    message
}

/// Reads SSE events (the `data` of each) from a response until `count` arrived.
pub async fn read_events(response: &mut reqwest::Response, count: usize) -> Vec<(String, String)> {
    let mut buffer = String::new();
    let mut events = Vec::new();
    while events.len() < count {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(20), response.chunk())
            .await
            .expect("an SSE event within 20 s")
            .expect("stream readable")
            .expect("stream still open");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut name = "message".to_owned();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event: ") {
                    name = value.to_owned();
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data.push_str(value);
                }
            }
            if !data.is_empty() {
                events.push((name, data));
            }
        }
    }
    events
}

/// Validates `instance` against `$defs/<definition>` of a revision's schema.
pub fn assert_schema(revision: &str, definition: &str, instance: &Value) {
    static SCHEMAS: OnceLock<Mutex<HashMap<String, Value>>> = OnceLock::new();
    let schemas = SCHEMAS.get_or_init(Default::default);
    let schema = {
        let mut schemas = schemas.lock().unwrap();
        schemas
            .entry(revision.to_owned())
            .or_insert_with(|| {
                let path = format!(
                    "{}/tests/data/mcp-schema/{revision}.json",
                    env!("CARGO_MANIFEST_DIR")
                );
                serde_json::from_str(&std::fs::read_to_string(path).expect("schema file"))
                    .expect("schema JSON")
            })
            .clone()
    };
    let wrapper = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": format!("#/$defs/{definition}"),
        "$defs": schema["$defs"],
    });
    let validator = jsonschema::validator_for(&wrapper).expect("schema compiles");
    let problems: Vec<String> = validator
        .iter_errors(instance)
        .map(|error| format!("{} at {}", error, error.instance_path))
        .collect();
    assert!(
        problems.is_empty(),
        "{definition} ({revision}) rejects {instance}: {problems:?}"
    );
}
