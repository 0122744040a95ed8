//! A session as the client of its own upstream sessions: what they send outside a call, and
//! the questions they ask, go to the session's stream.

use std::sync::Weak;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;

use super::{Session, capability_for, refusal};
use crate::protocol::LogLevel;
use crate::upstream::ClientEnd;

/// A session as the client its own upstream sessions belong to: what they send outside a call
/// goes to the session's stream.
pub(super) struct SessionEnd {
    pub(super) session: Weak<Session>,
    /// How long the client has to answer a question.
    pub(super) timeout: Duration,
}

impl ClientEnd for SessionEnd {
    fn notify(&self, message: Value) {
        let Some(session) = self.session.upgrade() else {
            return;
        };
        let relayed = match message.get("method").and_then(Value::as_str) {
            // At the client's level (the upstream was told it, and may not care).
            Some("notifications/message") => {
                let level = message
                    .pointer("/params/level")
                    .and_then(Value::as_str)
                    .and_then(LogLevel::parse);
                matches!((level, session.log_level()), (Some(level), Some(threshold)) if level >= threshold)
            }
            Some("notifications/resources/updated") => message
                .pointer("/params/uri")
                .and_then(Value::as_str)
                .is_some_and(|uri| session.is_subscribed(uri)),
            // Progress and cancellation name the gateway's own requests, list changes are
            // the catalog's business.
            _ => false,
        };
        if relayed {
            session.notify(message);
        }
    }

    fn ask(&self, message: Value) -> BoxFuture<'static, Value> {
        let session = self.session.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let Some(session) = session.upgrade() else {
                return refusal(-32603, "the client's session has ended");
            };
            let method = message["method"].as_str().unwrap_or_default();
            if !capability_for(method).is_some_and(|capability| session.client_supports(capability))
            {
                return refusal(-32601, format!("the client does not support {method}"));
            }
            let Some(stream) = session.stream() else {
                return refusal(-32603, "the client has no stream open to be asked on");
            };
            let params = message.get("params").cloned().unwrap_or(Value::Null);
            session
                .request_client(method, params, &stream, timeout)
                .await
                .unwrap_or_else(|cause| refusal(-32603, cause))
        })
    }

    fn log_level(&self) -> Option<LogLevel> {
        self.session.upgrade()?.log_level()
    }
}
