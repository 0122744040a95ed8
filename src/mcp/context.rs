//! What a method handler knows about the request it serves.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::jsonrpc;
use super::parked::ParkedCalls;
use super::session::Session;
use crate::actors::upstream::Upstream;
use crate::auth::Principal;
use crate::catalog::{Catalog, Scope};
use crate::config::McpSettings;
use crate::protocol::{Era, LogLevel};

/// The context of one MCP request.
pub struct Ctx {
    /// The era it is served in.
    pub era: Era,
    /// The items it may see.
    pub scope: Scope,
    /// The catalog snapshot taken when the request arrived.
    pub catalog: Arc<Catalog>,
    /// Who is asking.
    pub principal: Principal,
    /// The upstream actor.
    pub upstream: Upstream,
    /// MCP settings.
    pub settings: Arc<McpSettings>,
    /// The legacy session, if any.
    pub session: Option<Arc<Session>>,
    /// The minimum level of `notifications/message` to send for this request (none: send none).
    pub log_level: Option<LogLevel>,
    /// The progress token, when the client asked for progress.
    pub progress_token: Option<Value>,
    /// The response stream for request-scoped notifications, when the response is SSE.
    pub notifier: Option<mpsc::Sender<Value>>,
    /// Cancelled when the client cancels or goes away.
    pub cancel: CancellationToken,
    /// Where tool calls are recorded.
    pub metrics: crate::actors::metrics::Metrics,
    /// Upstream calls waiting for a 2026-07-28 client's `inputResponses`.
    pub parked: Arc<ParkedCalls>,
    /// Renders prompt templates in the sandbox.
    pub prompts: crate::prompt_render::PromptRenderer,
    /// Tool calls in flight, per principal and in all.
    pub tool_calls: Arc<crate::quota::Quota>,
    /// Request rates per principal, team and tool.
    pub rate_limits: Arc<crate::ratelimit::RateLimits>,
    /// A 2026-07-28 request's declared client capabilities (empty in the session era, where
    /// the session holds them).
    pub client_capabilities: serde_json::Map<String, Value>,
}

impl Ctx {
    /// Whether the client can be asked something that needs `capability` (`sampling`,
    /// `elicitation`, `roots`) during this request: a 2026-07-28 client that declared it (it
    /// is asked through `input_required`), or a session-era client that declared it and has
    /// this request's stream open to be asked on.
    pub fn may_ask(&self, capability: &str) -> bool {
        match (&self.era, &self.session) {
            (Era::Modern, _) => self
                .client_capabilities
                .get(capability)
                .is_some_and(|value| !value.is_null()),
            (Era::Legacy { .. }, Some(session)) => {
                self.notifier.is_some() && session.client_supports(capability)
            }
            (Era::Legacy { .. }, None) => false,
        }
    }

    /// Sends `notifications/message` when the request asked for this level or lower.
    pub fn log(&self, level: LogLevel, data: impl Into<Value>) {
        let (Some(threshold), Some(notifier)) = (self.log_level, &self.notifier) else {
            return;
        };
        if level >= threshold {
            let _ = notifier.try_send(jsonrpc::notification(
                "notifications/message",
                json!({ "level": level.as_str(), "logger": "mcpgate", "data": data.into() }),
            ));
        }
    }

    /// Sends `notifications/progress` when the client asked for progress.
    pub fn progress(&self, progress: f64, total: Option<f64>, message: &str) {
        let (Some(token), Some(notifier)) = (&self.progress_token, &self.notifier) else {
            return;
        };
        let mut params =
            json!({ "progressToken": token, "progress": progress, "message": message });
        if let Some(total) = total {
            params["total"] = json!(total);
        }
        let _ = notifier.try_send(jsonrpc::notification("notifications/progress", params));
    }
}
