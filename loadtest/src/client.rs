//! The requests virtual users send (an MCP `tools/call` through the gateway or straight to the
//! upstream, a REST list, a REST write), how each outcome is classified, and the admin REST
//! client used to provision a run.

use std::fmt;
use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use serde::Serialize;
use serde_json::{Value, json};

use crate::fixture::FIXTURE_PROTOCOL_VERSION;

/// The protocol revision clients of the gateway speak (stateless).
pub const MODERN_PROTOCOL_VERSION: &str = "2026-07-28";

/// How the gateway words an upstream whose breaker is open.
const CIRCUIT_OPEN: &str = "circuit open";

/// What a request was, for the per-kind histograms and failure counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `tools/call` through the gateway.
    McpCall,
    /// `GET /tools?limit=50` or `GET /servers`.
    RestList,
    /// `POST /resources`.
    RestWrite,
    /// `tools/call` straight to the fixture upstream, in its own session.
    DirectCall,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 4] = [
        Kind::McpCall,
        Kind::RestList,
        Kind::RestWrite,
        Kind::DirectCall,
    ];

    /// Its position in [`Kind::ALL`].
    pub fn index(self) -> usize {
        match self {
            Kind::McpCall => 0,
            Kind::RestList => 1,
            Kind::RestWrite => 2,
            Kind::DirectCall => 3,
        }
    }

    /// Its name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::McpCall => "mcp_call",
            Kind::RestList => "rest_list",
            Kind::RestWrite => "rest_write",
            Kind::DirectCall => "direct_call",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Why a request did not succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Failure {
    /// No HTTP answer: connection refused or reset, or a broken body.
    Transport,
    /// No answer within the client's timeout.
    Timeout,
    /// 503 with `Retry-After`: a breaker is open or a dependency is down.
    Breaker503,
    /// Any other non-success HTTP status (503 without `Retry-After` included).
    Http(u16),
    /// A JSON-RPC error with this code.
    JsonRpc(i64),
    /// The error the gateway gives while an upstream's breaker is open (a JSON-RPC error, or a
    /// tool error naming the open circuit).
    UpstreamCircuitOpen,
    /// A tool result with `isError: true` (for any other reason).
    ToolError,
    /// A success status whose body is not what the request promises.
    BadResponse,
}

impl Failure {
    /// The cause's name in reports (`transport`, `http_500`, `jsonrpc_-32603`, …).
    pub fn cause(&self) -> String {
        match self {
            Failure::Transport => "transport".into(),
            Failure::Timeout => "timeout".into(),
            Failure::Breaker503 => "breaker_503".into(),
            Failure::Http(status) => format!("http_{status}"),
            Failure::JsonRpc(code) => format!("jsonrpc_{code}"),
            Failure::UpstreamCircuitOpen => "upstream_circuit_open".into(),
            Failure::ToolError => "tool_is_error".into(),
            Failure::BadResponse => "bad_response".into(),
        }
    }

    fn of_send_error(error: &reqwest::Error) -> Failure {
        if error.is_timeout() {
            Failure::Timeout
        } else {
            Failure::Transport
        }
    }

    fn of_status(status: StatusCode, headers: &HeaderMap) -> Failure {
        if status == StatusCode::SERVICE_UNAVAILABLE && headers.contains_key(RETRY_AFTER) {
            Failure::Breaker503
        } else {
            Failure::Http(status.as_u16())
        }
    }
}

/// The one HTTP client of a run: a large idle pool, no proxy, the request timeout.
pub fn http_client(request_timeout: Duration) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(usize::MAX)
        .pool_idle_timeout(Duration::from_secs(90))
        .timeout(request_timeout)
        .build()
        .context("cannot build the HTTP client")
}

/// Where a `tools/call` goes.
#[derive(Clone, Debug)]
pub struct McpTarget {
    /// The endpoint URL.
    pub url: String,
    /// The tool's name there.
    pub tool: String,
    /// The bearer token (the gateway), if any.
    pub token: Option<String>,
    /// The session (a session-era server reached directly); none for the stateless gateway.
    pub session: Option<String>,
}

impl McpTarget {
    /// A `tools/call` through the gateway's stateless (2026-07-28) endpoint.
    pub fn gateway(url: String, tool: String, token: String) -> Self {
        McpTarget {
            url,
            tool,
            token: Some(token),
            session: None,
        }
    }

