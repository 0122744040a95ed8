//! The Streamable HTTP transport, both eras: every message is a POST to the upstream's MCP
//! endpoint, answered with JSON or an SSE stream that carries the request's notifications and
//! the upstream's questions before its response. A session-era upstream's session id and the
//! negotiated version travel as headers; a 2026-07-28 upstream gets the mirrored `Mcp-Method`
//! and `Mcp-Name` headers instead. List changes arrive on the session's GET stream (session
//! era) or a `subscriptions/listen` stream (2026-07-28).

use std::sync::Mutex;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{
    ClientRequest, MAX_EVENT_BYTES, Notifications, OnChange, Transport, answer_message, ask,
    describe, is_change, is_response, lock, post_json,
};
use crate::protocol::{Era, MODERN_VERSION, encode_header, implementation_info, meta};
use crate::upstream::sse::EventReader;
use crate::upstream::{CallError, Target};

/// A Streamable HTTP link to one upstream.
pub struct StreamableHttp {
    http: crate::egress::HttpClient,
    target: Target,
    /// The target's URL, parsed once.
    endpoint: Result<url::Url, String>,
    /// The era every message is sent in (2026-07-28 until a handshake says otherwise).
    era: Mutex<Era>,
    /// The session a session-era upstream gave at `initialize`.
    session_id: Mutex<Option<String>>,
    watcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for StreamableHttp {
    fn drop(&mut self) {
        if let Some(watcher) = lock(&self.watcher).take() {
            watcher.abort();
        }
    }
}

impl StreamableHttp {
    /// A link to `target` (nothing is sent yet).
    pub fn new(http: crate::egress::HttpClient, target: Target) -> Self {
        let endpoint = url::Url::parse(&target.url)
            .map_err(|error| format!("the upstream URL {:?} is not valid ({error})", target.url));
        StreamableHttp {
            http,
            target,
            endpoint,
            era: Mutex::new(Era::Modern),
            session_id: Mutex::new(None),
            watcher: Mutex::new(None),
        }
    }

    fn era(&self) -> Era {
        *lock(&self.era)
    }

    fn session_id(&self) -> Option<String> {
        lock(&self.session_id).clone()
    }

    /// POSTs a message; returns the JSON-RPC response (none for notifications and answers).
    async fn post(
        &self,
        body: &Value,
        method: Option<&str>,
        relay: Notifications,
    ) -> Result<Option<Value>, CallError> {
        let extra = self.session_headers(method, body);
        let endpoint = self
            .endpoint
            .as_ref()
            .map_err(|error| CallError::Transport(error.clone()))?;
        let response = post_json(&self.http, endpoint, &self.target.headers, &extra, body).await?;
        let headers = response.headers().clone();
        let status = response.status();
        let session = self.session_id();
        if status.as_u16() == 404 && session.is_some() {
            return Err(CallError::SessionExpired);
        }
        // A session-era upstream gives its session at `initialize`.
        if session.is_none()
            && matches!(self.era(), Era::Legacy { .. })
            && let Some(given) = headers
                .get("mcp-session-id")
                .and_then(|value| value.to_str().ok())
        {
            *lock(&self.session_id) = Some(given.to_owned());
        }
        if status.as_u16() == 202 || body.get("id").is_none() {
            return Ok(None);
        }
        let content_type = headers
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if content_type.starts_with("text/event-stream") {
            return self
                .read_response_stream(response, &body["id"], relay)
                .await
                .map(Some);
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| CallError::Transport(describe(&e)))?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(message) if is_response(&message) => Ok(Some(message)),
            _ if !status.is_success() => Err(CallError::Transport(format!(
                "the upstream answered HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
                    .chars()
                    .take(300)
                    .collect::<String>()
            ))),
            _ => Err(CallError::Transport(
                "the upstream's answer is not a JSON-RPC response".into(),
            )),
        }
    }

    /// Reads a request's SSE response: notifications are passed on, the upstream's requests
    /// relayed to the client (or declined), the response ends it.
    async fn read_response_stream(
        &self,
        response: reqwest::Response,
        id: &Value,
        relay: Notifications,
    ) -> Result<Value, CallError> {
        let mut events = EventReader::new(response, MAX_EVENT_BYTES);
        while let Some(event) = events.next().await.map_err(CallError::Transport)? {
            let Ok(message) = serde_json::from_str::<Value>(&event.data) else {
                continue;
            };
            if is_response(&message) && message.get("id") == Some(id) {
                return Ok(message);
            }
            if message.get("method").is_none() {
                continue;
            }
            match message.get("id").cloned() {
                None => {
                    if let Some(notifications) = &relay.notifications {
                        let _ = notifications.try_send(message);
                    }
                }
                Some(request_id) => match &relay.requests {
                    Some(requests) => self.relay(requests, request_id, message).await,
                    None => self.decline(request_id).await,
                },
            }
        }
        Err(CallError::Transport(
            "the upstream's response stream ended without a response".into(),
        ))
    }

