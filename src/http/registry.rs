//! The registry endpoints, generic over [`Entity`]: every entity gets `POST /X`, `GET /X`,
//! `GET|PUT|DELETE /X/{id}` and `POST /X/{id}/toggle`, with the same errors.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, Authenticated};
use crate::auth::{Denied, On, Principal};
use crate::db::UnitOfWork;
use crate::db::registry::{
    DeleteRecord, GetRecord, HasId, InsertRecord, ListRecords, SetRecordEnabled, UpdateRecord,
    Viewer,
};
use crate::db::{WorkError, now};
use crate::registry::{Change, Entity};

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
pub fn routes<E: Entity>(config: &mut web::ServiceConfig)
where
    InsertRecord<E::Record>: UnitOfWork<Output = E::Record>,
    GetRecord<E::Record>: UnitOfWork<Output = E::Record>,
    ListRecords<E::Record>: UnitOfWork<Output = Vec<E::Record>>,
    UpdateRecord<E::Record>: UnitOfWork<Output = E::Record>,
    DeleteRecord<E::Record>: UnitOfWork<Output = ()>,
    SetRecordEnabled<E::Record>: UnitOfWork<Output = E::Record>,
{
    routes_with_create::<E>(config, web::post().to(create::<E>));
}

/// Registers the endpoints of one entity with its own create route (gateways discover their
/// upstream first).
pub fn routes_with_create<E: Entity>(
    config: &mut web::ServiceConfig,
    create_route: actix_web::Route,
) where
    InsertRecord<E::Record>: UnitOfWork<Output = E::Record>,
    GetRecord<E::Record>: UnitOfWork<Output = E::Record>,
    ListRecords<E::Record>: UnitOfWork<Output = Vec<E::Record>>,
    UpdateRecord<E::Record>: UnitOfWork<Output = E::Record>,
    DeleteRecord<E::Record>: UnitOfWork<Output = ()>,
    SetRecordEnabled<E::Record>: UnitOfWork<Output = E::Record>,
{
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

async fn create<E: Entity>(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    ApiJson(input): ApiJson<E::Create>,
) -> Result<HttpResponse, ApiError>
where
    InsertRecord<E::Record>: UnitOfWork<Output = E::Record>,
{
    let record = create_record::<E>(&state, &principal, input).await?;
    let location = format!("/{}/{}", E::PATH, record.id());
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(E::view(record)))
}

