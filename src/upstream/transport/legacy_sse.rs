//! The legacy HTTP+SSE transport (protocol 2024-11-05): one long GET stream carries every
//! message from the upstream; the first event (`endpoint`) names where to POST. Responses,
//! questions and notifications are routed from the stream to the request they belong to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::{
    Answering, ClientEnd, ClientRequest, MAX_EVENT_BYTES, Message, Notifications, OnChange, Pace,
    Transport, Withdrawals, answer_message, ask_or_decline, describe, is_change, lock,
    notify_or_drop, post_json,
};
use crate::protocol::{Era, RawObject};
use crate::upstream::sse::EventReader;
use crate::upstream::{CallError, Target};

/// An open HTTP+SSE link: where to POST, and the requests waiting for a response on the stream.
pub struct LegacySse {
    poster: Poster,
    routes: Arc<SseRoutes>,
    on_change: Arc<Mutex<Option<OnChange>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for LegacySse {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The requests in flight on a legacy SSE connection, by JSON id.
#[derive(Default)]
struct SseRoutes {
    pending: Mutex<HashMap<String, oneshot::Sender<Result<RawObject, CallError>>>>,
    notifications: Mutex<HashMap<String, mpsc::Sender<Value>>>,
    questions: Mutex<HashMap<String, mpsc::Sender<ClientRequest>>>,
    answering: Answering,
    /// The client the session is dedicated to, if it is.
    client: Mutex<Option<Arc<dyn ClientEnd>>>,
    /// The questions being answered.
    withdrawals: Withdrawals,
}

impl SseRoutes {
    /// Where a question from the upstream goes. The old transport does not say which request a
    /// question is about, so it is routed only when exactly one request is in flight (the
    /// upstream session is shared by every client: guessing could ask the wrong client).
    fn question_route(&self) -> Option<mpsc::Sender<ClientRequest>> {
        let only = self.only_request()?;
        lock(&self.questions).get(&only).cloned()
    }

    /// Where a notification that names no request (a log message) goes: like a question, to
    /// the one request in flight, if there is exactly one.
    fn notification_route(&self) -> Option<mpsc::Sender<Value>> {
        let only = self.only_request()?;
        lock(&self.notifications).get(&only).cloned()
    }

    /// The key of the only request in flight.
    fn only_request(&self) -> Option<String> {
        let pending = lock(&self.pending);
        let mut keys = pending.keys();
        match (keys.next(), keys.next()) {
            (Some(only), None) => Some(only.clone()),
            _ => None,
        }
    }
}

/// Where messages to the upstream are POSTed (the `endpoint` event's URL).
#[derive(Clone)]
struct Poster {
    http: crate::egress::HttpClient,
    url: url::Url,
    headers: std::collections::BTreeMap<String, String>,
}

impl Poster {
    async fn post(&self, body: &Value) -> Result<reqwest::Response, CallError> {
        post_json(&self.http, &self.url, &self.headers, &[], body).await
    }
}

impl LegacySse {
    /// Opens the stream and waits for its `endpoint` event, which must name the registered
    /// origin (the upstream's credentials go nowhere else).
    pub async fn open(http: crate::egress::HttpClient, target: Target) -> Result<Self, CallError> {
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
        if !crate::egress::same_origin(&base, &post_url) {
            return Err(CallError::Transport(format!(
                "the SSE endpoint event points to another origin ({post_url}); only the \
                 registered origin {} is used",
                base.origin().ascii_serialization()
            )));
        }
        let poster = Poster {
            http,
            url: post_url,
            headers: target.headers,
        };
        let routes: Arc<SseRoutes> = Arc::default();
        let on_change: Arc<Mutex<Option<OnChange>>> = Arc::default();
        let reader = {
            let routes = routes.clone();
            let on_change = on_change.clone();
            let poster = poster.clone();
            tokio::spawn(async move {
                let mut pace = Pace::new();
                while let Ok(Some(event)) = events.next().await {
                    let message = match Message::read(event.data.as_bytes()) {
                        Some(Message::Response { id, outcome }) => {
                            if let Some(waiter) = lock(&routes.pending).remove(&id.to_string()) {
                                let _ = waiter.send(outcome);
                            }
                            continue;
                        }
                        Some(Message::Other(message)) => message,
                        None => continue,
                    };
                    if is_change(&message) {
                        if let Some(on_change) = lock(&on_change).as_ref() {
                            on_change();
                        }
                        continue;
                    }
                    if message.get("id").is_some() || pace.allow() {
                        route(message, &routes, &poster);
                    }
                }
                // The stream ended: every waiting request fails (its sender is dropped).
                lock(&routes.pending).clear();
            })
        };
        Ok(LegacySse {
            poster,
            routes,
            on_change,
            reader,
        })
    }
}

impl Transport for LegacySse {
    fn request<'a>(
        &'a self,
        body: &'a Value,
        _method: &'a str,
        relay: Notifications,
    ) -> BoxFuture<'a, Result<RawObject, CallError>> {
        Box::pin(async move {
            let key = body["id"].to_string();
            let (sender, receiver) = oneshot::channel();
            lock(&self.routes.pending).insert(key.clone(), sender);
            if let Some(notifications) = relay.notifications {
                lock(&self.routes.notifications).insert(key.clone(), notifications);
            }
            if let Some(questions) = relay.requests {
                lock(&self.routes.questions).insert(key.clone(), questions);
            }
            // Remove the routes whatever happens (an error, a timeout, a cancelled caller).
            let _routes = RouteGuard {
                routes: &self.routes,
                key,
            };
            self.poster.post(body).await?;
            receiver
                .await
                .map_err(|_| CallError::Transport("the upstream's SSE stream ended".into()))?
        })
    }

