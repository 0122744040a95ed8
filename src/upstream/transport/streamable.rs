//! The Streamable HTTP transport, both eras: every message is a POST to the upstream's MCP
//! endpoint, answered with JSON or an SSE stream that carries the request's notifications and
//! the upstream's questions before its response. A session-era upstream's session id and the
//! negotiated version travel as headers; a 2026-07-28 upstream gets the mirrored `Mcp-Method`
//! and `Mcp-Name` headers instead. List changes arrive on the session's GET stream (session
//! era) or a `subscriptions/listen` stream (2026-07-28).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use serde_json::{Value, json};

use super::{
    ANSWERING_AT_ONCE, Answering, ClientEnd, MAX_EVENT_BYTES, Message, Notifications, OnChange,
    Opened, Pace, Transport, Withdrawals, answer_message, ask, ask_or_decline, describe, is_change,
    is_resource_update, lock, notify_or_drop, post_json,
};
use crate::protocol::{Era, MODERN_VERSION, RawObject, encode_header, implementation_info, meta};
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
    /// The calls in flight that can be told something: what arrives on the session's GET
    /// stream names no call, and goes to the only one in flight.
    in_flight: Arc<InFlight>,
}

/// How long a call whose upstream has been sending about it on the GET stream waits, after
/// its response, for what the upstream sent just before it there (the two streams are read
/// independently; the spec asks servers not to do this, some do).
const GET_STREAM_GRACE: std::time::Duration = std::time::Duration::from_millis(20);

/// The calls in flight on a link that take notifications or questions.
#[derive(Default)]
struct InFlight {
    calls: Mutex<HashMap<u64, (Notifications, Arc<AtomicBool>)>>,
    next: std::sync::atomic::AtomicU64,
    answering: Answering,
    /// The client the session is dedicated to, if it is.
    client: Mutex<Option<Arc<dyn ClientEnd>>>,
    /// The questions asked on the GET stream being answered.
    withdrawals: Withdrawals,
}

impl InFlight {
    /// Registers a call until the guard is dropped.
    fn enter<'a>(&'a self, relay: &Notifications) -> InFlightGuard<'a> {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        let routed = Arc::new(AtomicBool::new(false));
        lock(&self.calls).insert(key, (relay.clone(), routed.clone()));
        InFlightGuard {
            in_flight: self,
            key,
            routed,
        }
    }

    /// Where the only call in flight takes what the upstream sends, if exactly one is (the
    /// call is marked as one its upstream talks about on the GET stream).
    fn only(&self) -> Option<Notifications> {
        let calls = lock(&self.calls);
        let mut values = calls.values();
        match (values.next(), values.next()) {
            (Some((only, routed)), None) => {
                routed.store(true, Ordering::Relaxed);
                Some(only.clone())
            }
            _ => None,
        }
    }

    /// The client the session is dedicated to.
    fn client(&self) -> Option<Arc<dyn ClientEnd>> {
        lock(&self.client).clone()
    }
}

struct InFlightGuard<'a> {
    in_flight: &'a InFlight,
    key: u64,
    /// Whether something on the GET stream was routed to this call.
    routed: Arc<AtomicBool>,
}

