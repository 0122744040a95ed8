//! `POST /rpc`: plain JSON-RPC, one request and one JSON response, no session. A request with
//! modern `_meta` is served as 2026-07-28; anything else statelessly as 2025-11-25.

use actix_web::{HttpResponse, web};

use super::exchange::{self, Request};
use super::{error_response, read_body};
use crate::http::AppState;
use crate::http::extract::McpAuthenticated;
use crate::mcp::jsonrpc::{self, Incoming};
use crate::mcp::methods::initialize_result;
use crate::mcp::protocol::{has_modern_meta, modern_meta};
use crate::protocol::{self, Era, LEGACY_VERSIONS};

pub async fn post(
    state: web::Data<AppState>,
    auth: McpAuthenticated,
    payload: web::Payload,
) -> HttpResponse {
    let legacy = Era::Legacy {
        version: LEGACY_VERSIONS[0],
    };
    let scope = match super::admit(&state, &auth.0, None) {
        Ok(scope) => scope,
        Err(response) => return *response,
    };
    let body = match read_body(payload, state.settings.max_request_body_bytes).await {
        Ok(body) => body,
        Err(error) => return error_response(None, &error, legacy),
    };
    let (id, method, params) = match jsonrpc::parse(&body) {
        Ok(Incoming::Request { id, method, params }) => (id, method, params),
        Ok(Incoming::Notification { .. } | Incoming::Response(_)) => {
            return HttpResponse::Accepted().finish();
        }
        Err(error) => return error_response(None, &error, legacy),
    };
    let (era, log_level) = if has_modern_meta(&params) {
        match modern_meta(&params) {
            Ok(meta) => (Era::Modern, meta.log_level),
            Err(error) => return error_response(Some(&id), &error, Era::Modern),
        }
    } else {
        (legacy, None)
    };
    if method == "initialize" && era != Era::Modern {
        let version = protocol::negotiate_legacy(
            params
                .get("protocolVersion")
                .and_then(serde_json::Value::as_str),
        );
        let result = initialize_result(&state.catalog.current(), &scope, version);
        return HttpResponse::Ok().json(jsonrpc::result(&id, result));
    }
    let request = Request {
        id,
        era,
        scope,
        principal: auth.0,
        session: None,
        log_level,
    };
    exchange::respond(&state, request, method, params, false, Vec::new()).await
}
