//! Serving one JSON-RPC request: build the context, dispatch, answer as JSON or as an SSE
//! stream carrying request-scoped notifications before the response.

use std::sync::Arc;

use actix_web::HttpResponse;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::error_response;
use super::sse::{self, SseBody, SseEvent};
use crate::auth::Principal;
use crate::catalog::Scope;
use crate::http::AppState;
use crate::mcp::context::Ctx;
use crate::mcp::jsonrpc;
use crate::mcp::methods::{Object, decorate, dispatch};
use crate::mcp::session::Session;
use crate::protocol::{Era, LogLevel};

/// Capacity of a response stream's queue.
const STREAM_QUEUE: usize = 64;

/// Everything about a request except its method and params.
pub struct Request {
    /// The JSON-RPC id.
    pub id: Value,
    /// The era it is served in.
    pub era: Era,
    /// What it may see.
    pub scope: Scope,
    /// Who asks.
    pub principal: Principal,
    /// The legacy session.
    pub session: Option<Arc<Session>>,
    /// The log level for `notifications/message`.
    pub log_level: Option<LogLevel>,
}

/// Builds the context of a request.
pub fn context(
    state: &AppState,
    request: &Request,
    params: &Object,
    notifier: Option<mpsc::Sender<Value>>,
) -> Ctx {
    let progress_token = params
        .get("_meta")
        .and_then(Value::as_object)
        .and_then(|meta| meta.get("progressToken"))
        .filter(|token| token.is_string() || token.is_number())
        .cloned();
    Ctx {
        era: request.era,
        scope: request.scope.clone(),
        catalog: state.catalog.current(),
        principal: request.principal.clone(),
        upstream: state.upstream.clone(),
        settings: state.mcp_settings.clone(),
        session: request.session.clone(),
        log_level: request.log_level,
        progress_token,
        notifier,
        cancel: CancellationToken::new(),
        metrics: state.metrics.clone(),
        parked: state.parked.clone(),
        prompts: state.prompts.clone(),
        tool_calls: state.tool_calls.clone(),
        rate_limits: state.rate_limits.clone(),
        client_capabilities: match request.era {
            Era::Modern => params
                .get("_meta")
                .and_then(|meta| meta.get(crate::protocol::meta::CLIENT_CAPABILITIES))
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            Era::Legacy { .. } => serde_json::Map::new(),
        },
    }
}

/// Runs the method and encodes the JSON-RPC response (`None` when cancelled: no answer is due).
async fn run(
    ctx: &Ctx,
    id: &Value,
    method: &str,
    params: Object,
) -> Option<(String, Option<crate::mcp::error::McpError>)> {
    if let Some(session) = &ctx.session {
        session.track(id, ctx.cancel.clone());
    }
    let outcome = dispatch(ctx, Some(id), method, params).await;
    if let Some(session) = &ctx.session {
        session.untrack(id);
    }
    if ctx.cancel.is_cancelled() {
        return None;
    }
    Some(match outcome {
        Ok(result) => (
            jsonrpc::encoded_result(
                id,
                &decorate(ctx.era, method, result, ctx.settings.cache_ttl_ms),
            ),
            None,
        ),
        Err(error) => (
            jsonrpc::error(Some(id), &error, ctx.era).to_string(),
            Some(error),
        ),
    })
}

/// Whether the response should be a stream. Only when the client accepts SSE, and then when
/// it prefers it, asked for notifications (progress or logs) about this request, or sends a
/// modern `tools/call`: closing that stream is how a 2026-07-28 client cancels, and a stream is
/// the only way actix-web notices a client that went away before the work ends.
pub fn wants_stream(
    era: Era,
    method: &str,
    accepts: (bool, bool),
    params: &Object,
    log_level: Option<LogLevel>,
) -> bool {
    let (accepts_sse, accepts_json) = accepts;
    let asked_for_notifications = log_level.is_some()
        || params
            .get("_meta")
            .and_then(Value::as_object)
            .is_some_and(|meta| meta.contains_key("progressToken"));
    let cancellable_call = era == Era::Modern && method == "tools/call";
    accepts_sse && (!accepts_json || asked_for_notifications || cancellable_call)
}

/// Whether a session-era client could be asked something during this request (sampling,
/// elicitation, roots from an upstream, during the methods that may ask): then it is answered
/// as a stream.
pub fn may_relay_requests(method: &str, session: Option<&crate::mcp::session::Session>) -> bool {
    matches!(method, "tools/call" | "prompts/get" | "resources/read")
        && session.is_some_and(|session| {
            ["sampling", "elicitation", "roots"]
                .iter()
                .any(|capability| session.client_supports(capability))
        })
}

/// Answers a request on its own HTTP response, as JSON or as an SSE stream.
pub async fn respond(
    state: &AppState,
    request: Request,
    method: String,
    params: Object,
    stream: bool,
    extra_headers: Vec<(&'static str, String)>,
) -> HttpResponse {
    if !stream {
        let ctx = context(state, &request, &params, None);
        // If the client goes away, actix drops this future and the guard cancels the work.
        let guard = ctx.cancel.clone().drop_guard();
        let outcome = run(&ctx, &request.id, &method, params).await;
        guard.disarm();
        let Some((body, error)) = outcome else {
            return HttpResponse::NoContent().finish();
        };
        if let Some(error) = error {
            let mut response = error_response(Some(&request.id), &error, request.era);
            for (name, value) in extra_headers {
                if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&value) {
                    response.headers_mut().insert(
                        actix_web::http::header::HeaderName::from_static(name),
                        value,
                    );
                }
            }
            return response;
        }
        let mut response = HttpResponse::Ok();
        for (name, value) in extra_headers {
            response.insert_header((name, value));
        }
        return response
            .content_type(actix_web::http::header::ContentType::json())
            .body(body);
    }
    let (sender, receiver) = mpsc::channel::<Value>(STREAM_QUEUE);
    let ctx = context(state, &request, &params, Some(sender));
    let cancel = ctx.cancel.clone();
    let id = request.id;
    // The stream runs the request as it is polled: its notifications, then its response.
    let work = Box::pin(async move {
        run(&ctx, &id, &method, params)
            .await
            .map(|(body, _)| SseEvent::Encoded(body))
    });
    let headers: Vec<(&str, String)> = extra_headers.into_iter().collect();
    let body = SseBody::driving(
        receiver,
        work,
        Some(Box::new(move || cancel.cancel())),
        sse::REQUEST_KEEP_ALIVE,
    );
    sse::driven_response(body, sse::REQUEST_KEEP_ALIVE, &headers).await
}
