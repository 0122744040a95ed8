//! Streamable HTTP, both eras, on `/mcp` (everything the caller may see) and
//! `/servers/{id}/mcp` (one virtual server).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::exchange::{self, Request};
use super::notify::{self, Filter};
use super::sse::{self, SseBody};
use super::{accepts, admit, error_response, header_value, read_body};
use crate::auth::Principal;
use crate::catalog::Scope;
use crate::http::AppState;
use crate::http::extract::McpAuthenticated;
use crate::http::forward;
use crate::mcp::error::McpError;
use crate::mcp::jsonrpc::{self, Incoming};
use crate::mcp::methods::{Object, initialize_result};
use crate::mcp::protocol::{has_modern_meta, modern_meta};
use crate::mcp::session::Session;
use crate::protocol::{self, Era, MODERN_VERSION, decode_header, meta};

/// The session header.
const SESSION_HEADER: &str = "mcp-session-id";
/// The protocol version header.
const VERSION_HEADER: &str = "mcp-protocol-version";

pub async fn post_all(
    state: web::Data<AppState>,
    request: HttpRequest,
    auth: McpAuthenticated,
    payload: web::Payload,
) -> HttpResponse {
    post(state, request, auth.0, None, payload).await
}

pub async fn post_server(
    state: web::Data<AppState>,
    request: HttpRequest,
    auth: McpAuthenticated,
    path: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    post(state, request, auth.0, Some(path.into_inner()), payload).await
}

pub async fn get_all(
    state: web::Data<AppState>,
    request: HttpRequest,
    auth: McpAuthenticated,
) -> HttpResponse {
    get(state, request, auth.0, None).await
}

pub async fn get_server(
    state: web::Data<AppState>,
    request: HttpRequest,
    auth: McpAuthenticated,
    path: web::Path<String>,
) -> HttpResponse {
    get(state, request, auth.0, Some(path.into_inner())).await
}

pub async fn delete_all(
    state: web::Data<AppState>,
    request: HttpRequest,
    auth: McpAuthenticated,
) -> HttpResponse {
    delete(state, request, auth.0, None)
}

pub async fn delete_server(
    state: web::Data<AppState>,
    request: HttpRequest,
    auth: McpAuthenticated,
    path: web::Path<String>,
) -> HttpResponse {
    delete(state, request, auth.0, Some(path.into_inner()))
}

/// The era to report transport errors in: modern unless the client named a legacy version.
fn transport_era(request: &HttpRequest) -> Era {
    match header_value(request, VERSION_HEADER).and_then(protocol::legacy_version) {
        Some(version) => Era::Legacy { version },
        None => Era::Modern,
    }
}

