//! The audit trail over HTTP: `GET /audit` (`audit.read`), a thin handler over
//! [`crate::service::audit`].

use actix_web::{HttpResponse, get, web};
use utoipa_actix_web::service_config::ServiceConfig;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::Authenticated;
use crate::service::audit::{self, AuditPage, AuditQuery};

/// Registers the routes.
pub fn routes(config: &mut ServiceConfig) {
    config.service(search);
}

/// `GET /audit`: the audit trail, newest first, filtered.
#[utoipa::path(
    tag = "audit",
    operation_id = "search_audit",
    summary = "The audit trail: every change to the registry, identities and tokens, and every sign-in (audit.read, platform admins)",
    params(AuditQuery),
    responses(
        (status = 200, description = "one page of entries, newest first; secrets masked", body = AuditPage),
        (status = 400, description = "a query parameter is malformed (a time that is not RFC 3339)", body = ErrorBody),
        (status = 403, description = "your roles do not grant audit.read", body = ErrorBody),
        (status = 422, description = "a parameter is out of range", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[get("/audit")]
pub async fn search(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = audit::search(&state.services, &principal, query.into_inner()).await?;
    Ok(HttpResponse::Ok().json(page))
}
