//! `POST /gateways` (register an upstream MCP server), `POST /gateways/{id}/refresh` (discover
//! again what it offers), `GET /gateways/{id}/health` and `POST /gateways/{id}/test` (a ping):
//! thin handlers over [`crate::service::gateways`].

use actix_web::http::header;
use actix_web::{HttpResponse, get, post, web};

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, Authenticated};
use crate::registry::gateways::GatewayCreate;
use crate::service::gateways::{self, GatewayDiscovered};

/// `POST /gateways`.
#[utoipa::path(
    tag = "gateways",
    operation_id = "create_gateway",
    summary = "Register an upstream MCP server: discover what it offers and federate it",
    request_body = GatewayCreate,
    responses(
        (status = 201, description = "the gateway and what it offers", body = GatewayDiscovered),
        (status = 400, description = "malformed JSON", body = ErrorBody),
        (status = 409, description = "the name, or a discovered name, is taken", body = ErrorBody),
        (status = 413, description = "body too large", body = ErrorBody),
        (status = 422, description = "a field is missing or invalid", body = ErrorBody),
        (status = 502, description = "the upstream could not be reached, or what it offers breaks a bound or (strict mode) a check", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/gateways")]
pub async fn register(
    state: web::Data<AppState>,
    request: actix_web::HttpRequest,
    Authenticated(principal): Authenticated,
    ApiJson(input): ApiJson<GatewayCreate>,
) -> Result<HttpResponse, ApiError> {
    let (scheme, host) = super::public_origin(&request);
    let origin = format!("{scheme}://{host}");
    let registered = gateways::register(&state.services, &principal, input, Some(&origin)).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/gateways/{}", registered.gateway.id),
        ))
        .json(registered))
}

/// `POST /gateways/{id}/refresh`: discover again and update what is federated.
#[utoipa::path(
    tag = "gateways",
    operation_id = "refresh_gateway",
    summary = "Discover the upstream again and update what is federated",
    responses(
        (status = 200, description = "the gateway and what it now offers", body = GatewayDiscovered),
        (status = 404, description = "no such id", body = ErrorBody),
        (status = 409, description = "a discovered name clashes", body = ErrorBody),
        (status = 502, description = "the upstream could not be reached, or what it offers breaks a bound (it is marked degraded; what it offered before is still served)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/gateways/{id}/refresh")]
pub async fn refresh(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let refreshed = gateways::refresh(&state.services, &principal, &id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(refreshed))
}

/// `GET /gateways/{id}/health`: state, last error, breaker, call latency and a 24-hour strip.
#[utoipa::path(
    tag = "gateways",
    operation_id = "gateway_health",
    summary = "An upstream's health: state, last error and when, breaker, latency, the last 24 hours",
    responses(
        (status = 200, description = "the upstream's health", body = gateways::GatewayHealth),
        (status = 404, description = "no such id (or not one you may see)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[get("/gateways/{id}/health")]
pub async fn health(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let health = gateways::health(&state.services, &principal, &id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(health))
}

/// `POST /gateways/{id}/test`: ping the upstream now, without discovering it again.
#[utoipa::path(
    tag = "gateways",
    operation_id = "test_gateway",
    summary = "Test the connection to an upstream (a ping; no discovery): whether it answered and how fast",
    responses(
        (status = 200, description = "whether it answered, the latency, and why not", body = gateways::ConnectionTest),
        (status = 403, description = "you may not change this gateway", body = ErrorBody),
        (status = 404, description = "no such id (or not one you may see)", body = ErrorBody),
        (status = 409, description = "the gateway is disabled", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/gateways/{id}/test")]
pub async fn test(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tested = gateways::test_connection(&state.services, &principal, &id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(tested))
}
