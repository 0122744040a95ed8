//! API tokens: `POST /tokens` (shown once, stored as a SHA-256 hash, its scope signed into it),
//! `GET /tokens`, `DELETE /tokens/{id}` (revoke), and `POST /auth/logout` (revoke the token in
//! use). A revoked token is refused at once on this replica and within
//! `TOKEN_REVOCATION_REFRESH_SECONDS` on the others.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, Authenticated};
use crate::actors::db::DbError;
use crate::auth::scope::{TimeWindow, TokenScope};
use crate::auth::{AuthError, On};
use crate::db::tokens::{ApiTokenRow, InsertToken, ListTokens, RevokeJti, RevokeToken};
use crate::registry::validate::{invalid, required_text};

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

/// `POST /tokens`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenCreate {
    /// A name, unique among your tokens.
    pub name: String,
    /// Days until it expires (1–3650, default 30).
    #[serde(default)]
    pub expires_in_days: Option<u32>,
    /// Restrictions (absent: the token can do what you can).
    #[serde(default)]
    pub scope: Option<TokenScope>,
}

/// A token as listed (never the token itself).
#[derive(Serialize, ToSchema)]
pub struct TokenView {
    /// Its id (`DELETE /tokens/{id}` revokes it).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Whose it is.
    pub owner_email: String,
    /// Its restrictions.
    pub scope: TokenScope,
    /// When it expires.
    pub expires_at: Option<chrono::NaiveDateTime>,
    /// When it was created.
    pub created_at: chrono::NaiveDateTime,
    /// When it was revoked, if it was.
    pub revoked_at: Option<chrono::NaiveDateTime>,
}

/// A new token: the only time `access_token` is shown.
#[derive(Serialize, ToSchema)]
pub struct TokenCreated {
    /// The token.
    #[serde(flatten)]
    pub token: TokenView,
    /// The bearer token; it is not stored and cannot be shown again.
    pub access_token: String,
}

/// `?all=true` (platform admins: everyone's tokens).
#[derive(Deserialize)]
pub struct ListQuery {
    all: Option<bool>,
}

fn view(row: ApiTokenRow) -> TokenView {
    let scope = TokenScope {
        server_id: row.server_id,
        permissions: row
            .permissions
            .and_then(|text| serde_json::from_str(&text).ok()),
        ip_restrictions: serde_json::from_str(&row.ip_restrictions).unwrap_or_default(),
        time_restrictions: row
            .time_restrictions
            .and_then(|text| serde_json::from_str::<TimeWindow>(&text).ok()),
    };
    TokenView {
        id: row.id,
        name: row.name,
        owner_email: row.owner_email,
        scope,
        expires_at: row.expires_at,
        created_at: row.created_at,
        revoked_at: row.revoked_at,
    }
}

fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::from_auth(AuthError::Forbidden(message.into()))
}

fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// `POST /tokens` (`tokens.create`, with a sign-in token): a token that can do at most what
/// you can, restricted by its scope.
pub async fn create(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    ApiJson(input): ApiJson<TokenCreate>,
) -> Result<HttpResponse, ApiError> {
    let created = issue(&state, &principal, input).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/tokens/{}", created.token.id)))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(created))
}