    /// A `tools/call` through the gateway by a session-era client: opens a session first.
    pub async fn gateway_session(
        http: &reqwest::Client,
        url: String,
        tool: String,
        token: String,
    ) -> anyhow::Result<Self> {
        let session = open_session(http, &url, Some(&token)).await?;
        Ok(McpTarget {
            url,
            tool,
            token: Some(token),
            session: Some(session),
        })
    }

    /// A `tools/call` straight to a session-era upstream: opens a session first.
    pub async fn direct(http: &reqwest::Client, url: String, tool: String) -> anyhow::Result<Self> {
        let session = open_session(http, &url, None).await?;
        Ok(McpTarget {
            url,
            tool,
            token: None,
            session: Some(session),
        })
    }

    /// The request body: stateless requests carry version and capabilities in `_meta`.
    fn body(&self, id: u64, client: u64) -> Value {
        let mut params = json!({ "name": self.tool, "arguments": { "client": client } });
        if self.session.is_none() {
            params["_meta"] = json!({
                "io.modelcontextprotocol/protocolVersion": MODERN_PROTOCOL_VERSION,
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": { "name": "mcpgate-loadtest", "version": env!("CARGO_PKG_VERSION") },
            });
        }
        json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params })
    }

    /// Calls the tool once; `client` identifies the virtual user (an argument of the tool).
    pub async fn call(&self, http: &reqwest::Client, id: u64, client: u64) -> Result<(), Failure> {
        let mut request = http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .json(&self.body(id, client));
        request = match &self.session {
            Some(session) => request
                .header("mcp-session-id", session)
                .header("mcp-protocol-version", FIXTURE_PROTOCOL_VERSION),
            None => request
                .header("mcp-protocol-version", MODERN_PROTOCOL_VERSION)
                .header("mcp-method", "tools/call")
                .header("mcp-name", &self.tool),
        };
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let Answer {
            status,
            headers,
            bytes,
        } = Answer::of(request).await?;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            return Err(Failure::of_status(status, &headers));
        }
        let Some(message) = response_message(&headers, &bytes) else {
            return Err(if status.is_success() {
                Failure::BadResponse
            } else {
                Failure::of_status(status, &headers)
            });
        };
        classify_tool_reply(status, &headers, &message)
    }
}

/// A whole HTTP answer under load.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    bytes: hyper::body::Bytes,
}

impl Answer {
    /// Sends `request` and reads the whole answer; no answer is a transport failure or a
    /// timeout.
    async fn of(request: reqwest::RequestBuilder) -> Result<Answer, Failure> {
        let response = request
            .send()
            .await
            .map_err(|error| Failure::of_send_error(&error))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| Failure::of_send_error(&error))?;
        Ok(Answer {
            status,
            headers,
            bytes,
        })
    }

    /// The answer when its status is `expected`, else the failure its status means.
    fn expect(self, expected: impl Fn(StatusCode) -> bool) -> Result<Answer, Failure> {
        if expected(self.status) {
            Ok(self)
        } else {
            Err(Failure::of_status(self.status, &self.headers))
        }
    }
}

/// The JSON-RPC message of a reply: the JSON body, or the last `data:` event of an SSE stream.
fn response_message(headers: &HeaderMap, bytes: &[u8]) -> Option<Value> {
    let is_stream = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/event-stream"));
    if !is_stream {
        return serde_json::from_slice(bytes).ok();
    }
    let text = String::from_utf8_lossy(bytes);
    // Events are separated by a blank line; an event's data lines are joined by newlines.
    text.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(|data| data.strip_prefix(' ').unwrap_or(data))
                .collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .filter_map(|data| serde_json::from_str::<Value>(&data).ok())
        .filter(|message| message.get("result").is_some() || message.get("error").is_some())
        .last()
}

/// Success, or why not, for a `tools/call` answer.
fn classify_tool_reply(
    status: StatusCode,
    headers: &HeaderMap,
    message: &Value,
) -> Result<(), Failure> {
    if let Some(error) = message.get("error") {
        let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
        let text = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if text.contains(CIRCUIT_OPEN) {
            return Err(Failure::UpstreamCircuitOpen);
        }
        return Err(Failure::JsonRpc(code));
    }
    if !status.is_success() {
        return Err(Failure::of_status(status, headers));
    }
    match message.get("result") {
        Some(result) if result.get("isError") == Some(&Value::Bool(true)) => {
            // The gateway reports an unavailable upstream as a tool error quoting the cause.
            if result.to_string().contains(CIRCUIT_OPEN) {
                Err(Failure::UpstreamCircuitOpen)
            } else {
                Err(Failure::ToolError)
            }
        }
        Some(Value::Object(_)) => Ok(()),
        _ => Err(Failure::BadResponse),
    }
}

