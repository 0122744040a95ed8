//! MCP over HTTP: Streamable HTTP (`/mcp`, `/servers/{id}/mcp`; both eras), the legacy
//! HTTP+SSE transport (`/sse`, `/servers/{id}/sse` + `.../message`), and plain JSON-RPC
//! (`/rpc`). Every endpoint checks `Origin`/`Host` (DNS-rebinding protection) and requires a
//! bearer token.

mod exchange;
mod legacy;
mod notify;
mod rpc;
pub mod sse;
mod streamable;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde_json::Value;

use super::AppState;
use crate::catalog::Scope;
use crate::config::McpSettings;
use crate::mcp::error::McpError;
use crate::mcp::{Era, jsonrpc};

/// Registers the MCP endpoints.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(
            web::resource("/mcp")
                .route(web::post().to(streamable::post_all))
                .route(web::get().to(streamable::get_all))
                .route(web::delete().to(streamable::delete_all)),
        )
        .service(
            web::resource("/servers/{id}/mcp")
                .route(web::post().to(streamable::post_server))
                .route(web::get().to(streamable::get_server))
                .route(web::delete().to(streamable::delete_server)),
        )
        .service(web::resource("/sse").route(web::get().to(legacy::sse_all)))
        .service(web::resource("/servers/{id}/sse").route(web::get().to(legacy::sse_server)))
        .service(web::resource("/message").route(web::post().to(legacy::message_all)))
        .service(
            web::resource("/servers/{id}/message").route(web::post().to(legacy::message_server)),
        )
        .service(web::resource("/rpc").route(web::post().to(rpc::post)));
}

/// A JSON-RPC error response with the era's HTTP status.
pub(crate) fn error_response(id: Option<&Value>, error: &McpError, era: Era) -> HttpResponse {
    let mut response = HttpResponse::build(error.http_status(era));
    if let McpError::Unavailable { retry_after } = error {
        response.insert_header((
            header::RETRY_AFTER,
            retry_after.as_secs().max(1).to_string(),
        ));
    }
    response.json(jsonrpc::error(id, error, era))
}

/// Why a request is turned away before it is read.
pub(crate) enum Refusal {
    /// `Origin` or `Host` not allowed: 403.
    Forbidden(String),
    /// No such (visible) virtual server: 404.
    UnknownServer(String),
}

impl Refusal {
    /// The response: the HTTP status with a JSON-RPC error that has no id.
    pub(crate) fn response(self) -> HttpResponse {
        let (status, message) = match self {
            Refusal::Forbidden(message) => (StatusCode::FORBIDDEN, message),
            Refusal::UnknownServer(id) => (
                StatusCode::NOT_FOUND,
                format!("no MCP server with id {id:?}"),
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
pub(crate) fn check_origin_and_host(
    request: &HttpRequest,
    settings: &McpSettings,
) -> Result<(), Refusal> {
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
/// unknown (or hidden) server is "not found".
pub(crate) fn resolve_scope(state: &AppState, server_id: Option<String>) -> Result<Scope, Refusal> {
    match server_id {
        None => Ok(Scope::All),
        Some(id) if state.catalog.current().server(&id).is_some() => Ok(Scope::Server(id)),
        Some(id) => Err(Refusal::UnknownServer(id)),
    }
}

/// Both checks every MCP endpoint makes first.
pub(crate) fn admit(
    state: &AppState,
    request: &HttpRequest,
    server_id: Option<String>,
) -> Result<Scope, Box<HttpResponse>> {
    let refuse = |refusal: Refusal| Box::new(refusal.response());
    check_origin_and_host(request, &state.mcp_settings).map_err(refuse)?;
    resolve_scope(state, server_id).map_err(refuse)
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
