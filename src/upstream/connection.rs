//! A live connection to one upstream: the handshake, requests, notifications, and the change
//! watch, over Streamable HTTP (both eras) or the legacy SSE transport.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot};

use super::sse::EventReader;
use super::{CallError, Era, Target, TransportKind};
use crate::mcp::protocol::{LEGACY_VERSIONS, MODERN_VERSION, meta};

/// The largest single SSE event read from an upstream.
const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// How long connecting (discover/initialize, the SSE endpoint event) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A live connection to one upstream.
pub struct Connection {
    http: crate::egress::HttpClient,
    target: Target,
    /// What was negotiated.
    pub era: Era,
    session_id: Option<String>,
    sse: Option<SseLink>,
    next_id: AtomicI64,
    /// The upstream's capabilities.
    pub capabilities: Value,
    /// The upstream's `serverInfo`.
    pub server_info: Value,
    /// The upstream's instructions.
    pub instructions: Option<String>,
    watcher: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(watcher) = self.watcher.take() {
            watcher.abort();
        }
    }
}

/// Called when the upstream says one of its lists changed.
pub type OnChange = Arc<dyn Fn() + Send + Sync>;

/// Whether a notification announces a change of the upstream's lists or resources.
fn is_change(message: &Value) -> bool {
    matches!(
        message.get("method").and_then(Value::as_str),
        Some(
            "notifications/tools/list_changed"
                | "notifications/prompts/list_changed"
                | "notifications/resources/list_changed"
        )
    )
}