async fn post(
    state: web::Data<AppState>,
    request: HttpRequest,
    principal: Principal,
    server_id: Option<String>,
    payload: web::Payload,
) -> HttpResponse {
    let scope = match admit(&state, &principal, server_id) {
        Ok(scope) => scope,
        Err(response) => return *response,
    };
    let era = transport_era(&request);
    let body = match read_body(payload, state.settings.max_request_body_bytes).await {
        Ok(body) => body,
        Err(error) => return error_response(None, &error, era),
    };
    let message = match jsonrpc::parse(&body) {
        Ok(message) => message,
        Err(error) => return error_response(None, &error, era),
    };
    let (id, method, params) = match message {
        Incoming::Response(response) => {
            // The client answers a request the gateway relayed to it (sampling, elicitation).
            if let Some(session) = header_value(&request, SESSION_HEADER)
                .and_then(|id| state.sessions.get(id, &principal.email, &scope))
            {
                session.resolve(response);
            }
            return HttpResponse::Accepted().finish();
        }
        Incoming::Notification { method, params } => {
            notification(&state, &request, &principal, &scope, &method, &params);
            return HttpResponse::Accepted().finish();
        }
        Incoming::Request { id, method, params } => (id, method, params),
    };
    let (accepts_sse, accepts_json) = accepts(&request);

    // A retry for a call parked on another replica is served there.
    if let Some(holder) = forward::parked_elsewhere(&state, &request, &method, &params) {
        return match forward::to_replica(&state, &request, body, &holder).await {
            Ok(response) => response,
            Err(unreached) => error_response(Some(&id), &unreached.for_parked_call(), Era::Modern),
        };
    }
    if has_modern_meta(&params) {
        return modern(
            &state,
            &request,
            principal,
            scope,
            id,
            method,
            params,
            accepts_sse,
            accepts_json,
        )
        .await;
    }
    if method == "initialize" {
        return initialize(
            &state,
            principal,
            scope,
            id,
            &params,
            accepts_sse,
            accepts_json,
        )
        .await;
    }
    let session = match legacy_session(&state, &request, &principal, &scope) {
        Ok(session) => session,
        Err(error) => return error_response(Some(&id), &error, era),
    };
    let era = Era::Legacy {
        version: session.version,
    };
    // A call that reaches upstreams is served where the session's own upstream sessions are.
    if let Some(home) = forward::home_elsewhere(&request, &session, &method) {
        match forward::to_replica(&state, &request, body, &home).await {
            Ok(response) => return response,
            // That replica is gone, and its upstream sessions with it: this one serves.
            Err(unreached) if unreached.gone => {
                tracing::info!(reason = %unreached.reason, "a session's replica is gone; served here");
            }
            Err(unreached) => return error_response(Some(&id), &unreached.into(), era),
        }
    }
    let log_level = session.log_level();
    let stream = exchange::wants_stream(
        era,
        &method,
        (accepts_sse, accepts_json),
        &params,
        log_level,
    ) || (accepts_sse && exchange::may_relay_requests(&method, Some(&session)));
    let request = Request {
        id,
        era,
        scope,
        principal,
        session: Some(session),
        log_level,
    };
    exchange::respond(&state, request, method, params, stream, Vec::new()).await
}

/// A modern (2026-07-28) request: validate `_meta` and the mirrored headers, then serve it.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site; the values come from the transport"
)]
async fn modern(
    state: &AppState,
    http: &HttpRequest,
    principal: Principal,
    scope: Scope,
    id: Value,
    method: String,
    params: Object,
    accepts_sse: bool,
    accepts_json: bool,
) -> HttpResponse {
    let meta = match modern_meta(&params)
        .and_then(|meta| check_headers(http, &method, &params).map(|()| meta))
    {
        Ok(meta) => meta,
        Err(error) => return error_response(Some(&id), &error, Era::Modern),
    };
    if method == "subscriptions/listen" {
        if !accepts_sse {
            let error = McpError::NotAcceptable(
                "subscriptions/listen answers with text/event-stream".into(),
            );
            return error_response(Some(&id), &error, Era::Modern);
        }
        return listen(state, &principal, scope, id, &params).await;
    }
    let stream = exchange::wants_stream(
        Era::Modern,
        &method,
        (accepts_sse, accepts_json),
        &params,
        meta.log_level,
    );
    let request = Request {
        id,
        era: Era::Modern,
        scope,
        principal,
        session: None,
        log_level: meta.log_level,
    };
    exchange::respond(state, request, method, params, stream, Vec::new()).await
}

/// The 2026-07-28 header rules: `MCP-Protocol-Version`, `Mcp-Method` and (for named methods)
/// `Mcp-Name` must be present and match the body.
fn check_headers(http: &HttpRequest, method: &str, params: &Object) -> Result<(), McpError> {
    let version = header_value(http, VERSION_HEADER).ok_or_else(|| {
        McpError::HeaderMismatch("the MCP-Protocol-Version header is required".into())
    })?;
    if version != MODERN_VERSION {
        return Err(McpError::HeaderMismatch(format!(
            "MCP-Protocol-Version header {version:?} does not match _meta protocol version {MODERN_VERSION:?}"
        )));
    }
    let header_method = header_value(http, "mcp-method")
        .ok_or_else(|| McpError::HeaderMismatch("the Mcp-Method header is required".into()))?;
    if header_method != method {
        return Err(McpError::HeaderMismatch(format!(
            "Mcp-Method header value {header_method:?} does not match body method {method:?}"
        )));
    }
    let name_field = match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    };
    if let Some(field) = name_field {
        let raw = header_value(http, "mcp-name").ok_or_else(|| {
            McpError::HeaderMismatch("the Mcp-Name header is required for this method".into())
        })?;
        let header_name = decode_header(raw).ok_or_else(|| {
            McpError::HeaderMismatch("the Mcp-Name header has a malformed base64 value".into())
        })?;
        let body_name = params
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or_default();
        if header_name != body_name {
            return Err(McpError::HeaderMismatch(format!(
                "Mcp-Name header value {header_name:?} does not match body value {body_name:?}"
            )));
        }
    }
    Ok(())
}

