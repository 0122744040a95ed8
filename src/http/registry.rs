//! The registry endpoints, generic over the registry's entities: every entity gets `POST /X`,
//! `GET /X`, `GET|PUT|DELETE /X/{id}` and `POST /X/{id}/toggle`, with the same errors. Thin
//! adapters over [`crate::service::registry`]: parse, call, answer. Each operation is
//! documented where it is routed (`#[utoipa::path]`), and the OpenAPI document is collected
//! from the routes ([`super::openapi`]).

use actix_web::http::header;
use actix_web::{HttpResponse, post, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use utoipa_actix_web::service_config::ServiceConfig;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, Authenticated};
use crate::registry::gateways::{GatewayUpdate, GatewayView, Gateways};
use crate::registry::prompts::{PromptCreate, PromptUpdate, PromptView, Prompts};
use crate::registry::resources::{ResourceCreate, ResourceUpdate, ResourceView, Resources};
use crate::registry::servers::{ServerCreate, ServerUpdate, ServerView, Servers};
use crate::registry::tools::{ToolCreate, ToolUpdate, ToolView, Tools};
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

/// Registers the documented endpoints of the five entities.
pub fn routes(config: &mut ServiceConfig) {
    config
        .service(tools::create)
        .service(resources::create)
        .service(prompts::create)
        .service(super::gateways::register)
        .service(servers::create)
        .service(import_openapi);
    tools::routes(config);
    resources::routes(config);
    prompts::routes(config);
    gateways::routes(config);
    servers::routes(config);
}