async fn list<E: Entity>(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError>
where
    ListRecords<E::Record>: UnitOfWork<Output = Vec<E::Record>>,
{
    allowed::<E>(&principal, "read")?;
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
    let mut records = state
        .db
        .run(ListRecords::<E::Record>::new(
            after,
            i64::from(limit) + 1,
            params.include_inactive.unwrap_or(false),
            viewer(&principal),
        ))
        .await
        .map_err(|error| map_db::<E>(error, None))?;
    let next_cursor = if records.len() > limit as usize {
        records.truncate(limit as usize);
        records.last().map(|record| encode_cursor(record.id()))
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(Page {
        items: records.into_iter().map(E::view).collect(),
        next_cursor,
    }))
}

async fn get<E: Entity>(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError>
where
    GetRecord<E::Record>: UnitOfWork<Output = E::Record>,
{
    let record = authorized::<E>(&state, &principal, &id, "read").await?;
    Ok(HttpResponse::Ok().json(E::view(record)))
}

async fn update<E: Entity>(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    id: web::Path<String>,
    ApiJson(input): ApiJson<E::Update>,
) -> Result<HttpResponse, ApiError>
where
    UpdateRecord<E::Record>: UnitOfWork<Output = E::Record>,
    GetRecord<E::Record>: UnitOfWork<Output = E::Record>,
{
    let record = update_record::<E>(&state, &principal, &id, input).await?;
    Ok(HttpResponse::Ok().json(E::view(record)))
}

async fn delete<E: Entity>(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError>
where
    DeleteRecord<E::Record>: UnitOfWork<Output = ()>,
    GetRecord<E::Record>: UnitOfWork<Output = E::Record>,
{
    delete_record::<E>(&state, &principal, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn toggle_enabled<E: Entity>(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    id: web::Path<String>,
    params: web::Query<ToggleParams>,
) -> Result<HttpResponse, ApiError>
where
    SetRecordEnabled<E::Record>: UnitOfWork<Output = E::Record>,
    GetRecord<E::Record>: UnitOfWork<Output = E::Record>,
{
    let record = set_enabled::<E>(&state, &principal, &id, params.activate).await?;
    Ok(HttpResponse::Ok().json(E::view(record)))
}

/// Creates a record as `principal` (the checks of `POST /X`), then refreshes the catalog.
pub(crate) async fn create_record<E: Entity>(
    state: &AppState,
    principal: &Principal,
    input: E::Create,
) -> Result<E::Record, ApiError>
where
    InsertRecord<E::Record>: UnitOfWork<Output = E::Record>,
{
    allowed::<E>(principal, "create")?;
    let change = Change {
        actor_email: &principal.email,
        now: now(),
        secrets: &state.secrets,
    };
    let record = E::create(input, &change)?;
    may_create::<E>(principal, &record)?;
    if let Some(url) = E::egress_url(&record) {
        egress_allows(state, url).await?;
    }
    let record = state
        .db
        .run(InsertRecord { record })
        .await
        .map_err(|error| map_db::<E>(error, None))?;
    state.catalog.refresh().await;
    Ok(record)
}

/// Applies an update as `principal` (the checks of `PUT /X/{id}`, including a move to another
/// team), then refreshes the catalog.
pub(crate) async fn update_record<E: Entity>(
    state: &AppState,
    principal: &Principal,
    id: &str,
    input: E::Update,
) -> Result<E::Record, ApiError>
where
    UpdateRecord<E::Record>: UnitOfWork<Output = E::Record>,
    GetRecord<E::Record>: UnitOfWork<Output = E::Record>,
{
    authorized::<E>(state, principal, id, "update").await?;
    if let Some(url) = E::egress_url_of_update(&input) {
        egress_allows(state, url).await?;
    }
    let input = Arc::new(input);
    let actor_email = principal.email.clone();
    let changed_at = now();
    let mover = principal.clone();
    let secrets = state.secrets.clone();
    let apply = move |stored: E::Record| {
        let change = Change {
            actor_email: &actor_email,
            now: changed_at,
            secrets: &secrets,
        };
        let before = stored.ownership().team_id;
        let changed = E::update(stored, &input, &change)
            .map_err(|invalid| WorkError::rejected(invalid.field, invalid.message))?;
        // Moving it to another team: one of yours, where you may change such items.
        let after = changed.ownership().team_id;
        if after != before
            && let Some(team) = &after
            && let Err(refused) =
                mover.authorize(&format!("{}.update", E::PATH), On::NewItem(Some(team)))
        {
            return Err(WorkError::rejected("team_id", refused.to_string()));
        }
        Ok(changed)
    };
    let record = state
        .db
        .run(UpdateRecord {
            id: id.to_owned(),
            apply: Arc::new(apply),
        })
        .await
        .map_err(|error| map_db::<E>(error, Some(id)))?;
    state.catalog.refresh().await;
    Ok(record)
}

/// Deletes a record as `principal` (the checks of `DELETE /X/{id}`); returns what was deleted.
pub(crate) async fn delete_record<E: Entity>(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> Result<E::Record, ApiError>
where
    DeleteRecord<E::Record>: UnitOfWork<Output = ()>,
    GetRecord<E::Record>: UnitOfWork<Output = E::Record>,
{
    let record = authorized::<E>(state, principal, id, "delete").await?;
    state
        .db
        .run(DeleteRecord::<E::Record>::new(id.to_owned()))
        .await
        .map_err(|error| map_db::<E>(error, Some(id)))?;
    state.catalog.refresh().await;
    Ok(record)
}

/// Enables or disables a record as `principal` (`None` flips it).
pub(crate) async fn set_enabled<E: Entity>(
    state: &AppState,
    principal: &Principal,
    id: &str,
    activate: Option<bool>,
) -> Result<E::Record, ApiError>
where
    SetRecordEnabled<E::Record>: UnitOfWork<Output = E::Record>,
    GetRecord<E::Record>: UnitOfWork<Output = E::Record>,
{
    authorized::<E>(state, principal, id, "update").await?;
    let record = state
        .db
        .run(SetRecordEnabled::<E::Record>::new(id.to_owned(), activate))
        .await
        .map_err(|error| map_db::<E>(error, Some(id)))?;
    state.catalog.refresh().await;
    Ok(record)
}

/// Refuses a URL the egress policy would refuse to connect to (422 naming the rule); every
/// connection is checked again when it is made.
async fn egress_allows(state: &AppState, url: &str) -> Result<(), ApiError> {
    state
        .settings
        .federation
        .egress
        .check_url_now(url.trim())
        .await
        .map_err(|denied| ApiError::InvalidField {
            field: "url".into(),
            message: denied.to_string(),
        })
}

/// Refuses a new record in a team the principal does not belong to (422) or may not create
/// in (403).
pub(crate) fn may_create<E: Entity>(
    principal: &Principal,
    record: &E::Record,
) -> Result<(), ApiError> {
    let team = record.ownership().team_id;
    match principal.authorize(&format!("{}.create", E::PATH), On::NewItem(team.as_deref())) {
        Ok(()) => Ok(()),
        Err(Denied::NotMember { .. }) => Err(ApiError::InvalidField {
            field: "team_id".into(),
            message: "you are not a member of this team".into(),
        }),
        Err(denied) => Err(ApiError::from_auth(denied.into())),
    }
}

/// What a principal's lists show: everything for platform admins, else what they may see.
pub(crate) fn viewer(principal: &Principal) -> Option<Viewer> {
    (!principal.sees_every_item()).then(|| Viewer {
        email: principal.email.clone(),
        teams: principal.team_ids().map(str::to_owned).collect(),
    })
}

/// Loads the record `id` if the principal may see it (else 404, as if it did not exist) and
/// may `action` it in its team (else 403).
pub(crate) async fn authorized<E: Entity>(
    state: &AppState,
    principal: &Principal,
    id: &str,
    action: &str,
) -> Result<E::Record, ApiError>
where
    GetRecord<E::Record>: UnitOfWork<Output = E::Record>,
{
    allowed::<E>(principal, action)?;
    let record = state
        .db
        .run(GetRecord::<E::Record>::new(id.to_owned()))
        .await
        .map_err(|error| map_db::<E>(error, Some(id)))?;
    let ownership = record.ownership();
    match principal.authorize(&format!("{}.{action}", E::PATH), On::Item(&ownership)) {
        Ok(()) => {}
        Err(Denied::NotVisible) => {
            return Err(map_db::<E>(crate::actors::db::DbError::NotFound, Some(id)));
        }
        Err(Denied::NotOwner { owner }) => {
            return Err(ApiError::from_auth(crate::auth::AuthError::Forbidden(
                format!(
                    "this {} belongs to {owner}; only its owner, its team or a platform admin may change it",
                    E::NOUN,
                ),
            )));
        }
        Err(denied) => return Err(ApiError::from_auth(denied.into())),
    }
    Ok(record)
}

/// Refuses unless the principal's roles grant `<entity>.<action>` (`tools.create`, …).
pub fn allowed<E: Entity>(principal: &Principal, action: &str) -> Result<(), ApiError> {
    principal
        .authorize(&format!("{}.{action}", E::PATH), On::Anywhere)
        .map_err(|denied| ApiError::from_auth(denied.into()))
}

/// Maps a database error for an entity (conflicts get the entity's message).
pub fn map_db<E: Entity>(error: crate::actors::db::DbError, id: Option<&str>) -> ApiError {
    match error {
        crate::actors::db::DbError::Conflict { constraint } => {
            ApiError::Conflict(E::conflict_message(&constraint))
        }
        other => ApiError::from_db(other, E::NOUN, id),
    }
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
