//! The registry endpoints, generic over the registry's entities: every entity gets `POST /X`,
//! `GET /X`, `GET|PUT|DELETE /X/{id}` and `POST /X/{id}/toggle`, with the same errors. Thin
//! adapters over [`crate::service::registry`]: parse, call, answer.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, Authenticated};
use crate::service::registry::{self as ops, Managed};

/// The default page size.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// The largest page size.
pub const MAX_PAGE_SIZE: u32 = 500;

/// Query parameters of list endpoints.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Items per page, 1–500 (default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Include disabled items (default false).
    pub include_inactive: Option<bool>,
}

/// Query parameters of `POST /X/{id}/toggle`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ToggleParams {
    /// `true` enables, `false` disables; absent flips the current state.
    pub activate: Option<bool>,
}

/// One page of a list, in a stable order (creation order).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Registers the endpoints of one entity.
pub fn routes<E: Managed>(config: &mut web::ServiceConfig) {
    routes_with_create::<E>(config, web::post().to(create::<E>));
}

/// Registers the endpoints of one entity with its own create route (gateways discover their
/// upstream first).
pub fn routes_with_create<E: Managed>(
    config: &mut web::ServiceConfig,
    create_route: actix_web::Route,
) {
    let collection = format!("/{}", E::PATH);
    let item = format!("/{}/{{id}}", E::PATH);
    let toggle = format!("/{}/{{id}}/toggle", E::PATH);
    config
        .service(
            web::resource(collection)
                .route(create_route)
                .route(web::get().to(list::<E>)),
        )
        .service(
            web::resource(item)
                .route(web::get().to(get::<E>))
                .route(web::put().to(update::<E>))
                .route(web::delete().to(delete::<E>)),
        )
        .service(web::resource(toggle).route(web::post().to(toggle_enabled::<E>)));
}

async fn create<E: Managed>(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    ApiJson(input): ApiJson<E::Create>,
) -> Result<HttpResponse, ApiError> {
    let record = ops::create::<E>(&state.services, &principal, input).await?;
    let location = format!("/{}/{}", E::PATH, E::id(&record));
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(E::view(record)))
}

async fn list<E: Managed>(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    let params = params.into_inner();
    let limit = params.limit.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        return Err(ApiError::BadRequest {
            code: "invalid-limit",
            message: format!("limit must be from 1 to {MAX_PAGE_SIZE}"),
        });
    }
    // `cursor=` (empty) asks for the first page, as no cursor does.
    let after = params
        .cursor
        .as_deref()
        .filter(|cursor| !cursor.is_empty())
        .map(decode_cursor)
        .transpose()?;
    let mut records = ops::list::<E>(
        &state.services,
        &principal,
        after,
        limit,
        params.include_inactive.unwrap_or(false),
    )
    .await?;
    let next_cursor = if records.len() > limit as usize {
        records.truncate(limit as usize);
        records.last().map(|record| encode_cursor(E::id(record)))
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(Page {
        items: records.into_iter().map(E::view).collect(),
        next_cursor,
    }))
}

async fn get<E: Managed>(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let record = ops::get::<E>(&state.services, &principal, &id).await?;
    Ok(HttpResponse::Ok().json(E::view(record)))
}

async fn update<E: Managed>(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    id: web::Path<String>,
    ApiJson(input): ApiJson<E::Update>,
) -> Result<HttpResponse, ApiError> {
    let record = ops::update::<E>(&state.services, &principal, &id, input).await?;
    Ok(HttpResponse::Ok().json(E::view(record)))
}

async fn delete<E: Managed>(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    ops::delete::<E>(&state.services, &principal, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn toggle_enabled<E: Managed>(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    id: web::Path<String>,
    params: web::Query<ToggleParams>,
) -> Result<HttpResponse, ApiError> {
    let record = ops::set_enabled::<E>(&state.services, &principal, &id, params.activate).await?;
    Ok(HttpResponse::Ok().json(E::view(record)))
}

fn encode_cursor(id: &str) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

fn decode_cursor(cursor: &str) -> Result<String, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor.as_bytes())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|id| !id.is_empty() && id.len() <= 64)
        .ok_or_else(|| ApiError::BadRequest {
            code: "invalid-cursor",
            message: "cursor is not one this server issued; start again without a cursor".into(),
        })
}
