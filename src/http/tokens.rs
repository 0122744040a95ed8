//! API tokens over HTTP: `POST /tokens`, `GET /tokens`, `DELETE /tokens/{id}` (revoke) and
//! `POST /auth/logout` (revoke the token in use): thin handlers over
//! [`crate::service::tokens`].

use actix_web::http::header;
use actix_web::{HttpResponse, delete, get, post, web};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, Authenticated};
use super::{AppState, Items};
use crate::service::tokens::{self, TokenCreate, TokenCreated, TokenView};

/// Registers the routes.
pub fn routes(config: &mut ServiceConfig) {
    config
        .service(list)
        .service(create)
        .service(revoke)
        .service(logout);
}

/// `?all=true` (platform admins: everyone's tokens).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Everyone's tokens (`users.manage`).
    all: Option<bool>,
}

/// `POST /tokens` (`tokens.create`, with a sign-in token): a token that can do at most what
/// you can, restricted by its scope.
#[utoipa::path(
    tag = "tokens",
    operation_id = "create_token",
    summary = "Create an API token (tokens.create, signed in); the token is shown once",
    request_body = TokenCreate,
    responses(
        (status = 201, description = "the token and, once, access_token", body = TokenCreated),
        (status = 403, description = "your roles do not allow this", body = ErrorBody),
        (status = 409, description = "you have a token with this name", body = ErrorBody),
        (status = 422, description = "a field is missing or invalid (a password-policy failure names the rule)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/tokens")]
pub async fn create(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    ApiJson(input): ApiJson<TokenCreate>,
) -> Result<HttpResponse, ApiError> {
    let created = tokens::issue(&state.services, &principal, input).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/tokens/{}", created.token.id)))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(created))
}

/// `GET /tokens`: your tokens; `?all=true` everyone's (`users.manage`).
#[utoipa::path(
    tag = "tokens",
    operation_id = "list_tokens",
    summary = "Your API tokens (?all=true: everyone's, users.manage)",
    params(ListQuery),
    responses(
        (status = 200, description = "the tokens", body = Items<TokenView>),
        (status = 403, description = "your roles do not allow this", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[get("/tokens")]
pub async fn list(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let items = tokens::list(&state.services, &principal, query.all.unwrap_or(false)).await?;
    Ok(HttpResponse::Ok().json(Items { items }))
}

/// `DELETE /tokens/{id}`: revoke one of your tokens (anyone's with `users.manage`).
#[utoipa::path(
    tag = "tokens",
    operation_id = "revoke_token",
    summary = "Revoke an API token (refused at once here, within TOKEN_REVOCATION_REFRESH_SECONDS elsewhere)",
    responses(
        (status = 204, description = "revoked"),
        (status = 404, description = "no such user or team (or not one you may see)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[delete("/tokens/{id}")]
pub async fn revoke(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    tokens::revoke(&state.services, &principal, &id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /auth/logout`: the token of this request stops working.
#[utoipa::path(
    tag = "auth",
    operation_id = "logout",
    summary = "Revoke the token of this request",
    responses(
        (status = 204, description = "signed out"),
    ),
    security(("bearer" = []))
)]
#[post("/auth/logout")]
pub async fn logout(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<HttpResponse, ApiError> {
    tokens::sign_out(&state.services, &principal).await?;
    let mut expired = actix_web::cookie::Cookie::build(super::identity::SESSION_COOKIE, "")
        .path("/admin")
        .http_only(true)
        .finish();
    expired.make_removal();
    Ok(HttpResponse::NoContent().cookie(expired).finish())
}
