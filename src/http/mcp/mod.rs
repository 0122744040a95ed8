//! MCP over HTTP: Streamable HTTP (`/mcp`, `/servers/{id}/mcp`; both eras), the legacy
//! HTTP+SSE transport (`/sse`, `/servers/{id}/sse` + `.../message`), and plain JSON-RPC
//! (`/rpc`). Every endpoint checks `Origin`/`Host` first (DNS-rebinding protection, a
//! middleware that runs before authentication) and requires a bearer token.

mod exchange;
mod legacy;
mod notify;
mod rpc;
pub mod sse;
mod streamable;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::middleware::{Next, from_fn};
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde_json::Value;

use super::AppState;
use crate::auth::{Denied, On, Principal};
use crate::catalog::Scope;
use crate::config::McpSettings;
use crate::mcp::error::McpError;
use crate::mcp::jsonrpc;
use crate::protocol::Era;

/// Registers the MCP endpoints.
pub fn routes(config: &mut web::ServiceConfig) {
    let guarded = |path: &str| web::resource(path).wrap(from_fn(origin_guard));
    config
        .service(
            guarded("/mcp")
                .route(web::post().to(streamable::post_all))
                .route(web::get().to(streamable::get_all))
                .route(web::delete().to(streamable::delete_all)),
        )
        .service(
            guarded("/servers/{id}/mcp")
                .route(web::post().to(streamable::post_server))
                .route(web::get().to(streamable::get_server))
                .route(web::delete().to(streamable::delete_server)),
        )
        .service(guarded("/sse").route(web::get().to(legacy::sse_all)))
        .service(guarded("/servers/{id}/sse").route(web::get().to(legacy::sse_server)))
        .service(guarded("/message").route(web::post().to(legacy::message_all)))
        .service(guarded("/servers/{id}/message").route(web::post().to(legacy::message_server)))
        .service(guarded("/rpc").route(web::post().to(rpc::post)));
}

/// DNS-rebinding protection before anything else, authentication included: a request whose
/// `Origin` or `Host` is not allowed gets 403 and never reaches a handler (so a page on a
/// rebound name learns nothing, not even whether a token would be needed).
async fn origin_guard(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let refusal = match request.app_data::<web::Data<AppState>>() {
        Some(state) => check_origin_and_host(request.request(), &state.mcp_settings).err(),
        None => {
            tracing::error!("application state missing");
            return Err(actix_web::error::ErrorInternalServerError("misconfigured"));
        }
    };
    match refusal {
        Some(refusal) => Ok(request
            .into_response(refusal.response())
            .map_into_right_body()),
        None => next
            .call(request)
            .await
            .map(ServiceResponse::map_into_left_body),
    }
}

/// Calls a tool the way `tools/call` on `/mcp` would (same visibility, permissions, upstream
/// path and metrics), for the console's test-run; returns the result or the protocol error.
pub(crate) async fn call_tool(
    state: &AppState,
    principal: Principal,
    name: &str,
    arguments: Value,
) -> Result<crate::mcp::methods::Object, McpError> {
    let mut params = crate::mcp::methods::Object::new();
    params.insert("name".into(), Value::String(name.to_owned()));
    params.insert("arguments".into(), arguments);
    let request = exchange::Request {
        id: Value::from(0),
        era: Era::Legacy {
            version: crate::protocol::LEGACY_VERSIONS[0],
        },
        scope: Scope::All,
        principal,
        session: None,
        log_level: None,
    };
    let ctx = exchange::context(state, &request, &params, None);
    crate::mcp::methods::dispatch(&ctx, None, "tools/call", params)
        .await
        .map(crate::protocol::Reply::into_object)
}

/// A JSON-RPC error response with the era's HTTP status.
pub(crate) fn error_response(id: Option<&Value>, error: &McpError, era: Era) -> HttpResponse {
    let mut response = HttpResponse::build(error.http_status(era));
    if let McpError::Unavailable { retry_after } | McpError::Quota { retry_after, .. } = error {
        response.insert_header((
            header::RETRY_AFTER,
            retry_after.as_secs().max(1).to_string(),
        ));
    }
    response.json(jsonrpc::error(id, error, era))
}