    fn notify(&self, body: Value) -> BoxFuture<'_, Result<(), CallError>> {
        Box::pin(async move { self.poster.post(&body).await.map(|_| ()) })
    }

    fn negotiated(&self, _era: Era) {}

    fn watch(&self, on_change: OnChange, _listen_id: i64) -> super::Opened {
        *lock(&self.on_change) = Some(on_change);
        // Its one stream is open already.
        Box::pin(async {})
    }

    fn dedicate(&self, client: Arc<dyn ClientEnd>) {
        *lock(&self.routes.client) = Some(client);
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        // The session ends with the stream, when the link is dropped.
        Box::pin(async {})
    }
}

/// Removes a request's routes when the request ends.
struct RouteGuard<'a> {
    routes: &'a SseRoutes,
    key: String,
}

impl Drop for RouteGuard<'_> {
    fn drop(&mut self) {
        lock(&self.routes.pending).remove(&self.key);
        lock(&self.routes.notifications).remove(&self.key);
        lock(&self.routes.questions).remove(&self.key);
    }
}

/// Routes a request or notification from the stream: a withdrawal to the question it names, a
/// question to the one request in flight
/// (answered with an error when that is not clear), a notification with a progress token to the
/// request that owns the token, another notification about a call (a log message) to the one
/// request in flight (dropped when that is not clear).
fn route(message: Value, routes: &SseRoutes, poster: &Poster) {
    if routes.withdrawals.withdraw(&message) {
        return;
    }
    if let Some(id) = message.get("id").cloned() {
        let poster = poster.clone();
        let route = routes.question_route();
        let client = lock(&routes.client).clone();
        let withdrawal = routes.withdrawals.watch(&id);
        routes.answering.spawn(async move {
            let answer = withdrawal.answer(ask_or_decline(route, client, message));
            let Some(answer) = answer.await else {
                return;
            };
            if let Err(error) = poster.post(&answer_message(id, &answer)).await {
                tracing::debug!(%error, "could not answer the upstream's request");
            }
        });
        return;
    }
    // Progress notifications name their request through the progress token we chose: the
    // request id.
    let token = message
        .get("params")
        .and_then(|p| p.get("progressToken"))
        .map(Value::to_string);
    if let Some(token) = token {
        if let Some(route) = lock(&routes.notifications).get(&token) {
            let _ = route.try_send(message);
        }
        return;
    }
    // A log message goes to the one request in flight; anything else (a resource update) only
    // to the client a dedicated session belongs to.
    let route = (message.get("method").and_then(Value::as_str) == Some("notifications/message"))
        .then(|| routes.notification_route())
        .flatten();
    notify_or_drop(route, lock(&routes.client).clone(), message);
}
