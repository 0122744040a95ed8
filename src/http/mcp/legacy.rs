//! The legacy HTTP+SSE transport (2024-11-05; deprecated, still widely used): `GET …/sse`
//! opens a stream whose first event names the URL to POST messages to; responses and
//! notifications travel on the stream. The session lives as long as the stream.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::mpsc;

use super::exchange::{self, Request};
use super::notify;
use super::sse::{self, SseBody, SseEvent};
use super::{admit, error_response, read_body};
use crate::auth::Principal;
use crate::catalog::Scope;
use crate::http::AppState;
use crate::http::extract::McpAuthenticated;
use crate::http::forward;
use crate::mcp::error::McpError;
use crate::mcp::jsonrpc::{self, Incoming};
use crate::mcp::methods::{decorate, initialize_result};
use crate::mcp::session::Session;
use crate::protocol::{self, Era, LEGACY_VERSIONS};

/// The version a legacy SSE session reports until `initialize` negotiates one.
const SSE_VERSION: &str = LEGACY_VERSIONS[3];

/// How long a request's result waits for its notifications to be passed on before it.
const RELAY_DRAIN: std::time::Duration = std::time::Duration::from_secs(1);

pub async fn sse_all(state: web::Data<AppState>, auth: McpAuthenticated) -> HttpResponse {
    open(state, auth.0, None).await
}

pub async fn sse_server(
    state: web::Data<AppState>,
    auth: McpAuthenticated,
    path: web::Path<String>,
) -> HttpResponse {
    open(state, auth.0, Some(path.into_inner())).await
}

async fn open(
    state: web::Data<AppState>,
    principal: Principal,
    server_id: Option<String>,
) -> HttpResponse {
    let scope = match admit(&state, &principal, server_id.clone()) {
        Ok(scope) => scope,
        Err(response) => return *response,
    };
    let permit = match state.streams.acquire_shared(&principal.email).await {
        Ok(permit) => permit,
        Err(exceeded) => {
            return error_response(
                None,
                &exceeded.into(),
                Era::Legacy {
                    version: SSE_VERSION,
                },
            );
        }
    };
    let session = match state
        .sessions
        .create_sse(scope, &principal.email, SSE_VERSION)
        .await
    {
        Ok(session) => session,
        Err(error) => {
            return error_response(
                None,
                &error,
                Era::Legacy {
                    version: SSE_VERSION,
                },
            );
        }
    };
    let (sender, receiver) = mpsc::channel::<SseEvent>(64);
    let endpoint = match &server_id {
        Some(id) => format!("/servers/{id}/message?session_id={}", session.id),
        None => format!("/message?session_id={}", session.id),
    };
    let _ = sender.try_send(SseEvent::Endpoint(endpoint));
    // Session messages (JSON values) are relayed onto the SSE event channel.
    let (messages, mut relay) = mpsc::channel::<Value>(64);
    session.attach_stream(messages.clone());
    actix_web::rt::spawn(async move {
        while let Some(message) = relay.recv().await {
            if sender.send(SseEvent::Message(message)).await.is_err() {
                return;
            }
        }
    });
    notify::follow_session(&state, session.clone(), messages);
    let sessions = state.sessions.clone();
    let session_id = session.id.clone();
    // The client closing the stream ends the session.
    let on_close = Box::new(move || {
        sessions.remove(&session_id);
    });
    sse::response(
        SseBody::new(receiver, Some(on_close), sse::LONG_LIVED_KEEP_ALIVE).holding(permit),
        &[],
    )
}

#[derive(Deserialize)]
pub struct MessageQuery {
    session_id: Option<String>,
}

pub async fn message_all(
    state: web::Data<AppState>,
    request: HttpRequest,
    auth: McpAuthenticated,
    query: web::Query<MessageQuery>,
    payload: web::Payload,
) -> HttpResponse {
    message(state, &request, auth.0, None, query.into_inner(), payload).await
}

pub async fn message_server(
    state: web::Data<AppState>,
    request: HttpRequest,
    auth: McpAuthenticated,
    path: web::Path<String>,
    query: web::Query<MessageQuery>,
    payload: web::Payload,
) -> HttpResponse {
    message(
        state,
        &request,
        auth.0,
        Some(path.into_inner()),
        query.into_inner(),
        payload,
    )
    .await
}