/// The legacy SSE transport's state: where to POST, and the requests waiting for a response on
/// the stream, with where their notifications and the upstream's questions go.
struct SseLink {
    post_url: String,
    routes: Arc<SseRoutes>,
    on_change: Arc<Mutex<Option<OnChange>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for SseLink {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The requests in flight on a legacy SSE connection, by JSON id.
#[derive(Default)]
struct SseRoutes {
    pending: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    notifications: Mutex<HashMap<String, mpsc::Sender<Value>>>,
    questions: Mutex<HashMap<String, mpsc::Sender<ClientRequest>>>,
}

impl SseRoutes {
    /// Where a question from the upstream goes. The old transport does not say which request a
    /// question is about, so it is routed only when exactly one request is in flight (the
    /// upstream session is shared by every client: guessing could ask the wrong client).
    fn question_route(&self) -> Option<mpsc::Sender<ClientRequest>> {
        let pending = lock(&self.pending);
        let mut keys = pending.keys();
        match (keys.next(), keys.next()) {
            (Some(only), None) => lock(&self.questions).get(only).cloned(),
            _ => None,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn client_info() -> Value {
    json!({ "name": "mcpgate", "version": env!("CARGO_PKG_VERSION") })
}

/// Turns an `error` object into a [`CallError`].
fn rpc_error(error: &Value) -> CallError {
    CallError::Rpc {
        code: error.get("code").and_then(Value::as_i64).unwrap_or(-32603),
        message: error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("unknown error")
            .to_owned(),
        data: error.get("data").cloned(),
    }
}

/// The result of a response message, or its error.
fn outcome(message: Value) -> Result<Map<String, Value>, CallError> {
    if let Some(error) = message.get("error") {
        return Err(rpc_error(error));
    }
    match message.get("result") {
        Some(Value::Object(result)) => Ok(result.clone()),
        _ => Err(CallError::Transport(
            "the upstream's response has no result object".into(),
        )),
    }
}

/// A request the upstream sent us during a call, and where its response goes.
pub type ClientRequest = (Value, oneshot::Sender<Value>);

/// Where a forwarded request's notifications (progress, logs) and the upstream's own requests
/// (sampling, elicitation, roots) go while it runs.
#[derive(Clone, Default)]
pub struct Notifications {
    /// Notifications about the request.
    pub notifications: Option<mpsc::Sender<Value>>,
    /// Requests from the upstream, to relay to the client; without it they are declined.
    pub requests: Option<mpsc::Sender<ClientRequest>>,
    /// What the client can be asked (`sampling`, `elicitation`, `roots`): declared to a
    /// 2026-07-28 upstream as the request's client capabilities.
    pub capabilities: Value,
}

impl Notifications {
    /// Nothing is relayed.
    pub fn none() -> Self {
        Notifications::default()
    }
}

impl Connection {
    /// Connects: Streamable HTTP tries 2026-07-28 first and falls back to `initialize`; SSE
    /// opens the stream and initializes over it.
    pub async fn connect(
        http: crate::egress::HttpClient,
        target: Target,
    ) -> Result<Connection, CallError> {
        let connecting = async {
            match target.transport {
                TransportKind::StreamableHttp => Self::connect_streamable(http, target).await,
                TransportKind::Sse => Self::connect_sse(http, target).await,
            }
        };
        tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .unwrap_or(Err(CallError::Timeout(CONNECT_TIMEOUT)))
    }

    async fn connect_streamable(
        http: crate::egress::HttpClient,
        target: Target,
    ) -> Result<Connection, CallError> {
        let mut connection = Connection {
            http,
            target,
            era: Era::Modern,
            session_id: None,
            sse: None,
            next_id: AtomicI64::new(1),
            capabilities: json!({}),
            server_info: json!({}),
            instructions: None,
            watcher: None,
        };
        // A modern server answers server/discover; a legacy one refuses it without a session.
        if let Ok(result) = connection
            .request("server/discover", Map::new(), Notifications::none())
            .await
        {
            let modern = result
                .get("supportedVersions")
                .and_then(Value::as_array)
                .is_some_and(|versions| versions.iter().any(|v| v == MODERN_VERSION));
            if modern {
                connection.capabilities = result.get("capabilities").cloned().unwrap_or(json!({}));
                connection.server_info = result
                    .get("_meta")
                    .and_then(|m| m.get(meta::SERVER_INFO))
                    .cloned()
                    .unwrap_or(json!({}));
                connection.instructions = result
                    .get("instructions")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                return Ok(connection);
            }
        }
        connection.era = Era::Legacy(LEGACY_VERSIONS[0].to_owned());
        let (headers, message) = connection
            .post(
                &initialize_body(connection.next_id()),
                None,
                Notifications::none(),
            )
            .await?;
        connection.session_id = headers
            .get("mcp-session-id")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let message =
            message.ok_or_else(|| CallError::Transport("initialize got no response".into()))?;
        connection.adopt_initialize(outcome(message)?)?;
        connection
            .notify("notifications/initialized", Map::new())
            .await?;
        Ok(connection)
    }

    async fn connect_sse(
        http: crate::egress::HttpClient,
        target: Target,
    ) -> Result<Connection, CallError> {
        let mut request = http.get(&target.url)?.header("accept", "text/event-stream");
        for (name, value) in &target.headers {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| CallError::Transport(describe(&e)))?;
        if !response.status().is_success() {
            return Err(CallError::Transport(format!(
                "the SSE endpoint answered HTTP {}",
                response.status()
            )));
        }
        let mut events = EventReader::new(response, MAX_EVENT_BYTES);
        let endpoint = loop {
            match events.next().await.map_err(CallError::Transport)? {
                Some(event) if event.name == "endpoint" => break event.data,
                Some(_) => continue,
                None => {
                    return Err(CallError::Transport(
                        "the SSE stream ended before its endpoint event".into(),
                    ));
                }
            }
        };
        let base = url::Url::parse(&target.url)
            .map_err(|e| CallError::Transport(format!("bad upstream URL: {e}")))?;
        let post_url = base
            .join(endpoint.trim())
            .map_err(|e| CallError::Transport(format!("bad endpoint event {endpoint:?}: {e}")))?;
        // The upstream's credentials go only where they were registered for.
        if !crate::egress::same_origin(&base, &post_url) {
            return Err(CallError::Transport(format!(
                "the SSE endpoint event points to another origin ({post_url}); only the \
                 registered origin {} is used",
                base.origin().ascii_serialization()
            )));
        }
        let post_url = post_url.to_string();
        let routes: Arc<SseRoutes> = Arc::default();
        let on_change: Arc<Mutex<Option<OnChange>>> = Arc::default();
        let reader = {
            let routes = routes.clone();
            let on_change = on_change.clone();
            let poster = Poster {
                http: http.clone(),
                url: post_url.clone(),
                headers: target.headers.clone(),
            };
            tokio::spawn(async move {
                while let Ok(Some(event)) = events.next().await {
                    let Ok(message) = serde_json::from_str::<Value>(&event.data) else {
                        continue;
                    };
                    if is_change(&message) {
                        if let Some(on_change) = lock(&on_change).as_ref() {
                            on_change();
                        }
                        continue;
                    }
                    route_sse_message(message, &routes, &poster);
                }
                // The stream ended: every waiting request fails (its sender is dropped).
                lock(&routes.pending).clear();
            })
        };
        let mut connection = Connection {
            http,
            target,
            era: Era::Legacy(LEGACY_VERSIONS[0].to_owned()),
            session_id: None,
            sse: Some(SseLink {
                post_url,
                routes,
                on_change,
                reader,
            }),
            next_id: AtomicI64::new(1),
            capabilities: json!({}),
            server_info: json!({}),
            instructions: None,
            watcher: None,
        };
        let id = connection.next_id();
        let result = connection
            .sse_request(initialize_body(id), Notifications::none())
            .await?;
        connection.adopt_initialize(result)?;
        connection
            .notify("notifications/initialized", Map::new())
            .await?;
        Ok(connection)
    }

    fn adopt_initialize(&mut self, result: Map<String, Value>) -> Result<(), CallError> {
        let version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                CallError::Transport("initialize result has no protocolVersion".into())
            })?;
        if !LEGACY_VERSIONS.contains(&version) {
            return Err(CallError::Transport(format!(
                "the upstream speaks protocol {version}, which the gateway does not"
            )));
        }
        self.era = Era::Legacy(version.to_owned());
        self.capabilities = result.get("capabilities").cloned().unwrap_or(json!({}));
        self.server_info = result.get("serverInfo").cloned().unwrap_or(json!({}));
        self.instructions = result
            .get("instructions")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(())
    }

    fn next_id(&self) -> i64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The negotiated protocol version.
    pub fn protocol_version(&self) -> &str {
        match &self.era {
            Era::Modern => MODERN_VERSION,
            Era::Legacy(version) => version,
        }
    }

    /// Sends a request and returns its result object; notifications about it go to
    /// `notifications` (progress tokens are the caller's business).
    pub async fn request(
        &self,
        method: &str,
        params: Map<String, Value>,
        notifications: Notifications,
    ) -> Result<Map<String, Value>, CallError> {
        self.request_with_id(self.next_id(), method, params, notifications)
            .await
    }

    /// A fresh request id, for [`Connection::request_with_id`].
    pub fn next_request_id(&self) -> i64 {
        self.next_id()
    }

    /// Whether this is a session-era (legacy) connection, where cancellation is a
    /// `notifications/cancelled` rather than a closed stream.
    pub fn is_legacy(&self) -> bool {
        matches!(self.era, Era::Legacy(_))
    }

    /// Tells a legacy upstream that request `id` is cancelled (best effort).
    pub async fn cancel(&self, id: i64) {
        let mut params = Map::new();
        params.insert("requestId".into(), json!(id));
        params.insert("reason".into(), json!("the client cancelled the request"));
        if let Err(error) = self.notify("notifications/cancelled", params).await {
            tracing::debug!(%error, "could not send notifications/cancelled upstream");
        }
    }

    /// [`Connection::request`] with a chosen id (so the caller can cancel it).
    pub async fn request_with_id(
        &self,
        id: i64,
        method: &str,
        mut params: Map<String, Value>,
        notifications: Notifications,
    ) -> Result<Map<String, Value>, CallError> {
        if self.era == Era::Modern {
            let capabilities = match &notifications.capabilities {
                Value::Object(capabilities) => Value::Object(capabilities.clone()),
                _ => json!({}),
            };
            let meta_object = params.entry("_meta").or_insert_with(|| json!({}));
            if let Some(meta_object) = meta_object.as_object_mut() {
                meta_object.insert(meta::PROTOCOL_VERSION.into(), json!(MODERN_VERSION));
                meta_object.insert(meta::CLIENT_CAPABILITIES.into(), capabilities);
                meta_object.insert(meta::CLIENT_INFO.into(), client_info());
            }
        } else {
            // Multi round-trip fields mean nothing to a session-era upstream.
            params.remove("inputResponses");
            params.remove("requestState");
        }
        if notifications.notifications.is_some() {
            // Our own progress token (the request id) routes the upstream's progress back to
            // this request; the caller maps it to its client's token.
            let meta_object = params.entry("_meta").or_insert_with(|| json!({}));
            if let Some(meta_object) = meta_object.as_object_mut() {
                meta_object.insert("progressToken".into(), json!(id));
            }
        }
        let body = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        if self.sse.is_some() {
            return self.sse_request(body, notifications).await;
        }
        let (_, message) = self.post(&body, Some(method), notifications).await?;
        outcome(message.ok_or_else(|| CallError::Transport(format!("{method} got no response")))?)
    }

    /// Sends a notification.
    pub async fn notify(&self, method: &str, params: Map<String, Value>) -> Result<(), CallError> {
        let body = json!({ "jsonrpc": "2.0", "method": method, "params": params });
        match &self.sse {
            Some(link) => self.post_raw(&link.post_url, &body, None).await.map(|_| ()),
            None => self
                .post(&body, None, Notifications::none())
                .await
                .map(|_| ()),
        }
    }

    /// Lists every page of a list method; `field` names the array in the result.
    pub async fn list_all(&self, method: &str, field: &str) -> Result<Vec<Value>, CallError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..1000 {
            let mut params = Map::new();
            if let Some(cursor) = &cursor {
                params.insert("cursor".into(), json!(cursor));
            }
            let result = self.request(method, params, Notifications::none()).await?;
            if let Some(Value::Array(page)) = result.get(field) {
                items.extend(page.iter().cloned());
            }
            match result.get("nextCursor").and_then(Value::as_str) {
                Some(next) if Some(next) != cursor.as_deref() => cursor = Some(next.to_owned()),
                _ => return Ok(items),
            }
        }
        Err(CallError::Transport(format!(
            "{method} returned more than 1000 pages"
        )))
    }

    /// Follows the upstream's change notifications, calling `on_change` for each list change:
    /// on the SSE stream (legacy transport), a session GET stream (legacy Streamable HTTP), or a
    /// `subscriptions/listen` stream (2026-07-28). Ends when the connection is dropped.
    pub fn watch(&mut self, on_change: OnChange) {
        if let Some(link) = &self.sse {
            *lock(&link.on_change) = Some(on_change);
            return;
        }
        let http = self.http.clone();
        let url = self.target.url.clone();
        let mut headers: Vec<(String, String)> = self
            .target
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let listen_body = match &self.era {
            Era::Legacy(version) => {
                let Some(session) = &self.session_id else {
                    return;
                };
                headers.push(("mcp-session-id".into(), session.clone()));
                headers.push(("mcp-protocol-version".into(), version.clone()));
                None
            }
            Era::Modern => {
                headers.push(("mcp-protocol-version".into(), MODERN_VERSION.into()));
                headers.push(("mcp-method".into(), "subscriptions/listen".into()));
                Some(json!({
                    "jsonrpc": "2.0",
                    "id": self.next_id(),
                    "method": "subscriptions/listen",
                    "params": {
                        "_meta": {
                            meta::PROTOCOL_VERSION: MODERN_VERSION,
                            meta::CLIENT_CAPABILITIES: {},
                            meta::CLIENT_INFO: client_info(),
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
        self.watcher = Some(tokio::spawn(async move {
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
        }));
    }

    /// Ends a legacy Streamable HTTP session (best effort).
    pub async fn close(&self) {
        if let (Some(session), None) = (&self.session_id, &self.sse) {
            let Ok(request) = self.http.delete(&self.target.url) else {
                return;
            };
            let mut request = request.header("mcp-session-id", session);
            for (name, value) in &self.target.headers {
                request = request.header(name, value);
            }
            let _ = request.send().await;
        }
    }

    async fn sse_request(
        &self,
        body: Value,
        notifications: Notifications,
    ) -> Result<Map<String, Value>, CallError> {
        let link = self
            .sse
            .as_ref()
            .ok_or_else(|| CallError::Transport("not an SSE connection".into()))?;
        let key = body["id"].to_string();
        let (sender, receiver) = oneshot::channel();
        lock(&link.routes.pending).insert(key.clone(), sender);
        if let Some(notifications) = notifications.notifications {
            lock(&link.routes.notifications).insert(key.clone(), notifications);
        }
        if let Some(questions) = notifications.requests {
            lock(&link.routes.questions).insert(key.clone(), questions);
        }
        // Remove the routes whatever happens (an error, a timeout, a cancelled caller).
        let _routes = RouteGuard {
            link,
            key: key.clone(),
        };
        self.post_raw(&link.post_url, &body, None).await?;
        let message = receiver
            .await
            .map_err(|_| CallError::Transport("the upstream's SSE stream ended".into()))?;
        outcome(message)
    }

    /// POSTs a message to the Streamable HTTP endpoint; returns the response headers and the
    /// JSON-RPC response (none for notifications).
    async fn post(
        &self,
        body: &Value,
        method: Option<&str>,
        notifications: Notifications,
    ) -> Result<(reqwest::header::HeaderMap, Option<Value>), CallError> {
        let extra = self.session_headers(method, body);
        let response = self.post_raw(&self.target.url, body, Some(&extra)).await?;
        let headers = response.headers().clone();
        let status = response.status();
        if status.as_u16() == 404 && self.session_id.is_some() {
            return Err(CallError::SessionExpired);
        }
        if status.as_u16() == 202 || body.get("id").is_none() {
            return Ok((headers, None));
        }
        let content_type = headers
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if content_type.starts_with("text/event-stream") {
            let message = self
                .read_response_stream(response, &body["id"], notifications)
                .await?;
            return Ok((headers, Some(message)));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| CallError::Transport(describe(&e)))?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(message) if message.get("error").is_some() || message.get("result").is_some() => {
                Ok((headers, Some(message)))
            }
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

    /// Reads a request's SSE response: notifications are passed on, requests from the
    /// upstream are declined, the response ends it.
    async fn read_response_stream(
        &self,
        response: reqwest::Response,
        id: &Value,
        notifications: Notifications,
    ) -> Result<Value, CallError> {
        let mut events = EventReader::new(response, MAX_EVENT_BYTES);
        while let Some(event) = events.next().await.map_err(CallError::Transport)? {
            let Ok(message) = serde_json::from_str::<Value>(&event.data) else {
                continue;
            };
            let is_response = message.get("result").is_some() || message.get("error").is_some();
            if is_response && message.get("id") == Some(id) {
                return Ok(message);
            }
            if message.get("method").is_some() {
                match message.get("id") {
                    None => {
                        if let Some(notifications) = &notifications.notifications {
                            let _ = notifications.try_send(message);
                        }
                    }
                    Some(request_id) => {
                        let request_id = request_id.clone();
                        match &notifications.requests {
                            Some(requests) => self.relay(requests, request_id, message).await,
                            None => self.decline(request_id).await,
                        }
                    }
                }
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
        let body = answer_message(request_id, &answer);
        let extra = self.session_headers(None, &body);
        let _ = self.post_raw(&self.target.url, &body, Some(&extra)).await;
    }

    /// Answers a server→client request the gateway does not relay.
    async fn decline(&self, id: Value) {
        let body = json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": { "code": -32601, "message": "mcpgate has no client to ask during this request" },
        });
        let extra = self.session_headers(None, &body);
        let _ = self.post_raw(&self.target.url, &body, Some(&extra)).await;
    }

    /// The session, version and (modern) mirrored headers of a POST.
    fn session_headers(&self, method: Option<&str>, body: &Value) -> Vec<(&'static str, String)> {
        let mut extra: Vec<(&'static str, String)> = Vec::new();
        if let Some(session) = &self.session_id {
            extra.push(("mcp-session-id", session.clone()));
        }
        match &self.era {
            Era::Modern => {
                extra.push(("mcp-protocol-version", MODERN_VERSION.to_owned()));
                if let Some(method) = method {
                    extra.push(("mcp-method", method.to_owned()));
                    let name_field = match method {
                        "tools/call" | "prompts/get" => Some("name"),
                        "resources/read" => Some("uri"),
                        _ => None,
                    };
                    if let Some(name) = name_field.and_then(|f| body["params"][f].as_str()) {
                        extra.push(("mcp-name", header_safe(name)));
                    }
                }
            }
            Era::Legacy(version) => extra.push(("mcp-protocol-version", version.clone())),
        }
        extra
    }

    async fn post_raw(
        &self,
        url: &str,
        body: &Value,
        extra: Option<&[(&str, String)]>,
    ) -> Result<reqwest::Response, CallError> {
        post_json(
            &self.http,
            url,
            &self.target.headers,
            extra.unwrap_or_default(),
            body,
        )
        .await
    }
}

/// POSTs a JSON-RPC message with the upstream's headers and `extra`.
async fn post_json(
    http: &crate::egress::HttpClient,
    url: &str,
    headers: &std::collections::BTreeMap<String, String>,
    extra: &[(&str, String)],
    body: &Value,
) -> Result<reqwest::Response, CallError> {
    let mut request = http
        .post(url)?
        .header("accept", "application/json, text/event-stream")
        .json(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    for (name, value) in extra {
        request = request.header(*name, value);
    }
    request
        .send()
        .await
        .map_err(|error| CallError::Transport(describe(&error)))
}

/// Where the SSE reader posts its answers to the upstream's questions.
#[derive(Clone)]
struct Poster {
    http: crate::egress::HttpClient,
    url: String,
    headers: std::collections::BTreeMap<String, String>,
}

impl Poster {
    async fn post(&self, body: &Value, extra: &[(&str, String)]) {
        if let Err(error) = post_json(&self.http, &self.url, &self.headers, extra, body).await {
            tracing::debug!(%error, "could not answer the upstream's request");
        }
    }
}

/// Puts a question from the upstream to whoever handles this call's questions; returns their
/// answer (`{"result"}` or `{"error"}`).
async fn ask(questions: &mpsc::Sender<ClientRequest>, message: Value) -> Value {
    let (sender, receiver) = oneshot::channel();
    if questions.send((message, sender)).await.is_err() {
        return json!({ "error": { "code": -32603, "message": "the call ended before the client could be asked" } });
    }
    receiver.await.unwrap_or_else(
        |_| json!({ "error": { "code": -32603, "message": "the client did not answer" } }),
    )
}

/// The JSON-RPC response to the upstream's request `id` carrying `answer`.
fn answer_message(id: Value, answer: &Value) -> Value {
    let mut body = json!({ "jsonrpc": "2.0", "id": id });
    match (answer.get("result"), answer.get("error")) {
        (Some(result), _) => body["result"] = result.clone(),
        (None, Some(error)) => body["error"] = error.clone(),
        (None, None) => {
            body["error"] = json!({ "code": -32603, "message": "the client's answer was empty" })
        }
    }
    body
}

/// Removes a request's routes from the SSE link when the request ends.
struct RouteGuard<'a> {
    link: &'a SseLink,
    key: String,
}

impl Drop for RouteGuard<'_> {
    fn drop(&mut self) {
        let routes = &self.link.routes;
        lock(&routes.pending).remove(&self.key);
        lock(&routes.notifications).remove(&self.key);
        lock(&routes.questions).remove(&self.key);
    }
}

/// Routes a message from the legacy SSE stream: a response to its waiting request, a question
/// to the one request in flight (answered with an error when that is not clear), a
/// notification with a progress token to the request that owns the token.
fn route_sse_message(message: Value, routes: &SseRoutes, poster: &Poster) {
    let is_response = message.get("result").is_some() || message.get("error").is_some();
    if is_response {
        if let Some(id) = message.get("id")
            && let Some(waiter) = lock(&routes.pending).remove(&id.to_string())
        {
            let _ = waiter.send(message);
        }
        return;
    }
    if let Some(id) = message.get("id").cloned() {
        let poster = poster.clone();
        let route = routes.question_route();
        tokio::spawn(async move {
            let answer = match route {
                Some(route) => ask(&route, message).await,
                None => json!({ "error": {
                    "code": -32601,
                    "message": "mcpgate cannot tell which client this request is for (none, or several calls, are in flight on the shared session)",
                }}),
            };
            poster.post(&answer_message(id, &answer), &[]).await;
        });
        return;
    }
    // Progress notifications name their request through the progress token we chose: the
    // request id.
    let token = message
        .get("params")
        .and_then(|p| p.get("progressToken"))
        .map(Value::to_string);
    if let Some(token) = token
        && let Some(route) = lock(&routes.notifications).get(&token)
    {
        let _ = route.try_send(message);
    }
}

fn initialize_body(id: i64) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "initialize",
        "params": {
            "protocolVersion": LEGACY_VERSIONS[0],
            // Declared so upstreams offer what needs them; each request is relayed to the
            // client only if that client declared the capability too.
            "capabilities": { "sampling": {}, "elicitation": {}, "roots": {} },
            "clientInfo": client_info(),
        },
    })
}

/// A header value: plain when safe, else the `=?base64?…?=` form.
fn header_safe(value: &str) -> String {
    use base64::Engine;
    let safe = !value.starts_with("=?base64?")
        && value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && value.trim() == value;
    if safe {
        value.to_owned()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(value)
        )
    }
}

/// The innermost cause of a reqwest error ("connection refused" rather than "error sending
/// request").
pub(crate) fn describe(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message = cause.to_string();
        source = cause.source();
    }
    message
}
