//! The fixture upstream: a legacy (2025-11-25) Streamable HTTP MCP server with one tool,
//! `work`, that sleeps a configurable delay and answers with a text result.
//!
//! It speaks just enough of the protocol for the gateway's handshake (see
//! `src/upstream/connection.rs`): `server/discover` is refused with a JSON-RPC error (so the
//! gateway falls back to `initialize`), `initialize` opens a session (`Mcp-Session-Id`),
//! notifications get 202, the list methods answer (empty except `tools/list`), `ping` answers,
//! GET (the notification stream) is 405 and DELETE ends a session. A request naming a session
//! this instance does not know gets 404, so after a restart the gateway starts a new session.
//!
//! It can be stopped (every connection is closed, new ones are refused) and restarted on the
//! same port, which is the "upstream killed" fault, and it counts the calls it served.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::units::DelayRange;

/// The protocol revision the fixture speaks.
pub const FIXTURE_PROTOCOL_VERSION: &str = "2025-11-25";
/// The one tool it offers.
pub const FIXTURE_TOOL: &str = "work";
/// The path its endpoint is usually reached at (any path works).
pub const FIXTURE_PATH: &str = "/mcp";
/// How long a restart keeps trying to bind the old port.
const REBIND_DEADLINE: Duration = Duration::from_secs(10);

/// What the fixture has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FixtureCounts {
    /// `tools/call` requests answered with a result.
    pub calls_served: u64,
    /// Sessions opened with `initialize`.
    pub sessions_opened: u64,
    /// Times it was started (1 + restarts).
    pub starts: u64,
}

/// State shared by every connection, kept across a restart (except the sessions).
struct FixtureState {
    delay: DelayRange,
    /// Bytes of text added to every tool result (a large result to pass on).
    result_padding: String,
    sessions: Mutex<HashSet<String>>,
    calls_served: AtomicU64,
    sessions_opened: AtomicU64,
    starts: AtomicU64,
}

impl FixtureState {
    fn sessions(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running (or stopped) fixture upstream on 127.0.0.1.
pub struct FixtureUpstream {
    address: SocketAddr,
    state: Arc<FixtureState>,
    server: Option<JoinHandle<()>>,
}

impl FixtureUpstream {
    /// Starts on `port` (0 picks a free one) with tool calls taking `delay`.
    pub async fn start(port: u16, delay: DelayRange) -> anyhow::Result<Self> {
        Self::start_sized(port, delay, 0).await
    }

    /// [`FixtureUpstream::start`] with tool results carrying `result_bytes` more bytes of text.
    pub async fn start_sized(
        port: u16,
        delay: DelayRange,
        result_bytes: usize,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("cannot bind the fixture upstream to 127.0.0.1:{port}"))?;
        let address = listener.local_addr()?;
        let state = Arc::new(FixtureState {
            delay,
            result_padding: "x".repeat(result_bytes),
            sessions: Mutex::default(),
            calls_served: AtomicU64::new(0),
            sessions_opened: AtomicU64::new(0),
            starts: AtomicU64::new(1),
        });
        let server = tokio::spawn(serve(listener, state.clone()));
        Ok(FixtureUpstream {
            address,
            state,
            server: Some(server),
        })
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The URL of its MCP endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{}{FIXTURE_PATH}", self.address)
    }

    /// Its tool calls' delay.
    pub fn delay(&self) -> DelayRange {
        self.state.delay
    }

    /// Whether it is serving.
    pub fn is_running(&self) -> bool {
        self.server.is_some()
    }

    /// What it has done so far.
    pub fn counts(&self) -> FixtureCounts {
        FixtureCounts {
            calls_served: self.state.calls_served.load(Ordering::Relaxed),
            sessions_opened: self.state.sessions_opened.load(Ordering::Relaxed),
            starts: self.state.starts.load(Ordering::Relaxed),
        }
    }

    /// Stops like a killed process: the listener and every connection close at once, calls in
    /// progress get no answer, and the sessions are forgotten.
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            // Dropping the task drops the listener and the set of connections with it.
            let _ = server.await;
        }
        self.state.sessions().clear();
    }

    /// Starts again on the same port (retrying while the old socket lingers).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await;
        let started = tokio::time::Instant::now();
        let listener = loop {
            match TcpListener::bind(self.address).await {
                Ok(listener) => break listener,
                Err(error) if started.elapsed() < REBIND_DEADLINE => {
                    tracing::debug!(%error, "the fixture's port is not free yet");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => {
                    return Err(error).with_context(|| {
                        format!("cannot bind the fixture upstream again to {}", self.address)
                    });
                }
            }
        };
        self.state.starts.fetch_add(1, Ordering::Relaxed);
        self.server = Some(tokio::spawn(serve(listener, self.state.clone())));
        Ok(())
    }
}