async fn message(
    state: web::Data<AppState>,
    http: &HttpRequest,
    principal: Principal,
    server_id: Option<String>,
    query: MessageQuery,
    payload: web::Payload,
) -> HttpResponse {
    let era = Era::Legacy {
        version: SSE_VERSION,
    };
    let scope = match admit(&state, &principal, server_id) {
        Ok(scope) => scope,
        Err(response) => return *response,
    };
    let Some(session_id) = query.session_id else {
        return error_response(
            None,
            &McpError::SessionRequired("the session_id query parameter is required".into()),
            era,
        );
    };
    let Some(session) = state.sessions.get(&session_id, &principal.email, &scope) else {
        return error_response(
            None,
            &McpError::SessionNotFound(format!(
                "session {session_id:?} is unknown or closed; open the SSE stream again"
            )),
            era,
        );
    };
    let body = match read_body(payload, state.settings.max_request_body_bytes).await {
        Ok(body) => body,
        Err(error) => return error_response(None, &error, era),
    };
    let message = match jsonrpc::parse(&body) {
        Ok(message) => message,
        Err(error) => return error_response(None, &error, era),
    };
    match message {
        Incoming::Response(response) => session.resolve(response),
        Incoming::Notification { method, params } => {
            if method == "notifications/cancelled"
                && let Some(id) = params.get("requestId")
            {
                session.cancel(id);
            }
        }
        Incoming::Request { id, method, params } => {
            // A call that reaches upstreams is served where the session's own upstream
            // sessions are; its result reaches the stream from there.
            if let Some(home) = forward::home_elsewhere(http, &session, &method) {
                match forward::to_replica(&state, http, body, &home).await {
                    Ok(response) => return response,
                    Err(unreached) if unreached.gone => {
                        tracing::info!(reason = %unreached.reason, "a session's replica is gone; served here");
                    }
                    Err(unreached) => {
                        let era = Era::Legacy {
                            version: session.version,
                        };
                        session.notify(jsonrpc::error(Some(&id), &unreached.into(), era));
                        return HttpResponse::Accepted().finish();
                    }
                }
            }
            serve(&state, principal, scope, session, id, method, params);
        }
    }
    HttpResponse::Accepted().finish()
}

/// Serves a request in the background; its response goes out on the session's stream.
fn serve(
    state: &AppState,
    principal: Principal,
    scope: Scope,
    session: Arc<Session>,
    id: Value,
    method: String,
    params: serde_json::Map<String, Value>,
) {
    if method == "server/discover" {
        // 2026-07-28 is spoken over Streamable HTTP only: a client probing for it here (the
        // official SDKs' auto mode) is told no, and falls back to a session.
        let refusal = McpError::MethodNotFound(
            "server/discover is a method of protocol 2026-07-28, which the HTTP+SSE transport \
             does not carry: initialize a session, or use the Streamable HTTP endpoint"
                .into(),
        );
        session.notify(jsonrpc::error(
            Some(&id),
            &refusal,
            Era::Legacy {
                version: session.version,
            },
        ));
        return;
    }
    if method == "initialize" {
        let version =
            protocol::negotiate_legacy(params.get("protocolVersion").and_then(Value::as_str));
        // The id was made before the client said what it can do: other replicas are told.
        session.share_client_capabilities(params.get("capabilities").cloned().unwrap_or_default());
        let result = initialize_result(&state.catalog.current(), &scope, version);
        session.notify(jsonrpc::result(&id, result));
        return;
    }
    let request = Request {
        id: id.clone(),
        era: Era::Legacy {
            version: session.version,
        },
        scope,
        principal,
        session: Some(session.clone()),
        log_level: session.log_level(),
    };
    let (notifier, mut notifications) = mpsc::channel::<Value>(64);
    let ctx = exchange::context(state, &request, &params, Some(notifier));
    let relay_session = session.clone();
    let relay = actix_web::rt::spawn(async move {
        while let Some(message) = notifications.recv().await {
            relay_session.notify(message);
        }
    });
    actix_web::rt::spawn(async move {
        session.track(&id, ctx.cancel.clone());
        let outcome = crate::mcp::methods::dispatch(&ctx, Some(&id), &method, params).await;
        session.untrack(&id);
        if ctx.cancel.is_cancelled() {
            return;
        }
        let response = match outcome {
            Ok(result) => jsonrpc::result(
                &id,
                decorate(ctx.era, &method, result, ctx.settings.cache_ttl_ms).into_object(),
            ),
            Err(error) => jsonrpc::error(Some(&id), &error, ctx.era),
        };
        // The request's notifications go first (its last progress before its result), however
        // far the stream is: the relay ends once the request's notifier is gone.
        drop(ctx);
        let _ = tokio::time::timeout(RELAY_DRAIN, relay).await;
        session.notify(response);
    });
}
