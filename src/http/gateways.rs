//! `POST /gateways` (register an upstream MCP server) and `POST /gateways/{id}/refresh`
//! (discover again what it offers): thin handlers over [`crate::service::gateways`].

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, Authenticated};
use crate::registry::gateways::GatewayCreate;
use crate::service::gateways;

/// `POST /gateways`.
pub async fn register(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    ApiJson(input): ApiJson<GatewayCreate>,
) -> Result<HttpResponse, ApiError> {
    let registered = gateways::register(&state.services, &principal, input).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/gateways/{}", registered.gateway.id),
        ))
        .json(registered))
}

/// `POST /gateways/{id}/refresh`: discover again and update what is federated.
pub async fn refresh(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let refreshed = gateways::refresh(&state.services, &principal, &id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(refreshed))
}