/// A legacy `initialize`: negotiates the version and starts a session.
async fn initialize(
    state: &AppState,
    principal: Principal,
    scope: Scope,
    id: Value,
    params: &Object,
    accepts_sse: bool,
    accepts_json: bool,
) -> HttpResponse {
    let version = protocol::negotiate_legacy(params.get("protocolVersion").and_then(Value::as_str));
    let era = Era::Legacy { version };
    let session = match state
        .sessions
        .create(
            scope.clone(),
            &principal.email,
            version,
            params.get("capabilities").cloned().unwrap_or_default(),
        )
        .await
    {
        Ok(session) => session,
        Err(error) => return error_response(Some(&id), &error, era),
    };
    tracing::debug!(mcp.session = %session.id, mcp.version = version, "session started");
    let body = jsonrpc::result(
        &id,
        initialize_result(&state.catalog.current(), &scope, version),
    );
    if accepts_sse && !accepts_json {
        let (sender, receiver) = mpsc::channel(1);
        let _ = sender.try_send(body);
        return sse::response(
            SseBody::new(receiver, None, sse::LONG_LIVED_KEEP_ALIVE),
            &[("Mcp-Session-Id", session.id.clone())],
        );
    }
    HttpResponse::Ok()
        .insert_header(("Mcp-Session-Id", session.id.clone()))
        .json(body)
}

/// The session a legacy request names: required, and it must be live and the caller's.
fn legacy_session(
    state: &AppState,
    http: &HttpRequest,
    principal: &Principal,
    scope: &Scope,
) -> Result<std::sync::Arc<Session>, McpError> {
    let id = header_value(http, SESSION_HEADER).ok_or_else(|| {
        McpError::SessionRequired(
            "send initialize first and pass its Mcp-Session-Id header, or send a 2026-07-28 request with _meta"
                .into(),
        )
    })?;
    let session = state
        .sessions
        .get(id, &principal.email, scope)
        .ok_or_else(|| {
            McpError::SessionNotFound(format!(
                "session {id:?} is unknown or expired; initialize again"
            ))
        })?;
    if let Some(version) = header_value(http, VERSION_HEADER)
        && protocol::legacy_version(version).is_none()
        && version != MODERN_VERSION
    {
        return Err(McpError::InvalidRequest(format!(
            "unsupported MCP-Protocol-Version {version:?}"
        )));
    }
    Ok(session)
}

/// Client notifications: `notifications/cancelled` stops an in-flight request of the session;
/// the rest need no action.
fn notification(
    state: &AppState,
    http: &HttpRequest,
    principal: &Principal,
    scope: &Scope,
    method: &str,
    params: &Object,
) {
    if method != "notifications/cancelled" {
        return;
    }
    let Some(request_id) = params.get("requestId") else {
        return;
    };
    if let Some(session) = header_value(http, SESSION_HEADER)
        .and_then(|id| state.sessions.get(id, &principal.email, scope))
    {
        session.cancel(request_id);
    }
}