impl InFlightGuard<'_> {
    /// Waits a moment when the upstream has been talking about this call on its GET stream:
    /// what it sent there just before its response may not have been read yet.
    async fn settle(&self) {
        if self.routed.load(Ordering::Relaxed) {
            tokio::time::sleep(GET_STREAM_GRACE).await;
        }
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        lock(&self.in_flight.calls).remove(&self.key);
    }
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
            in_flight: Arc::default(),
        }
    }

    fn era(&self) -> Era {
        *lock(&self.era)
    }

    fn session_id(&self) -> Option<String> {
        lock(&self.session_id).clone()
    }

    /// POSTs a message; returns the response's result (none for notifications and answers).
    async fn post(
        &self,
        body: &Value,
        method: Option<&str>,
        relay: Notifications,
    ) -> Result<Option<RawObject>, CallError> {
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
        let bytes = read_bounded(response, MAX_EVENT_BYTES).await?;
        match Message::read(&bytes) {
            Some(Message::Response { outcome, .. }) => outcome.map(Some),
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
    /// relayed to the client (or declined) while reading goes on (so the upstream can withdraw
    /// one), the response ends it.
    async fn read_response_stream(
        &self,
        response: reqwest::Response,
        id: &Value,
        relay: Notifications,
    ) -> Result<RawObject, CallError> {
        let mut events = EventReader::new(response, MAX_EVENT_BYTES);
        let withdrawals = Withdrawals::default();
        let mut pace = Pace::new();
        let mut answering = FuturesUnordered::new();
        loop {
            let event = tokio::select! {
                event = events.next() => event.map_err(CallError::Transport)?,
                Some(()) = answering.next(), if !answering.is_empty() => continue,
            };
            let Some(event) = event else {
                break;
            };
            let message = match Message::read(event.data.as_bytes()) {
                Some(Message::Response {
                    id: answered,
                    outcome,
                }) if answered == *id => return outcome,
                Some(Message::Other(message)) if message.get("method").is_some() => message,
                _ => continue,
            };
            let Some(request_id) = message.get("id").cloned() else {
                if !withdrawals.withdraw(&message)
                    && let Some(notifications) = &relay.notifications
                    && pace.allow()
                {
                    let _ = notifications.try_send(message);
                }
                continue;
            };
            if answering.len() >= ANSWERING_AT_ONCE {
                // An upstream flooding one call's stream with questions gets no more of the
                // gateway's work than its GET stream would.
                tracing::warn!(
                    limit = ANSWERING_AT_ONCE,
                    "an upstream asks more questions at once on one call than are answered; one is declined"
                );
                let refused = json!({ "error": {
                    "code": -32603,
                    "message": "too many questions at once on this call",
                }});
                self.answer(answer_message(request_id, &refused)).await;
                continue;
            }
            let withdrawal = withdrawals.watch(&request_id);
            let requests = relay.requests.clone();
            let client = self.in_flight.client();
            answering.push(Box::pin(async move {
                // A dedicated session's questions are its client's, even on a call that
                // cannot carry them; otherwise declined with the reason.
                let method = message["method"].as_str().unwrap_or_default().to_owned();
                let answer = withdrawal.answer(async {
                    match (requests, client) {
                        (Some(requests), _) => ask(&requests, message).await,
                        (None, Some(client)) => client.ask(message).await,
                        (None, None) => declined(&method),
                    }
                });
                if let Some(answer) = answer.await {
                    self.answer(answer_message(request_id, &answer)).await;
                }
            }) as BoxFuture<'_, ()>);
        }
        Err(CallError::Transport(
            "the upstream's response stream ended without a response".into(),
        ))
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

/// The answer to a question no client of this call can be asked.
fn declined(method: &str) -> Value {
    json!({ "error": {
        "code": -32601,
        "message": format!(
            "the client does not support {method} during this request (it declared no such \
             capability, or has no stream to be asked on)"
        ),
    }})
}

/// Where the answers to the questions an upstream asks on its GET stream are POSTed.
#[derive(Clone)]
struct Answers {
    http: crate::egress::HttpClient,
    endpoint: url::Url,
    /// The upstream's own headers and the session's.
    headers: Vec<(String, String)>,
}

impl Answers {
    async fn post(&self, body: &Value) {
        let Ok(mut request) = self.http.request_to(reqwest::Method::POST, &self.endpoint) else {
            return;
        };
        request = request
            .header("accept", "application/json, text/event-stream")
            .json(body);
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        if let Err(error) = request.send().await {
            tracing::debug!(error = %describe(&error), "could not answer the upstream's question");
        }
    }
}

/// A request or notification the upstream sent on its GET stream, which names no call: it
/// goes to the only call in flight on the link, if exactly one is (on a shared session,
/// guessing could tell the wrong client), else to the client a dedicated session belongs to; a
/// question that cannot be routed is answered with an error, a notification dropped.
fn about_a_call(message: Value, in_flight: &InFlight, answers: &Option<Answers>) {
    if in_flight.withdrawals.withdraw(&message) {
        return;
    }
    let call = in_flight.only();
    let client = in_flight.client();
    let Some(id) = message.get("id").cloned() else {
        // An update of a subscribed resource is the session's, not a call's.
        let route = (!is_resource_update(&message))
            .then(|| call.and_then(|call| call.notifications))
            .flatten();
        notify_or_drop(route, client, message);
        return;
    };
    let Some(answers) = answers.clone() else {
        return;
    };
    let requests = call.and_then(|call| call.requests);
    let withdrawal = in_flight.withdrawals.watch(&id);
    in_flight.answering.spawn(async move {
        let answer = withdrawal.answer(ask_or_decline(requests, client, message));
        if let Some(answer) = answer.await {
            answers.post(&answer_message(id, &answer)).await;
        }
    });
}

impl Transport for StreamableHttp {
    fn request<'a>(
        &'a self,
        body: &'a Value,
        method: &'a str,
        relay: Notifications,
    ) -> BoxFuture<'a, Result<RawObject, CallError>> {
        Box::pin(async move {
            // A session-era upstream may send what concerns this call on its GET stream instead.
            let in_flight = (matches!(self.era(), Era::Legacy { .. })
                && (relay.notifications.is_some() || relay.requests.is_some()))
            .then(|| self.in_flight.enter(&relay));
            let outcome = self.post(body, Some(method), relay).await;
            if let Some(in_flight) = &in_flight {
                in_flight.settle().await;
            }
            outcome?.ok_or_else(|| CallError::Transport(format!("{method} got no response")))
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

    fn watch(&self, on_change: OnChange, listen_id: i64) -> Opened {
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
                    return Box::pin(async {});
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
        let in_flight = self.in_flight.clone();
        let answers = self.endpoint.clone().ok().map(|endpoint| Answers {
            http: http.clone(),
            endpoint,
            headers: headers.clone(),
        });
        // Told once the stream is open (or will not be): dropped either way.
        let (open, opened) = tokio::sync::oneshot::channel::<()>();
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
            drop(open);
            let mut events = EventReader::new(response, MAX_EVENT_BYTES);
            let mut pace = Pace::new();
            while let Ok(Some(event)) = events.next().await {
                let Some(Message::Other(message)) = Message::read(event.data.as_bytes()) else {
                    continue;
                };
                if is_change(&message) {
                    on_change();
                } else if message.get("method").is_some()
                    && (message.get("id").is_some() || pace.allow())
                {
                    about_a_call(message, &in_flight, &answers);
                }
            }
        });
        if let Some(previous) = lock(&self.watcher).replace(watcher) {
            previous.abort();
        }
        Box::pin(async move {
            let _ = opened.await;
        })
    }

    fn dedicate(&self, client: Arc<dyn ClientEnd>) {
        *lock(&self.in_flight.client) = Some(client);
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

/// Reads a JSON answer's body, refusing one larger than `limit` bytes as soon as it is known
/// to be (from its Content-Length, or while reading): an upstream cannot make the gateway hold
/// more than that for one answer.
async fn read_bounded(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, CallError> {
    let too_large = || {
        CallError::Bound(format!(
            "the upstream's answer is larger than {} MiB",
            limit / (1024 * 1024)
        ))
    };
    let length = response.content_length().unwrap_or(0);
    if length > limit as u64 {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(length as usize);
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| CallError::Transport(describe(&e)))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
