//! Identity and access as a principal: passwords, users, role assignments and teams. Identity
//! operations are platform operations (only a global grant counts), except what a team's
//! managers may do inside their team. Every change that alters someone's grants drops that
//! user's cached grants on this replica (other replicas see it within `AUTH_CACHE_TTL_SECONDS`).

pub mod roles;
pub mod teams;
pub mod users;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Services;
use crate::actors::db::DbError;
use crate::auth::rbac;
use crate::auth::{AuthError, On, Principal, password};
use crate::db::bootstrap::UserRow;
use crate::db::identity::{MemberRow, TeamRow};
use crate::error::ApiError;
use crate::registry::validate::invalid;

/// `POST /auth/login`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The account's email.
    pub email: String,
    /// Its password.
    pub password: String,
}

/// A signed-in session.
#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    /// A bearer token for the REST API and the MCP endpoints.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Seconds the token is valid.
    pub expires_in: u64,
    /// The account.
    pub user: UserView,
}

/// `POST /auth/password`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The password now.
    pub current_password: String,
    /// The new one (the password policy applies).
    pub new_password: String,
}

/// A user as the API shows it (never the password hash).
#[derive(Serialize, ToSchema)]
pub struct UserView {
    /// The email (the account's id).
    pub email: String,
    /// The display name.
    pub full_name: Option<String>,
    /// Whether the user is a platform admin.
    pub is_admin: bool,
    /// Whether the account may sign in and its tokens work.
    pub is_active: bool,
    /// When a lock after failed sign-ins ends, while it lasts.
    pub locked_until: Option<chrono::NaiveDateTime>,
    /// When the password was last set.
    pub password_changed_at: Option<chrono::NaiveDateTime>,
    /// When the account was created.
    pub created_at: chrono::NaiveDateTime,
    /// When it last changed.
    pub updated_at: chrono::NaiveDateTime,
}

impl From<UserRow> for UserView {
    fn from(row: UserRow) -> Self {
        let locked_until = row.locked_until.filter(|until| *until > crate::db::now());
        UserView {
            email: row.email,
            full_name: row.full_name,
            is_admin: row.is_admin,
            is_active: row.is_active,
            locked_until,
            password_changed_at: row.password_changed_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// `POST /users`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserCreate {
    /// The email (the account's id; stored lower-case).
    pub email: String,
    /// The password (the password policy applies).
    pub password: String,
    /// A display name.
    #[serde(default)]
    pub full_name: Option<String>,
    /// The global role (default `DEFAULT_USER_ROLE`).
    #[serde(default)]
    pub role: Option<String>,
    /// Make the user a platform admin.
    #[serde(default)]
    pub is_admin: bool,
}

/// `PUT /users/{email}`: absent fields stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    /// A new display name (`null` clears it).
    #[serde(default, deserialize_with = "crate::registry::nullable")]
    #[schema(value_type = Option<String>)]
    pub full_name: Option<Option<String>>,
    /// Enable or disable the account (a disabled account's tokens stop working).
    #[serde(default)]
    pub is_active: Option<bool>,
    /// Grant or take platform admin.
    #[serde(default)]
    pub is_admin: Option<bool>,
    /// Set a new password (the policy applies; also lifts a lock).
    #[serde(default)]
    pub password: Option<String>,
    /// `true` lifts a lock after failed sign-ins.
    #[serde(default)]
    pub unlock: bool,
}

/// A page of users.
#[derive(Serialize, ToSchema)]
pub struct UserPage {
    /// The users, in email order.
    pub items: Vec<UserView>,
    /// Pass as `cursor` for the next page.
    pub next_cursor: Option<String>,
}

/// `POST /users/{email}/roles`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleAssignment {
    /// `platform_admin`, `team_admin`, `developer` or `viewer`.
    pub role: String,
    /// Restrict the role to this team's items (absent: everywhere).
    #[serde(default)]
    pub team_id: Option<String>,
}