/// Why a request is turned away before it is read.
enum Refusal {
    /// `Origin` or `Host` not allowed: 403.
    Forbidden(String),
    /// No such (visible) virtual server: 404.
    UnknownServer(String),
    /// The token is restricted to another virtual server: 404.
    NotForThisToken,
}

impl Refusal {
    /// The response: the HTTP status with a JSON-RPC error that has no id.
    fn response(self) -> HttpResponse {
        let (status, message) = match self {
            Refusal::Forbidden(message) => (StatusCode::FORBIDDEN, message),
            Refusal::UnknownServer(id) => (
                StatusCode::NOT_FOUND,
                format!("no MCP server with id {id:?}"),
            ),
            Refusal::NotForThisToken => (
                StatusCode::NOT_FOUND,
                "not found: this token works only on the endpoints of the virtual server it is restricted to".into(),
            ),
        };
        HttpResponse::build(status).json(jsonrpc::error(
            None,
            &McpError::InvalidRequest(message),
            Era::Modern,
        ))
    }
}

/// Refuses requests whose `Origin` or `Host` is not allowed (DNS rebinding protection).
fn check_origin_and_host(request: &HttpRequest, settings: &McpSettings) -> Result<(), Refusal> {
    let forbidden = Refusal::Forbidden;
    if let Some(origin) = request.headers().get(header::ORIGIN) {
        let allowed = origin
            .to_str()
            .ok()
            .and_then(|origin| url::Url::parse(origin).ok())
            .and_then(|origin| {
                origin
                    .host_str()
                    .map(|host| settings.allowed_origins.allows(host))
            })
            .unwrap_or(false);
        if !allowed {
            return Err(forbidden(
                "this Origin is not allowed to use the MCP endpoint (see ALLOWED_ORIGINS)".into(),
            ));
        }
    }
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            request
                .uri()
                .authority()
                .map(|authority| authority.to_string())
        });
    if let Some(host) = host {
        let name = match host.rsplit_once(':') {
            Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
            _ => host.as_str(),
        };
        if !settings.allowed_hosts.allows(name) {
            return Err(forbidden(format!(
                "requests for host {name:?} are not served here (see ALLOWED_HOSTS)"
            )));
        }
    }
    Ok(())
}

/// Reads the body up to `limit` bytes.
pub(crate) async fn read_body(mut payload: web::Payload, limit: usize) -> Result<Bytes, McpError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|error| {
            McpError::InvalidRequest(format!("the body could not be read: {error}"))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(McpError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The scope of a path: a virtual server that exists and is enabled, or everything. An
/// unknown (or hidden) server is "not found", as a ready response; so is every endpoint but
/// its server's for a token restricted to one server. Using MCP needs `servers.use`.
pub(crate) fn admit(
    state: &AppState,
    principal: &Principal,
    server_id: Option<String>,
) -> Result<Scope, Box<HttpResponse>> {
    if let Some(only) = principal.server_restriction()
        && server_id.as_deref() != Some(only)
    {
        return Err(Box::new(Refusal::NotForThisToken.response()));
    }
    match server_id {
        None => match principal.authorize("servers.use", On::Platform) {
            Ok(()) => Ok(Scope::All),
            Err(refused) => Err(Box::new(Refusal::Forbidden(refused.to_string()).response())),
        },
        Some(id) => {
            let catalog = state.catalog.current();
            let decision = catalog
                .server(&id)
                .map(|server| principal.authorize("servers.use", On::Item(&server.access)));
            match decision {
                Some(Ok(())) => Ok(Scope::Server(id)),
                Some(Err(refused @ (Denied::Role { .. } | Denied::TokenScope { .. }))) => {
                    Err(Box::new(Refusal::Forbidden(refused.to_string()).response()))
                }
                _ => Err(Box::new(Refusal::UnknownServer(id).response())),
            }
        }
    }
}

/// Whether the client accepts an SSE response, and whether it accepts JSON.
pub(crate) fn accepts(request: &HttpRequest) -> (bool, bool) {
    let accept = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("*/*")
        .to_ascii_lowercase();
    let any = accept.contains("*/*");
    (
        any || accept.contains("text/event-stream"),
        any || accept.contains("application/json") || accept.contains("application/*"),
    )
}

/// A header's value as a string.
pub(crate) fn header_value<'a>(request: &'a HttpRequest, name: &str) -> Option<&'a str> {
    request
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
}