/// Creates a token for `principal` (the REST API and the console).
pub async fn issue(
    state: &AppState,
    principal: &crate::auth::Principal,
    input: TokenCreate,
) -> Result<TokenCreated, ApiError> {
    principal
        .authorize("tokens.create", On::Platform)
        .map_err(|denied| ApiError::from_auth(denied.into()))?;
    if principal.is_api_token() {
        return Err(forbidden(
            "an API token cannot create tokens; sign in to create one",
        ));
    }
    let name = required_text("name", &input.name, 100)?;
    let days = input.expires_in_days.unwrap_or(30);
    if !(1..=3650).contains(&days) {
        return Err(invalid("expires_in_days", "must be from 1 to 3650").into());
    }
    let scope = input.scope.unwrap_or_default();
    scope
        .validate()
        .map_err(|(field, message)| ApiError::InvalidField { field, message })?;
    if let Some(permissions) = &scope.permissions {
        for (index, permission) in permissions.iter().enumerate() {
            if !principal.permits(permission, On::Anywhere) {
                return Err(ApiError::InvalidField {
                    field: format!("scope.permissions[{index}]"),
                    message: format!("your roles do not grant {permission}, so a token cannot"),
                });
            }
        }
    }
    if let Some(server) = &scope.server_id
        && state.catalog.current().server(server).is_none()
    {
        return Err(invalid("scope.server_id", "no enabled virtual server with this id").into());
    }
    let id = crate::registry::new_id();
    let jti = uuid::Uuid::new_v4().simple().to_string();
    let expires_at = chrono::Utc::now() + chrono::TimeDelta::days(i64::from(days));
    let access_token = state
        .auth
        .issue_api_token(
            &principal.email,
            principal.account_id(),
            &jti,
            expires_at,
            scope.clone(),
        )
        .await
        .map_err(ApiError::from_auth)?;
    let row = ApiTokenRow {
        id: id.clone(),
        name,
        owner_email: principal.email.clone(),
        token_hash: hex(&Sha256::digest(access_token.as_bytes())),
        jti,
        server_id: scope.server_id.clone(),
        permissions: scope.permissions.as_ref().map(to_json),
        ip_restrictions: to_json(&scope.ip_restrictions),
        time_restrictions: scope.time_restrictions.as_ref().map(to_json),
        expires_at: Some(crate::db::now_from(expires_at)),
        created_at: crate::db::now(),
        revoked_at: None,
    };
    state
        .db
        .run(InsertToken { row: row.clone() })
        .await
        .map_err(|error| match error {
            DbError::Conflict { constraint } => ApiError::Conflict(constraint),
            other => ApiError::from_db(other, "token", None),
        })?;
    Ok(TokenCreated {
        token: view(row),
        access_token,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// `GET /tokens`: your tokens; `?all=true` everyone's (`users.manage`).
pub async fn list(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let owner = if query.all.unwrap_or(false) {
        principal
            .authorize("users.manage", On::Platform)
            .map_err(|denied| ApiError::from_auth(denied.into()))?;
        None
    } else {
        Some(principal.email.clone())
    };
    let rows = state
        .db
        .run(ListTokens { owner })
        .await
        .map_err(|error| ApiError::from_db(error, "token", None))?;
    let items: Vec<TokenView> = rows.into_iter().map(view).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}

/// `DELETE /tokens/{id}`: revoke one of your tokens (anyone's with `users.manage`).
pub async fn revoke(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    revoke_token(&state, &principal, &id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Revokes one of the principal's tokens (anyone's with `users.manage`).
pub async fn revoke_token(
    state: &AppState,
    principal: &crate::auth::Principal,
    id: &str,
) -> Result<(), ApiError> {
    principal
        .authorize("tokens.revoke", On::Platform)
        .map_err(|denied| ApiError::from_auth(denied.into()))?;
    let owner = (!principal.permits("users.manage", On::Platform)).then(|| principal.email.clone());
    let revoked = state
        .db
        .run(RevokeToken {
            id: id.to_owned(),
            owner,
        })
        .await
        .map_err(|error| ApiError::from_db(error, "token", Some(id)))?
        .ok_or_else(|| ApiError::NotFound(format!("no token with id {id:?}")))?;
    state.auth.revoked(revoked.jti).await;
    Ok(())
}

/// The principal's tokens.
pub async fn tokens_of(state: &AppState, email: &str) -> Result<Vec<TokenView>, ApiError> {
    let rows = state
        .db
        .run(ListTokens {
            owner: Some(email.to_owned()),
        })
        .await
        .map_err(|error| ApiError::from_db(error, "token", None))?;
    Ok(rows.into_iter().map(view).collect())
}

/// `POST /auth/logout`: the token of this request stops working.
pub async fn logout(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<HttpResponse, ApiError> {
    state
        .db
        .run(RevokeJti {
            jti: principal.token_id.clone(),
            expires_at: principal.token_expires_at,
        })
        .await
        .map_err(|error| ApiError::from_db(error, "token", None))?;
    state.auth.revoked(principal.token_id).await;
    let mut expired = actix_web::cookie::Cookie::build(super::identity::SESSION_COOKIE, "")
        .path("/admin")
        .http_only(true)
        .finish();
    expired.make_removal();
    Ok(HttpResponse::NoContent().cookie(expired).finish())
}