/// `POST /tools/import/openapi`: an OpenAPI document's operations as REST tools.
#[utoipa::path(
    tag = "tools",
    operation_id = "import_openapi",
    summary = "Import an OpenAPI 3.0/3.1 document as REST tools (again: the tools follow it)",
    request_body = crate::service::openapi::OpenApiImport,
    responses(
        (status = 200, description = "what was created, updated and skipped (with why)", body = crate::service::openapi::ImportReport),
        (status = 400, description = "malformed JSON", body = ErrorBody),
        (status = 403, description = "you may not create tools", body = ErrorBody),
        (status = 413, description = "body too large", body = ErrorBody),
        (status = 422, description = "the document (or its URL, or base_url) is not usable: nothing was stored", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/tools/import/openapi")]
pub async fn import_openapi(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    ApiJson(input): ApiJson<crate::service::openapi::OpenApiImport>,
) -> Result<HttpResponse, ApiError> {
    let report = crate::service::openapi::import(&state.services, &principal, input).await?;
    Ok(HttpResponse::Ok().json(report))
}

/// One entity's operations as concrete handlers over the generic ones below, each with its own
/// `#[utoipa::path]` beside its route attribute: what is served and what is documented are one
/// item. `create` is left out for gateways, whose registration discovers the upstream first
/// (`super::gateways::register`).
macro_rules! entity_endpoints {
    (
        $module:ident: $entity:ident, $noun:tt, $tag:tt,
        $collection:tt, $item:tt, $toggle:tt,
        $update:ident, $view:ident
        $(, create $create:ident)?
    ) => {
        pub mod $module {
            use actix_web::{HttpResponse, delete, get, post, put, web};

            use super::*;

            /// Registers the entity's endpoints but `create`.
            pub fn routes(config: &mut ServiceConfig) {
                config
                    .service(list)
                    .service(get_one)
                    .service(update)
                    .service(remove)
                    .service(toggle);
            }

            $(
            #[utoipa::path(
                tag = $tag,
                operation_id = concat!("create_", $noun),
                summary = concat!("Create a ", $noun),
                request_body = $create,
                responses(
                    (status = 201, description = concat!("the created ", $noun), body = $view),
                    (status = 400, description = "malformed JSON", body = ErrorBody),
                    (status = 409, description = "the name (or URI) is taken", body = ErrorBody),
                    (status = 413, description = "body too large", body = ErrorBody),
                    (status = 422, description = "a field is missing or invalid", body = ErrorBody),
                ),
                security(("bearer" = []))
            )]
            #[post($collection)]
            pub async fn create(
                state: web::Data<AppState>,
                principal: Authenticated,
                input: ApiJson<$create>,
            ) -> Result<HttpResponse, ApiError> {
                super::create::<$entity>(state, principal, input).await
            }
            )?

            #[utoipa::path(
                tag = $tag,
                operation_id = concat!("list_", $tag),
                summary = concat!("List ", $tag, " in creation order"),
                params(ListParams),
                responses(
                    (status = 200, description = "one page", body = Page<$view>),
                    (status = 400, description = "bad limit or cursor", body = ErrorBody),
                ),
                security(("bearer" = []))
            )]
            #[get($collection)]
            async fn list(
                state: web::Data<AppState>,
                principal: Authenticated,
                params: web::Query<ListParams>,
            ) -> Result<HttpResponse, ApiError> {
                super::list::<$entity>(state, principal, params).await
            }

            #[utoipa::path(
                tag = $tag,
                operation_id = concat!("get_", $noun),
                summary = concat!("Get a ", $noun),
                params(("id" = String, Path, description = "the id")),
                responses(
                    (status = 200, description = $noun, body = $view),
                    (status = 404, description = "no such id", body = ErrorBody),
                ),
                security(("bearer" = []))
            )]
            #[get($item)]
            async fn get_one(
                state: web::Data<AppState>,
                principal: Authenticated,
                id: web::Path<String>,
            ) -> Result<HttpResponse, ApiError> {
                super::get::<$entity>(state, principal, id).await
            }

            #[utoipa::path(
                tag = $tag,
                operation_id = concat!("update_", $noun),
                summary = concat!("Update a ", $noun, " (absent fields unchanged)"),
                params(("id" = String, Path, description = "the id")),
                request_body = $update,
                responses(
                    (status = 200, description = concat!("the updated ", $noun), body = $view),
                    (status = 404, description = "no such id", body = ErrorBody),
                    (status = 409, description = "the new name is taken", body = ErrorBody),
                    (status = 422, description = "a field is invalid", body = ErrorBody),
                ),
                security(("bearer" = []))
            )]
            #[put($item)]
            async fn update(
                state: web::Data<AppState>,
                principal: Authenticated,
                id: web::Path<String>,
                input: ApiJson<$update>,
            ) -> Result<HttpResponse, ApiError> {
                super::update::<$entity>(state, principal, id, input).await
            }

            #[utoipa::path(
                tag = $tag,
                operation_id = concat!("delete_", $noun),
                summary = concat!("Delete a ", $noun),
                params(("id" = String, Path, description = "the id")),
                responses(
                    (status = 204, description = "deleted"),
                    (status = 404, description = "no such id", body = ErrorBody),
                ),
                security(("bearer" = []))
            )]
            #[delete($item)]
            async fn remove(
                state: web::Data<AppState>,
                principal: Authenticated,
                id: web::Path<String>,
            ) -> Result<HttpResponse, ApiError> {
                super::delete::<$entity>(state, principal, id).await
            }

            #[utoipa::path(
                tag = $tag,
                operation_id = concat!("toggle_", $noun),
                summary = concat!("Enable or disable a ", $noun),
                params(("id" = String, Path, description = "the id"), ToggleParams),
                responses(
                    (status = 200, description = concat!("the ", $noun), body = $view),
                    (status = 404, description = "no such id", body = ErrorBody),
                ),
                security(("bearer" = []))
            )]
            #[post($toggle)]
            async fn toggle(
                state: web::Data<AppState>,
                principal: Authenticated,
                id: web::Path<String>,
                params: web::Query<ToggleParams>,
            ) -> Result<HttpResponse, ApiError> {
                super::toggle_enabled::<$entity>(state, principal, id, params).await
            }
        }
    };
}

entity_endpoints!(
    tools: Tools, "tool", "tools", "/tools", "/tools/{id}", "/tools/{id}/toggle",
    ToolUpdate, ToolView, create ToolCreate
);
entity_endpoints!(
    resources: Resources, "resource", "resources",
    "/resources", "/resources/{id}", "/resources/{id}/toggle",
    ResourceUpdate, ResourceView, create ResourceCreate
);
entity_endpoints!(
    prompts: Prompts, "prompt", "prompts", "/prompts", "/prompts/{id}", "/prompts/{id}/toggle",
    PromptUpdate, PromptView, create PromptCreate
);
entity_endpoints!(
    gateways: Gateways, "gateway", "gateways",
    "/gateways", "/gateways/{id}", "/gateways/{id}/toggle",
    GatewayUpdate, GatewayView
);
entity_endpoints!(
    servers: Servers, "server", "servers", "/servers", "/servers/{id}", "/servers/{id}/toggle",
    ServerUpdate, ServerView, create ServerCreate
);

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