impl Drop for FixtureUpstream {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// Accepts connections until aborted; aborting drops every connection task with the set.
async fn serve(listener: TcpListener, state: Arc<FixtureState>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        // Out of file descriptors, most likely: back off instead of spinning.
                        tracing::warn!(%error, "the fixture upstream could not accept");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                connections.spawn(async move {
                    let service = service_fn(move |request| answer(state.clone(), request));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

type Reply = Response<Full<Bytes>>;

fn json_reply(status: StatusCode, body: &Value) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn empty_reply(status: StatusCode) -> Reply {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

fn rpc_error(id: &Value, code: i64, message: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
}

fn rpc_result(id: &Value, result: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

async fn answer(state: Arc<FixtureState>, request: Request<Incoming>) -> Result<Reply, Infallible> {
    let session = request
        .headers()
        .get("mcp-session-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let reply = match *request.method() {
        Method::POST => {
            let body = match request.into_body().collect().await {
                Ok(body) => body.to_bytes(),
                Err(_) => return Ok(empty_reply(StatusCode::BAD_REQUEST)),
            };
            match serde_json::from_slice::<Value>(&body) {
                Ok(message) => answer_message(&state, session.as_deref(), &message).await,
                Err(_) => json_reply(
                    StatusCode::BAD_REQUEST,
                    &rpc_error(&Value::Null, -32700, "parse error"),
                ),
            }
        }
        Method::DELETE => {
            if let Some(session) = session {
                state.sessions().remove(&session);
            }
            empty_reply(StatusCode::OK)
        }
        // No notification stream: the gateway gives up on it quietly.
        _ => empty_reply(StatusCode::METHOD_NOT_ALLOWED),
    };
    Ok(reply)
}

/// Answers one JSON-RPC message.
async fn answer_message(state: &FixtureState, session: Option<&str>, message: &Value) -> Reply {
    let method = message
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(id) = message.get("id") else {
        // A notification (or a response to us, which we never ask for).
        return empty_reply(StatusCode::ACCEPTED);
    };
    if method == "initialize" {
        let session = uuid::Uuid::new_v4().simple().to_string();
        state.sessions().insert(session.clone());
        state.sessions_opened.fetch_add(1, Ordering::Relaxed);
        let mut reply = json_reply(
            StatusCode::OK,
            &rpc_result(
                id,
                json!({
                    "protocolVersion": FIXTURE_PROTOCOL_VERSION,
                    "capabilities": { "tools": {} },
                    "serverInfo": { "name": "mcpgate-loadtest-fixture", "version": env!("CARGO_PKG_VERSION") },
                }),
            ),
        );
        if let Ok(value) = HeaderValue::from_str(&session) {
            reply.headers_mut().insert("mcp-session-id", value);
        }
        return reply;
    }
    // Everything else needs a session, as in a session-era server.
    let Some(session) = session else {
        return json_reply(
            StatusCode::BAD_REQUEST,
            &rpc_error(id, -32600, "bad request: no valid session id"),
        );
    };
    if !state.sessions().contains(session) {
        return json_reply(
            StatusCode::NOT_FOUND,
            &rpc_error(id, -32001, "session not found"),
        );
    }
    let result = match method {
        "ping" => json!({}),
        "tools/list" => json!({ "tools": [{
            "name": FIXTURE_TOOL,
            "description": "Waits the fixture's delay, then answers.",
            "inputSchema": { "type": "object", "properties": { "client": { "type": "integer" } } },
        }] }),
        "resources/list" => json!({ "resources": [] }),
        "resources/templates/list" => json!({ "resourceTemplates": [] }),
        "prompts/list" => json!({ "prompts": [] }),
        "tools/call" => return call_tool(state, id, message).await,
        _ => {
            return json_reply(
                StatusCode::OK,
                &rpc_error(id, -32601, &format!("method not found: {method}")),
            );
        }
    };
    json_reply(StatusCode::OK, &rpc_result(id, result))
}

async fn call_tool(state: &FixtureState, id: &Value, message: &Value) -> Reply {
    let name = message
        .pointer("/params/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name != FIXTURE_TOOL {
        return json_reply(
            StatusCode::OK,
            &rpc_error(id, -32602, &format!("unknown tool: {name}")),
        );
    }
    let delay = state.delay.sample();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    state.calls_served.fetch_add(1, Ordering::Relaxed);
    json_reply(
        StatusCode::OK,
        &rpc_result(
            id,
            json!({
                "content": [{
                    "type": "text",
                    "text": format!("worked {} ms{}", delay.as_millis(), state.result_padding),
                }],
                "isError": false,
            }),
        ),
    )
}
