//! API tokens, as a principal: create one (at most what the principal's roles grant, its scope
//! signed into it, stored as a SHA-256 hash, shown once), list, revoke, and sign out. A revoked
//! token is refused at once on this replica and within `TOKEN_REVOCATION_REFRESH_SECONDS` on
//! the others.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::Services;
use super::audit::Entry;
use crate::actors::db::DbError;
use crate::auth::scope::{TimeWindow, TokenScope};
use crate::auth::{AuthError, On};
use crate::db::tokens::{ApiTokenRow, InsertToken, ListTokens, RevokeJti, RevokeToken};
use crate::error::ApiError;
use crate::registry::validate::{invalid, required_text};

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
    /// When it was last used (to the minute; written within seconds), if ever.
    pub last_used_at: Option<chrono::NaiveDateTime>,
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
        last_used_at: row.last_used_at,
    }
}

fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::from_auth(AuthError::Forbidden(message.into()))
}

fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// Creates a token for `principal`: at most what its roles grant, restricted by its scope.
pub async fn issue(
    services: &Services,
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
    if let Some(server) = &scope.server_id {
        // A server the caller may not see is answered exactly like one that does not exist.
        let visible = crate::service::registry::get::<crate::registry::servers::Servers>(
            services, principal, server,
        )
        .await
        .is_ok();
        if !visible || services.catalog.current().server(server).is_none() {
            return Err(
                invalid("scope.server_id", "no enabled virtual server with this id").into(),
            );
        }
    }
    let id = crate::registry::new_id();
    let jti = uuid::Uuid::new_v4().simple().to_string();
    let expires_at = chrono::Utc::now() + chrono::TimeDelta::days(i64::from(days));
    let access_token = services
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
        last_used_at: None,
    };
    services
        .db
        .run(InsertToken { row: row.clone() })
        .await
        .map_err(|error| match error {
            DbError::Conflict { constraint } => ApiError::Conflict(constraint),
            other => ApiError::from_db(other, "token", None),
        })?;
    let token = view(row);
    services.audit(
        principal,
        Entry::new("tokens.create", "token")
            .id(&token.id)
            .after(&token),
    );
    Ok(TokenCreated {
        token,
        access_token,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Revokes one of the principal's tokens (anyone's with `users.manage`).
pub async fn revoke(
    services: &Services,
    principal: &crate::auth::Principal,
    id: &str,
) -> Result<(), ApiError> {
    principal
        .authorize("tokens.revoke", On::Platform)
        .map_err(|denied| ApiError::from_auth(denied.into()))?;
    let owner = (!principal.permits("users.manage", On::Platform)).then(|| principal.email.clone());
    let revoked = services
        .db
        .run(RevokeToken {
            id: id.to_owned(),
            owner,
        })
        .await
        .map_err(|error| ApiError::from_db(error, "token", Some(id)))?
        .ok_or_else(|| ApiError::NotFound(format!("no token with id {id:?}")))?;
    services.auth.revoked(revoked.jti.clone()).await;
    let token = view(revoked);
    services.audit(
        principal,
        Entry::new("tokens.revoke", "token")
            .id(&token.id)
            .after(&token),
    );
    Ok(())
}

/// The tokens of `email`.
pub async fn of(services: &Services, email: &str) -> Result<Vec<TokenView>, ApiError> {
    let rows = services
        .db
        .run(ListTokens {
            owner: Some(email.to_owned()),
        })
        .await
        .map_err(|error| ApiError::from_db(error, "token", None))?;
    Ok(rows.into_iter().map(view).collect())
}

/// The tokens of `principal`, or everyone's (`all`, with `users.manage`).
pub async fn list(
    services: &Services,
    principal: &crate::auth::Principal,
    all: bool,
) -> Result<Vec<TokenView>, ApiError> {
    let owner = if all {
        principal
            .authorize("users.manage", On::Platform)
            .map_err(|denied| ApiError::from_auth(denied.into()))?;
        None
    } else {
        Some(principal.email.clone())
    };
    let rows = services
        .db
        .run(ListTokens { owner })
        .await
        .map_err(|error| ApiError::from_db(error, "token", None))?;
    Ok(rows.into_iter().map(view).collect())
}

/// Signs `email` in from `origin` (the REST API and the console); the attempt, successful or
/// not, goes into the audit trail.
pub async fn sign_in(
    services: &Services,
    email: &str,
    password: String,
    origin: &crate::auth::Origin,
) -> Result<crate::actors::auth::Session, AuthError> {
    let email = email.trim().to_ascii_lowercase();
    let outcome = services
        .auth
        .login(email.clone(), password, origin.client)
        .await;
    match &outcome {
        Ok(_) => services.audit_sign_in(&email, origin, None),
        Err(AuthError::Unavailable) => {}
        Err(error) => services.audit_sign_in(&email, origin, Some(&error.to_string())),
    }
    outcome
}

/// Ends the token `principal` signed in with (sign-out).
pub async fn sign_out(
    services: &Services,
    principal: &crate::auth::Principal,
) -> Result<(), ApiError> {
    services
        .db
        .run(RevokeJti {
            jti: principal.token_id.clone(),
            expires_at: principal.token_expires_at,
        })
        .await
        .map_err(|error| ApiError::from_db(error, "token", None))?;
    services.auth.revoked(principal.token_id.clone()).await;
    services.audit(
        principal,
        Entry::new("auth.sign_out", "session").id(&principal.token_id),
    );
    Ok(())
}