/// Opens a session with a session-era MCP server: `initialize`, then `initialized`.
pub async fn open_session(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
) -> anyhow::Result<String> {
    let initialize = json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {
            "protocolVersion": FIXTURE_PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": { "name": "mcpgate-loadtest", "version": env!("CARGO_PKG_VERSION") },
        },
    });
    let mut request = http
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .json(&initialize);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("initialize at {url}"))?;
    if !response.status().is_success() {
        bail!("initialize at {url} answered HTTP {}", response.status());
    }
    let session = response
        .headers()
        .get("mcp-session-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .with_context(|| format!("initialize at {url} opened no session"))?;
    let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    let mut request = http
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", FIXTURE_PROTOCOL_VERSION)
        .json(&initialized);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request
        .send()
        .await
        .with_context(|| format!("notifications/initialized at {url}"))?;
    Ok(session)
}

/// The gateway's REST API with the admin token.
#[derive(Clone, Debug)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// A REST answer: status and JSON body (`Null` when empty or not JSON).
#[derive(Clone, Debug)]
pub struct ApiReply {
    /// The status.
    pub status: StatusCode,
    /// The body.
    pub body: Value,
}

impl Api {
    /// The API at `base` (`http://127.0.0.1:PORT`) with a bearer `token`.
    pub fn new(http: reqwest::Client, base: String, token: String) -> Self {
        Api { http, base, token }
    }

    /// The gateway's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The bearer token.
    pub fn token(&self) -> &str {
        &self.token
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// `GET path`, for provisioning and checks (errors are the harness's).
    pub async fn get(&self, path: &str) -> anyhow::Result<ApiReply> {
        read_reply(self.request(reqwest::Method::GET, path)).await
    }

    /// `POST path` with a JSON body, for provisioning (errors are the harness's).
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<ApiReply> {
        read_reply(self.request(reqwest::Method::POST, path).json(body)).await
    }

    /// `POST path`, insisting on 201; returns the created record's `id`.
    pub async fn create(&self, path: &str, body: &Value) -> anyhow::Result<String> {
        let reply = self.post(path, body).await?;
        if reply.status != StatusCode::CREATED {
            bail!("POST {path} answered {}: {}", reply.status, reply.body);
        }
        reply.body["id"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("POST {path} returned no id: {}", reply.body))
    }

    /// A list request under load.
    pub async fn list(&self, path: &str) -> Result<(), Failure> {
        let answer = Answer::of(self.request(reqwest::Method::GET, path))
            .await?
            .expect(|status| status.is_success())?;
        match serde_json::from_slice::<Value>(&answer.bytes) {
            Ok(Value::Object(_) | Value::Array(_)) => Ok(()),
            _ => Err(Failure::BadResponse),
        }
    }

    /// A write under load: creates a small resource at `uri`; returns its id once acknowledged
    /// (201).
    pub async fn write_resource(&self, uri: &str) -> Result<String, Failure> {
        let body = json!({ "uri": uri, "name": uri, "content": "written by mcpgate-loadtest" });
        let answer = Answer::of(
            self.request(reqwest::Method::POST, "/resources")
                .json(&body),
        )
        .await?
        .expect(|status| status == StatusCode::CREATED)?;
        serde_json::from_slice::<Value>(&answer.bytes)
            .ok()
            .and_then(|body| body["id"].as_str().map(str::to_owned))
            .ok_or(Failure::BadResponse)
    }
}

impl Api {
    /// Deletes a resource written under load (204).
    pub async fn delete_resource(&self, id: &str) -> Result<(), Failure> {
        Answer::of(self.request(reqwest::Method::DELETE, &format!("/resources/{id}")))
            .await?
            .expect(|status| status == StatusCode::NO_CONTENT)?;
        Ok(())
    }
}

async fn read_reply(request: reqwest::RequestBuilder) -> anyhow::Result<ApiReply> {
    let response = request.send().await.context("the gateway did not answer")?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .context("the gateway's answer broke off")?;
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok(ApiReply { status, body })
}