/// What the caller may do.
#[derive(Serialize, ToSchema)]
pub struct MyPermissions {
    /// The caller.
    pub email: String,
    /// Whether they are a platform admin (may do everything).
    pub is_admin: bool,
    /// Their personal team.
    pub personal_team: Option<String>,
    /// Their teams and membership role there (`owner` or `member`).
    pub teams: BTreeMap<String, String>,
    /// Permissions that apply everywhere.
    pub permissions: Vec<&'static str>,
    /// Permissions that apply to one team's items.
    pub team_permissions: BTreeMap<String, Vec<&'static str>>,
}

/// `POST /teams`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamCreate {
    /// A name.
    pub name: String,
    /// What the team is for.
    #[serde(default)]
    pub description: Option<String>,
}

/// A team with its members.
#[derive(Serialize, ToSchema)]
pub struct TeamView {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its unique slug.
    pub slug: String,
    /// What it is for.
    pub description: Option<String>,
    /// Whether it is a user's personal team (only its owner belongs to it).
    pub is_personal: bool,
    /// Who created it.
    pub owner_email: String,
    /// Its members.
    pub members: Vec<MemberView>,
    /// When it was created.
    pub created_at: chrono::NaiveDateTime,
}

/// A team member.
#[derive(Serialize, ToSchema)]
pub struct MemberView {
    /// The member's email.
    pub email: String,
    /// `owner` or `member`.
    pub role: String,
    /// When they joined.
    pub joined_at: chrono::NaiveDateTime,
}

pub(super) fn team_view((team, members): (TeamRow, Vec<MemberRow>)) -> TeamView {
    TeamView {
        id: team.id,
        name: team.name,
        slug: team.slug,
        description: team.description,
        is_personal: team.is_personal,
        owner_email: team.owner_email,
        members: members
            .into_iter()
            .map(|member| MemberView {
                email: member.email,
                role: member.role,
                joined_at: member.joined_at,
            })
            .collect(),
        created_at: team.created_at,
    }
}

/// `POST /teams/{id}/members`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberAdd {
    /// The user to add.
    pub email: String,
    /// `member` (default) or `owner`.
    #[serde(default)]
    pub role: Option<String>,
}

/// `DELETE /teams/{id}/members`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberRemove {
    /// The member to remove.
    pub email: String,
}

// ---- helpers ------------------------------------------------------------------------------

pub(super) fn forbidden(error: AuthError) -> ApiError {
    ApiError::from_auth(error)
}

/// Identity operations are platform operations: only a global grant counts.
pub(super) fn require(principal: &Principal, permission: &str) -> Result<(), ApiError> {
    principal
        .authorize(permission, On::Platform)
        .map_err(|denied| forbidden(denied.into()))
}

pub(super) fn db_error<'a>(noun: &'a str, id: &'a str) -> impl Fn(DbError) -> ApiError + 'a {
    move |error| match error {
        DbError::Conflict { constraint } => ApiError::Conflict(constraint),
        other => ApiError::from_db(other, noun, Some(id)),
    }
}

pub(super) fn email_field(field: &str, value: &str) -> Result<String, ApiError> {
    let email = value.trim().to_ascii_lowercase();
    if crate::config::looks_like_email(&email) && email.len() <= 254 {
        Ok(email)
    } else {
        Err(invalid(field, "must be an email address").into())
    }
}

pub(super) fn policy(
    services: &Services,
    field: &str,
    password: &str,
    email: &str,
) -> Result<(), ApiError> {
    let min_length = services.settings.auth.identity.password_min_length;
    password::check_policy(password, email, min_length).map_err(|violation| {
        ApiError::InvalidField {
            field: field.to_owned(),
            message: format!(
                "password policy, rule {}: {}",
                violation.rule, violation.message
            ),
        }
    })
}

pub(super) async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(|error| {
            tracing::error!(%error, "cannot hash a password");
            ApiError::Internal
        })
}

pub(super) fn role_field(role: &str) -> Result<String, ApiError> {
    if rbac::ROLES.contains(&role) {
        Ok(role.to_owned())
    } else {
        Err(invalid(
            "role",
            format!("unknown role; use one of {}", rbac::ROLES.join(", ")),
        )
        .into())
    }
}

pub(super) async fn invalidate(services: &Services, emails: impl IntoIterator<Item = String>) {
    for email in emails {
        services.auth.scoping().invalidate(Some(email)).await;
    }
}