/// `subscriptions/listen`: an SSE stream that acknowledges, then carries the opted-in change
/// notifications tagged with the subscription id, until the client closes it.
async fn listen(
    state: &AppState,
    principal: &Principal,
    scope: Scope,
    id: Value,
    params: &Object,
) -> HttpResponse {
    let permit = match state.streams.acquire_shared(&principal.email).await {
        Ok(permit) => permit,
        Err(exceeded) => return error_response(Some(&id), &exceeded.into(), Era::Modern),
    };
    let requested = params
        .get("notifications")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let flag = |name: &str| {
        requested
            .get(name)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    let catalog = state.catalog.current();
    let resource_uris: Vec<String> = requested
        .get("resourceSubscriptions")
        .and_then(Value::as_array)
        .map(|uris| {
            uris.iter()
                .filter_map(Value::as_str)
                .filter(|uri| catalog.resource(&scope, principal, uri).is_some())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let filter = Filter {
        tools: flag("toolsListChanged"),
        prompts: flag("promptsListChanged"),
        resources: flag("resourcesListChanged"),
        resource_uris,
    };
    let mut honored = serde_json::Map::new();
    for (name, on) in [
        ("toolsListChanged", filter.tools),
        ("promptsListChanged", filter.prompts),
        ("resourcesListChanged", filter.resources),
    ] {
        if on {
            honored.insert(name.into(), json!(true));
        }
    }
    if requested.contains_key("resourceSubscriptions") {
        honored.insert("resourceSubscriptions".into(), json!(filter.resource_uris));
    }
    let (sender, receiver) = mpsc::channel(64);
    let ack = jsonrpc::notification(
        "notifications/subscriptions/acknowledged",
        json!({ "_meta": { meta::SUBSCRIPTION_ID: id }, "notifications": honored }),
    );
    let _ = sender.try_send(ack);
    notify::forward(
        state.catalog.subscribe(),
        notify::Listener {
            stream: sender,
            filter,
            session: None,
            subscription_id: Some(id),
            shutdown: state.shutdown.clone(),
        },
    );
    sse::response(
        SseBody::new(receiver, None, sse::LONG_LIVED_KEEP_ALIVE).holding(permit),
        &[],
    )
}

/// The legacy session a GET or DELETE names. Without `Mcp-Session-Id` it is 405 (the modern
/// era has neither); an unknown, expired or foreign session is 404.
fn named_session(
    state: &AppState,
    request: &HttpRequest,
    principal: &Principal,
    server_id: Option<String>,
) -> Result<std::sync::Arc<Session>, Box<HttpResponse>> {
    let scope = admit(state, principal, server_id)?;
    if header_value(request, SESSION_HEADER).is_none() {
        let error = McpError::InvalidRequest(
            "GET and DELETE need an Mcp-Session-Id (2025-11-25 and older); 2026-07-28 uses POST and subscriptions/listen"
                .into(),
        );
        return Err(Box::new(
            HttpResponse::build(StatusCode::METHOD_NOT_ALLOWED)
                .insert_header(("Allow", "POST"))
                .json(jsonrpc::error(None, &error, Era::Modern)),
        ));
    }
    legacy_session(state, request, principal, &scope)
        .map_err(|error| Box::new(error_response(None, &error, transport_era(request))))
}

/// GET: a legacy session's stream of server-initiated notifications. Without a session (the
/// modern era has no GET stream) it is 405.
async fn get(
    state: web::Data<AppState>,
    request: HttpRequest,
    principal: Principal,
    server_id: Option<String>,
) -> HttpResponse {
    let session = match named_session(&state, &request, &principal, server_id) {
        Ok(session) => session,
        Err(response) => return *response,
    };
    if !accepts(&request).0 {
        let error = McpError::NotAcceptable("the GET stream is text/event-stream".into());
        return error_response(
            None,
            &error,
            Era::Legacy {
                version: session.version,
            },
        );
    }
    let era = Era::Legacy {
        version: session.version,
    };
    let permit = match state.streams.acquire_shared(&principal.email).await {
        Ok(permit) => permit,
        Err(exceeded) => return error_response(None, &exceeded.into(), era),
    };
    let (sender, receiver) = mpsc::channel(64);
    session.attach_stream(sender.clone());
    notify::follow_session(&state, session.clone(), sender);
    // Other replicas stop relaying to this replica once the client goes away.
    let on_close = Box::new(move || session.stream_closed());
    sse::response(
        SseBody::new(receiver, Some(on_close), sse::LONG_LIVED_KEEP_ALIVE).holding(permit),
        &[],
    )
}

/// DELETE ends a legacy session.
fn delete(
    state: web::Data<AppState>,
    request: HttpRequest,
    principal: Principal,
    server_id: Option<String>,
) -> HttpResponse {
    match named_session(&state, &request, &principal, server_id) {
        Ok(session) => {
            state.sessions.remove(&session.id);
            HttpResponse::NoContent().finish()
        }
        Err(response) => *response,
    }
}
