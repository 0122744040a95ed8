//! Routing for transports where every message from the upstream arrives on one stream (the
//! legacy HTTP+SSE transport, a stdio process's stdout): responses go to the request waiting
//! for them, list changes to the watcher, questions and notifications to the request they
//! concern, or to the client the connection is dedicated to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::{
    Answering, ClientEnd, ClientRequest, Message, Notifications, OnChange, Pace, Withdrawals,
    answer_message, ask_or_decline, is_change, lock, notify_or_drop,
};
use crate::protocol::RawObject;
use crate::upstream::CallError;

/// How an answer to the upstream's question is sent back (a POST, a line on stdin).
pub(super) type Reply =
    Arc<dyn Fn(Value) -> BoxFuture<'static, Result<(), CallError>> + Send + Sync>;

/// The requests in flight on a one-stream connection, by JSON id.
#[derive(Default)]
pub(super) struct Routes {
    pending: Mutex<HashMap<String, oneshot::Sender<Result<RawObject, CallError>>>>,
    notifications: Mutex<HashMap<String, mpsc::Sender<Value>>>,
    questions: Mutex<HashMap<String, mpsc::Sender<ClientRequest>>>,
    answering: Answering,
    /// The client the connection is dedicated to, if it is.
    client: Mutex<Option<Arc<dyn ClientEnd>>>,
    /// The questions being answered.
    withdrawals: Withdrawals,
    /// Told of each list change.
    on_change: Mutex<Option<OnChange>>,
}

impl Routes {
    /// Follows request `body` (which has an `id`) until the returned guard is dropped: its
    /// response comes through the receiver, what the upstream says about it goes to `relay`.
    pub(super) fn follow(
        &self,
        body: &Value,
        relay: Notifications,
    ) -> (
        RouteGuard<'_>,
        oneshot::Receiver<Result<RawObject, CallError>>,
    ) {
        let key = body["id"].to_string();
        let (sender, receiver) = oneshot::channel();
        lock(&self.pending).insert(key.clone(), sender);
        if let Some(notifications) = relay.notifications {
            lock(&self.notifications).insert(key.clone(), notifications);
        }
        if let Some(questions) = relay.requests {
            lock(&self.questions).insert(key.clone(), questions);
        }
        (RouteGuard { routes: self, key }, receiver)
    }

    /// Whether no request is in flight.
    pub(super) fn idle(&self) -> bool {
        lock(&self.pending).is_empty()
    }

    /// Every request in flight fails (the stream ended): their senders are dropped.
    pub(super) fn end(&self) {
        lock(&self.pending).clear();
    }

    /// Has list changes told to `on_change`.
    pub(super) fn watch(&self, on_change: OnChange) {
        *lock(&self.on_change) = Some(on_change);
    }

    /// Gives the connection to one client.
    pub(super) fn dedicate(&self, client: Arc<dyn ClientEnd>) {
        *lock(&self.client) = Some(client);
    }

    /// Delivers one message read from the stream; answers to the upstream's questions go
    /// through `reply`.
    pub(super) fn deliver(&self, text: &[u8], pace: &mut Pace, reply: &Reply) {
        let message = match Message::read(text) {
            Some(Message::Response { id, outcome }) => {
                if let Some(waiter) = lock(&self.pending).remove(&id.to_string()) {
                    let _ = waiter.send(outcome);
                }
                return;
            }
            Some(Message::Other(message)) => message,
            None => return,
        };
        if is_change(&message) {
            if let Some(on_change) = lock(&self.on_change).as_ref() {
                on_change();
            }
            return;
        }
        if message.get("id").is_some() || pace.allow() {
            self.route(message, reply);
        }
    }

    /// Where a question from the upstream goes. One-stream transports do not say which request
    /// a question is about, so it is routed only when exactly one request is in flight (the
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

    /// Routes a request or notification from the stream: a withdrawal to the question it
    /// names, a question to the one request in flight (answered with an error when that is not
    /// clear), a notification with a progress token to the request that owns the token,
    /// another notification about a call (a log message) to the one request in flight (dropped
    /// when that is not clear).
    fn route(&self, message: Value, reply: &Reply) {
        if self.withdrawals.withdraw(&message) {
            return;
        }
        if let Some(id) = message.get("id").cloned() {
            let reply = reply.clone();
            let route = self.question_route();
            let client = lock(&self.client).clone();
            let withdrawal = self.withdrawals.watch(&id);
            self.answering.spawn(async move {
                let answer = withdrawal.answer(ask_or_decline(route, client, message));
                let Some(answer) = answer.await else {
                    return;
                };
                if let Err(error) = reply(answer_message(id, &answer)).await {
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
            if let Some(route) = lock(&self.notifications).get(&token) {
                let _ = route.try_send(message);
            }
            return;
        }
        // A log message goes to the one request in flight; anything else (a resource update)
        // only to the client a dedicated connection belongs to.
        let route = (message.get("method").and_then(Value::as_str)
            == Some("notifications/message"))
        .then(|| self.notification_route())
        .flatten();
        notify_or_drop(route, lock(&self.client).clone(), message);
    }
}

/// Removes a request's routes when the request ends (an answer, an error, a timeout, a
/// cancelled caller).
pub(super) struct RouteGuard<'a> {
    routes: &'a Routes,
    key: String,
}

impl Drop for RouteGuard<'_> {
    fn drop(&mut self) {
        lock(&self.routes.pending).remove(&self.key);
        lock(&self.routes.notifications).remove(&self.key);
        lock(&self.routes.questions).remove(&self.key);
    }
}
