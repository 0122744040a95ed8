//! API tokens over HTTP: `POST /tokens`, `GET /tokens`, `DELETE /tokens/{id}` (revoke) and
//! `POST /auth/logout` (revoke the token in use): thin handlers over
//! [`crate::service::tokens`].

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, Authenticated};
use crate::service::tokens::{self, TokenCreate};

/// Registers the routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(
            web::resource("/tokens")
                .route(web::get().to(list))
                .route(web::post().to(create)),
        )
        .service(web::resource("/tokens/{id}").route(web::delete().to(revoke)))
        .service(web::resource("/auth/logout").route(web::post().to(logout)));
}

/// `?all=true` (platform admins: everyone's tokens).
#[derive(Deserialize)]
pub struct ListQuery {
    all: Option<bool>,
}

/// `POST /tokens` (`tokens.create`, with a sign-in token): a token that can do at most what
/// you can, restricted by its scope.
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
pub async fn list(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let items = tokens::list(&state.services, &principal, query.all.unwrap_or(false)).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}

/// `DELETE /tokens/{id}`: revoke one of your tokens (anyone's with `users.manage`).
pub async fn revoke(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    tokens::revoke(&state.services, &principal, &id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /auth/logout`: the token of this request stops working.
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