    /// Relays a server→client request to the client and posts the client's answer back.
    async fn relay(
        &self,
        requests: &mpsc::Sender<ClientRequest>,
        request_id: Value,
        message: Value,
    ) {
        let answer = ask(requests, message).await;
        self.answer(answer_message(request_id, &answer)).await;
    }

    /// Answers a server→client request the gateway does not relay.
    async fn decline(&self, id: Value) {
        self.answer(json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": { "code": -32601, "message": "mcpgate has no client to ask during this request" },
        }))
        .await;
    }

    async fn answer(&self, body: Value) {
        let extra = self.session_headers(None, &body);
        let Ok(endpoint) = &self.endpoint else {
            return;
        };
        let _ = post_json(&self.http, endpoint, &self.target.headers, &extra, &body).await;
    }

    /// The session, version and (2026-07-28) mirrored headers of a POST.
    fn session_headers(&self, method: Option<&str>, body: &Value) -> Vec<(&'static str, String)> {
        let mut extra: Vec<(&'static str, String)> = Vec::new();
        if let Some(session) = self.session_id() {
            extra.push(("mcp-session-id", session));
        }
        extra.push(("mcp-protocol-version", self.era().version().to_owned()));
        if let (Era::Modern, Some(method)) = (self.era(), method) {
            extra.push(("mcp-method", method.to_owned()));
            let name_field = match method {
                "tools/call" | "prompts/get" => Some("name"),
                "resources/read" => Some("uri"),
                _ => None,
            };
            if let Some(name) = name_field.and_then(|f| body["params"][f].as_str()) {
                extra.push(("mcp-name", encode_header(name)));
            }
        }
        extra
    }
}

impl Transport for StreamableHttp {
    fn request<'a>(
        &'a self,
        body: &'a Value,
        method: &'a str,
        relay: Notifications,
    ) -> BoxFuture<'a, Result<Value, CallError>> {
        Box::pin(async move {
            self.post(body, Some(method), relay)
                .await?
                .ok_or_else(|| CallError::Transport(format!("{method} got no response")))
        })
    }

    fn notify(&self, body: Value) -> BoxFuture<'_, Result<(), CallError>> {
        Box::pin(async move {
            self.post(&body, None, Notifications::none())
                .await
                .map(|_| ())
        })
    }

    fn negotiated(&self, era: Era) {
        *lock(&self.era) = era;
    }

    fn watch(&self, on_change: OnChange, listen_id: i64) {
        let http = self.http.clone();
        let url = self.target.url.clone();
        let mut headers: Vec<(String, String)> = self
            .target
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let listen_body = match self.era() {
            Era::Legacy { version } => {
                let Some(session) = self.session_id() else {
                    return;
                };
                headers.push(("mcp-session-id".into(), session));
                headers.push(("mcp-protocol-version".into(), version.to_owned()));
                None
            }
            Era::Modern => {
                headers.push(("mcp-protocol-version".into(), MODERN_VERSION.into()));
                headers.push(("mcp-method".into(), "subscriptions/listen".into()));
                Some(json!({
                    "jsonrpc": "2.0",
                    "id": listen_id,
                    "method": "subscriptions/listen",
                    "params": {
                        "_meta": {
                            meta::PROTOCOL_VERSION: MODERN_VERSION,
                            meta::CLIENT_CAPABILITIES: {},
                            meta::CLIENT_INFO: implementation_info(),
                        },
                        "notifications": {
                            "toolsListChanged": true,
                            "promptsListChanged": true,
                            "resourcesListChanged": true,
                        },
                    },
                }))
            }
        };
        let watcher = tokio::spawn(async move {
            // A POST (subscriptions/listen) accepts both, as every Streamable HTTP POST must.
            let request = match &listen_body {
                Some(body) => http.post(&url).map(|request| {
                    request
                        .json(body)
                        .header("accept", "application/json, text/event-stream")
                }),
                None => http
                    .get(&url)
                    .map(|request| request.header("accept", "text/event-stream")),
            };
            let mut request = match request {
                Ok(request) => request,
                Err(denied) => {
                    tracing::warn!(%denied, "the upstream's notification stream is refused");
                    return;
                }
            };
            for (name, value) in &headers {
                request = request.header(name, value);
            }
            let Ok(response) = request.send().await else {
                return;
            };
            if !response.status().is_success() {
                tracing::debug!(status = %response.status(), "the upstream offers no notification stream");
                return;
            }
            let mut events = EventReader::new(response, MAX_EVENT_BYTES);
            while let Ok(Some(event)) = events.next().await {
                if let Ok(message) = serde_json::from_str::<Value>(&event.data)
                    && is_change(&message)
                {
                    on_change();
                }
            }
        });
        if let Some(previous) = lock(&self.watcher).replace(watcher) {
            previous.abort();
        }
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let Some(session) = self.session_id() else {
                return;
            };
            let Ok(request) = self.http.delete(&self.target.url) else {
                return;
            };
            let mut request = request.header("mcp-session-id", session);
            for (name, value) in &self.target.headers {
                request = request.header(name, value);
            }
            let _ = request.send().await;
        })
    }
}
