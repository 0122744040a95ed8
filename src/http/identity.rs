//! Identity and access over REST: sign-in, password change, users, teams and members, role
//! assignments, and what the caller may do. Thin handlers: validate, one or two actor
//! messages, map the result. Every change that alters someone's grants drops that user's
//! cached grants on this replica (other replicas see it within `AUTH_CACHE_TTL_SECONDS`).

use std::collections::BTreeMap;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, Authenticated};
use crate::actors::db::DbError;
use crate::auth::rbac::{self, RoleScope};
use crate::auth::{AuthError, On, Principal, password};
use crate::db::bootstrap::UserRow;
use crate::db::identity::{
    AddMember, AssignRole, CreateTeam, DeleteTeam, DeleteUser, GetTeam, InsertUser, ListTeams,
    ListUsers, MemberRow, RemoveMember, RoleRow, TeamRow, UnassignRole, UpdateUser, UserChanges,
    new_user,
};
use crate::registry::validate::{invalid, optional_text, required_text};

/// Registers the routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/auth/login").route(web::post().to(login)))
        .service(web::resource("/auth/password").route(web::post().to(change_password)))
        .service(
            web::resource("/users")
                .route(web::get().to(list_users))
                .route(web::post().to(create_user)),
        )
        .service(
            web::resource("/users/{email}")
                .route(web::get().to(get_user))
                .route(web::put().to(update_user))
                .route(web::delete().to(delete_user)),
        )
        .service(web::resource("/users/{email}/roles").route(web::post().to(assign_role)))
        .service(
            web::resource("/users/{email}/roles/{role}").route(web::delete().to(unassign_role)),
        )
        .service(web::resource("/rbac/my/permissions").route(web::get().to(my_permissions)))
        .service(
            web::resource("/teams")
                .route(web::get().to(list_teams))
                .route(web::post().to(create_team)),
        )
        .service(
            web::resource("/teams/{id}")
                .route(web::get().to(get_team))
                .route(web::delete().to(delete_team)),
        )
        .service(
            web::resource("/teams/{id}/members")
                .route(web::post().to(add_member))
                .route(web::delete().to(remove_member)),
        )
        .service(
            web::resource("/teams/{id}/members/{email}")
                .route(web::delete().to(remove_member_by_path)),
        );
}

// ---- types --------------------------------------------------------------------------------

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
}

/// A page of users.
#[derive(Serialize, ToSchema)]
pub struct UserPage {
    /// The users, in email order.
    pub items: Vec<UserView>,
    /// Pass as `cursor` for the next page.
    pub next_cursor: Option<String>,
}

/// `?limit&cursor`.
#[derive(Deserialize)]
pub struct PageQuery {
    limit: Option<i64>,
    cursor: Option<String>,
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

/// `?team_id` of a role removal.
#[derive(Deserialize)]
pub struct RoleScopeQuery {
    team_id: Option<String>,
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

fn team_view((team, members): (TeamRow, Vec<MemberRow>)) -> TeamView {
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

fn forbidden(error: AuthError) -> ApiError {
    ApiError::from_auth(error)
}

/// Identity operations are platform operations: only a global grant counts.
fn require(principal: &Principal, permission: &str) -> Result<(), ApiError> {
    principal
        .authorize(permission, On::Platform)
        .map_err(|denied| forbidden(denied.into()))
}

fn db_error<'a>(noun: &'a str, id: &'a str) -> impl Fn(DbError) -> ApiError + 'a {
    move |error| match error {
        DbError::Conflict { constraint } => ApiError::Conflict(constraint),
        other => ApiError::from_db(other, noun, Some(id)),
    }
}

fn email_field(field: &str, value: &str) -> Result<String, ApiError> {
    let email = value.trim().to_ascii_lowercase();
    if crate::config::looks_like_email(&email) && email.len() <= 254 {
        Ok(email)
    } else {
        Err(invalid(field, "must be an email address").into())
    }
}

fn policy(state: &AppState, field: &str, password: &str, email: &str) -> Result<(), ApiError> {
    let min_length = state.settings.auth.identity.password_min_length;
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

async fn hash(password: String) -> Result<String, ApiError> {
    web::block(move || password::hash(&password))
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(|error| {
            tracing::error!(%error, "cannot hash a password");
            ApiError::Internal
        })
}

fn role_field(role: &str) -> Result<String, ApiError> {
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

async fn invalidate(state: &AppState, emails: impl IntoIterator<Item = String>) {
    for email in emails {
        state.auth.scoping().invalidate(Some(email)).await;
    }
}

// ---- sign-in ------------------------------------------------------------------------------

/// The console's session cookie: the sign-in token, HTTP-only, `SameSite=Strict`, sent only to
/// `/admin` (the console checks it there, with CSRF protection on its forms).
pub const SESSION_COOKIE: &str = "mcpgate_session";

/// `POST /auth/login`: email and password for a bearer token (and the console's cookie).
pub async fn login(
    state: web::Data<AppState>,
    request: actix_web::HttpRequest,
    ApiJson(input): ApiJson<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let session = state
        .auth
        .login(input.email, input.password, super::client_ip(&request))
        .await
        .map_err(|error| match error {
            // No challenge header for a failed sign-in: it is not a bearer-token failure.
            AuthError::BadCredentials => ApiError::Unauthorized(error.to_string()),
            other => ApiError::from_auth(other),
        })?;
    let cookie = actix_web::cookie::Cookie::build(SESSION_COOKIE, session.access_token.clone())
        .path("/admin")
        .http_only(true)
        .same_site(actix_web::cookie::SameSite::Strict)
        .secure(super::public_origin(&request).0 == "https")
        .max_age(actix_web::cookie::time::Duration::seconds(
            session.expires_in.as_secs() as i64,
        ))
        .finish();
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .cookie(cookie)
        .json(LoginResponse {
            access_token: session.access_token,
            token_type: "bearer",
            expires_in: session.expires_in.as_secs(),
            user: session.user.into(),
        }))
}

/// `POST /auth/password`: the caller changes their own password.
pub async fn change_password(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    ApiJson(input): ApiJson<PasswordChange>,
) -> Result<HttpResponse, ApiError> {
    state
        .auth
        .login(principal.email.clone(), input.current_password, None)
        .await
        .map_err(|error| match error {
            AuthError::BadCredentials => ApiError::InvalidField {
                field: "current_password".into(),
                message: "is not the account's password".into(),
            },
            other => ApiError::from_auth(other),
        })?;
    policy(
        &state,
        "new_password",
        &input.new_password,
        &principal.email,
    )?;
    let changes = UserChanges {
        password_hash: Some(hash(input.new_password).await?),
        ..UserChanges::default()
    };
    state
        .db
        .run(UpdateUser {
            email: principal.email.clone(),
            changes,
        })
        .await
        .map_err(db_error("user", &principal.email))?;
    Ok(HttpResponse::NoContent().finish())
}

// ---- users --------------------------------------------------------------------------------

/// `GET /users` (`users.manage`).
pub async fn list_users(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    require(&principal, "users.manage")?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(invalid("limit", "must be from 1 to 500").into());
    }
    let mut rows = state
        .db
        .run(ListUsers {
            after: query.cursor.clone().filter(|cursor| !cursor.is_empty()),
            limit: limit + 1,
        })
        .await
        .map_err(|error| ApiError::from_db(error, "user", None))?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|row| row.email.clone())
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(UserPage {
        items: rows.into_iter().map(UserView::from).collect(),
        next_cursor,
    }))
}

/// `POST /users` (`users.manage`): the user gets a personal team and a global role.
pub async fn create_user(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    ApiJson(input): ApiJson<UserCreate>,
) -> Result<HttpResponse, ApiError> {
    let view = new_account(&state, &principal, input).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/users/{}", view.email)))
        .json(view))
}

/// Creates a user (`users.manage`) with a personal team and a global role.
pub async fn new_account(
    state: &AppState,
    principal: &Principal,
    input: UserCreate,
) -> Result<UserView, ApiError> {
    require(principal, "users.manage")?;
    let email = email_field("email", &input.email)?;
    let full_name = optional_text("full_name", input.full_name.as_deref(), 200)?;
    let role = match &input.role {
        Some(role) => role_field(role)?,
        None => state.settings.auth.identity.default_role.clone(),
    };
    policy(state, "password", &input.password, &email)?;
    let (user, personal_team) = new_user(
        &email,
        hash(input.password).await?,
        full_name,
        input.is_admin || role == "platform_admin",
    );
    let view = UserView::from(user.clone());
    state
        .db
        .run(InsertUser {
            user,
            personal_team,
            role,
            if_absent: false,
        })
        .await
        .map_err(db_error("user", &email))?;
    // A cached "no such account" from before must not outlive the new account.
    invalidate(state, [email]).await;
    Ok(view)
}

async fn find_user(state: &AppState, email: &str) -> Result<UserRow, ApiError> {
    state
        .db
        .run(crate::db::bootstrap::FindUser {
            email: email.to_owned(),
        })
        .await
        .map_err(db_error("user", email))?
        .ok_or_else(|| ApiError::NotFound(format!("no user with email {email:?}")))
}

/// `GET /users/{email}`: yourself, or anyone with `users.manage`.
pub async fn get_user(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    email: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let email = email.into_inner().to_ascii_lowercase();
    if email != principal.email {
        require(&principal, "users.manage")?;
    }
    Ok(HttpResponse::Ok().json(UserView::from(find_user(&state, &email).await?)))
}

/// `PUT /users/{email}` (`users.manage`; a user may change their own display name).
pub async fn update_user(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    email: web::Path<String>,
    ApiJson(input): ApiJson<UserUpdate>,
) -> Result<HttpResponse, ApiError> {
    let email = email.into_inner().to_ascii_lowercase();
    let only_name =
        input.is_active.is_none() && input.is_admin.is_none() && input.password.is_none();
    if !(email == principal.email && only_name) {
        require(&principal, "users.manage")?;
    }
    if email == principal.email && (input.is_active == Some(false) || input.is_admin == Some(false))
    {
        return Err(ApiError::Conflict(
            "you cannot disable yourself or take away your own admin rights".into(),
        ));
    }
    let full_name = match &input.full_name {
        Some(name) => Some(optional_text("full_name", name.as_deref(), 200)?),
        None => None,
    };
    let password_hash = match input.password {
        Some(password) => {
            policy(&state, "password", &password, &email)?;
            Some(hash(password).await?)
        }
        None => None,
    };
    let changes = UserChanges {
        full_name,
        is_active: input.is_active,
        is_admin: input.is_admin,
        password_hash,
    };
    let updated = state
        .db
        .run(UpdateUser {
            email: email.clone(),
            changes,
        })
        .await
        .map_err(db_error("user", &email))?
        .ok_or_else(|| ApiError::NotFound(format!("no user with email {email:?}")))?;
    invalidate(&state, [email]).await;
    Ok(HttpResponse::Ok().json(UserView::from(updated)))
}

/// `DELETE /users/{email}` (`users.manage`; not yourself, not the last platform admin).
pub async fn delete_user(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    email: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require(&principal, "users.manage")?;
    let email = email.into_inner().to_ascii_lowercase();
    if email == principal.email {
        return Err(ApiError::Conflict("you cannot delete yourself".into()));
    }
    let deleted = state
        .db
        .run(DeleteUser {
            email: email.clone(),
        })
        .await
        .map_err(db_error("user", &email))?;
    if !deleted {
        return Err(ApiError::NotFound(format!("no user with email {email:?}")));
    }
    invalidate(&state, [email]).await;
    Ok(HttpResponse::NoContent().finish())
}

// ---- roles --------------------------------------------------------------------------------

/// Who may assign `role` in `scope`: `users.manage` anywhere; a team's managers for
/// team-scoped roles other than `platform_admin`.
fn may_assign(principal: &Principal, role: &str, scope: &RoleScope) -> Result<(), ApiError> {
    let Err(denied) = principal.authorize("users.manage", On::Platform) else {
        return Ok(());
    };
    match scope {
        RoleScope::Team(team)
            if role != "platform_admin"
                && principal.permits("teams.manage_members", On::Team(team)) =>
        {
            Ok(())
        }
        _ => Err(forbidden(AuthError::Forbidden(format!(
            "{denied}: assigning this role needs users.manage (or managing the team, for a team role)"
        )))),
    }
}

/// `POST /users/{email}/roles`: assign a role, globally or for one team.
pub async fn assign_role(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    email: web::Path<String>,
    ApiJson(input): ApiJson<RoleAssignment>,
) -> Result<HttpResponse, ApiError> {
    let email = email.into_inner().to_ascii_lowercase();
    let grants = grant_role(&state, &principal, &email, input).await?;
    Ok(HttpResponse::Ok().json(permissions_view(&email, &grants)))
}

/// Assigns a role to `email`; returns their grants now.
pub async fn grant_role(
    state: &AppState,
    principal: &Principal,
    email: &str,
    input: RoleAssignment,
) -> Result<std::sync::Arc<rbac::Grants>, ApiError> {
    let email = email.to_ascii_lowercase();
    let role = role_field(&input.role)?;
    let scope = match &input.team_id {
        Some(team) => RoleScope::Team(required_text("team_id", team, 64)?),
        None => RoleScope::Global,
    };
    may_assign(principal, &role, &scope)?;
    // A team role is for the team's members only (it would grant nothing to anyone else).
    if let RoleScope::Team(team) = &scope {
        let member = state
            .auth
            .scoping()
            .grants(&email)
            .await
            .map_err(forbidden)?
            .ok_or_else(|| ApiError::NotFound(format!("no active user with email {email:?}")))?
            .is_member(team);
        if !member {
            return Err(invalid("team_id", format!("{email} is not a member of this team")).into());
        }
    }
    if role == "platform_admin" {
        if scope != RoleScope::Global {
            return Err(invalid("team_id", "platform_admin is always global").into());
        }
        state
            .db
            .run(UpdateUser {
                email: email.clone(),
                changes: UserChanges {
                    is_admin: Some(true),
                    ..UserChanges::default()
                },
            })
            .await
            .map_err(db_error("user", &email))?
            .ok_or_else(|| ApiError::NotFound(format!("no user with email {email:?}")))?;
    }
    state
        .db
        .run(AssignRole {
            row: RoleRow {
                email: email.clone(),
                role,
                scope: scope.as_stored().to_owned(),
                granted_by: Some(principal.email.clone()),
                created_at: crate::db::now(),
            },
        })
        .await
        .map_err(db_error("user", &email))?;
    invalidate(state, [email.clone()]).await;
    state
        .auth
        .scoping()
        .grants(&email)
        .await
        .map_err(forbidden)?
        .ok_or_else(|| ApiError::NotFound(format!("no active user with email {email:?}")))
}

/// `DELETE /users/{email}/roles/{role}?team_id=`: remove an assignment.
pub async fn unassign_role(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    path: web::Path<(String, String)>,
    query: web::Query<RoleScopeQuery>,
) -> Result<HttpResponse, ApiError> {
    let (email, role) = path.into_inner();
    let email = email.to_ascii_lowercase();
    let role = role_field(&role)?;
    let scope = match &query.team_id {
        Some(team) => RoleScope::Team(team.clone()),
        None => RoleScope::Global,
    };
    may_assign(&principal, &role, &scope)?;
    let removed = state
        .db
        .run(UnassignRole {
            email: email.clone(),
            role: role.clone(),
            scope: scope.as_stored().to_owned(),
        })
        .await
        .map_err(db_error("user", &email))?;
    if !removed {
        return Err(ApiError::NotFound(format!(
            "{email} has no {role} assignment there"
        )));
    }
    invalidate(&state, [email]).await;
    Ok(HttpResponse::NoContent().finish())
}

fn permissions_view(email: &str, grants: &rbac::Grants) -> MyPermissions {
    MyPermissions {
        email: email.to_owned(),
        is_admin: grants.is_admin,
        personal_team: grants.personal_team.clone(),
        teams: grants.teams.clone(),
        permissions: grants.global.iter().copied().collect(),
        team_permissions: grants
            .per_team
            .iter()
            .map(|(team, permissions)| (team.clone(), permissions.iter().copied().collect()))
            .collect(),
    }
}

/// `GET /rbac/my/permissions`.
pub async fn my_permissions(Authenticated(principal): Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(permissions_view(
        &principal.email,
        principal.grants_for_display(),
    ))
}

// ---- teams --------------------------------------------------------------------------------

/// `GET /teams`: every team for a platform admin, the caller's teams otherwise.
pub async fn list_teams(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<HttpResponse, ApiError> {
    let items = teams_of(&state, &principal).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}

/// Every team for a platform admin, the principal's teams otherwise.
pub async fn teams_of(state: &AppState, principal: &Principal) -> Result<Vec<TeamView>, ApiError> {
    let member = (!principal.sees_every_item()).then(|| principal.email.clone());
    let teams = state
        .db
        .run(ListTeams { member })
        .await
        .map_err(|error| ApiError::from_db(error, "team", None))?;
    Ok(teams.into_iter().map(team_view).collect())
}

/// `POST /teams` (`teams.create`): the caller owns the new team.
pub async fn create_team(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    ApiJson(input): ApiJson<TeamCreate>,
) -> Result<HttpResponse, ApiError> {
    let team = new_team(&state, &principal, input).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/teams/{}", team.id)))
        .json(team))
}

/// Creates a team the principal owns (`teams.create`).
pub async fn new_team(
    state: &AppState,
    principal: &Principal,
    input: TeamCreate,
) -> Result<TeamView, ApiError> {
    require(principal, "teams.create")?;
    let name = required_text("name", &input.name, 200)?;
    let description = optional_text("description", input.description.as_deref(), 2000)?;
    let slug = crate::registry::gateways::slugify(&name);
    if slug.is_empty() {
        return Err(invalid("name", "needs at least one letter or digit").into());
    }
    let at = crate::db::now();
    let team = TeamRow {
        id: crate::registry::new_id(),
        name,
        slug,
        description,
        is_personal: false,
        owner_email: principal.email.clone(),
        created_at: at,
        updated_at: at,
    };
    let created = state
        .db
        .run(CreateTeam { team })
        .await
        .map_err(|error| match error {
            DbError::Conflict { .. } => ApiError::Conflict("a team with this name exists".into()),
            other => ApiError::from_db(other, "team", None),
        })?;
    invalidate(state, [principal.email.clone()]).await;
    let owner = MemberRow {
        team_id: created.id.clone(),
        email: principal.email.clone(),
        role: "owner".into(),
        joined_at: created.created_at,
    };
    Ok(team_view((created, vec![owner])))
}

async fn visible_team(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> Result<(TeamRow, Vec<MemberRow>), ApiError> {
    let not_found = || ApiError::NotFound(format!("no team with id {id:?}"));
    let team = state
        .db
        .run(GetTeam { id: id.to_owned() })
        .await
        .map_err(db_error("team", id))?
        .ok_or_else(not_found)?;
    // A team you do not belong to does not exist for you.
    if principal.sees_every_item() || principal.team_ids().any(|team| team == id) {
        Ok(team)
    } else {
        Err(not_found())
    }
}

/// `GET /teams/{id}`: for its members and platform admins.
pub async fn get_team(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let team = visible_team(&state, &principal, &id).await?;
    Ok(HttpResponse::Ok().json(team_view(team)))
}

/// `DELETE /teams/{id}`: by its owners or a platform admin.
pub async fn delete_team(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    visible_team(&state, &principal, &id).await?;
    if !principal.permits("teams.manage_members", On::Team(&id)) {
        return Err(forbidden(AuthError::Forbidden(
            "only the team's owners or a platform admin may delete it".into(),
        )));
    }
    let members = state
        .db
        .run(DeleteTeam { id: id.clone() })
        .await
        .map_err(db_error("team", &id))?
        .ok_or_else(|| ApiError::NotFound(format!("no team with id {id:?}")))?;
    invalidate(&state, members).await;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /teams/{id}/members`: by the team's managers.
pub async fn add_member(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    id: web::Path<String>,
    ApiJson(input): ApiJson<MemberAdd>,
) -> Result<HttpResponse, ApiError> {
    let team = join(&state, &principal, &id.into_inner(), input).await?;
    Ok(HttpResponse::Ok().json(team))
}

/// Adds a member to a team the principal manages; returns the team.
pub async fn join(
    state: &AppState,
    principal: &Principal,
    id: &str,
    input: MemberAdd,
) -> Result<TeamView, ApiError> {
    let id = id.to_owned();
    visible_team(state, principal, &id).await?;
    if !principal.permits("teams.manage_members", On::Team(&id)) {
        return Err(forbidden(AuthError::Forbidden(
            "only the team's owners, its team admins or a platform admin may add members".into(),
        )));
    }
    let email = email_field("email", &input.email)?;
    let role = match input.role.as_deref() {
        None | Some("member") => "member",
        Some("owner") => "owner",
        Some(_) => return Err(invalid("role", "use member or owner").into()),
    };
    state
        .db
        .run(AddMember {
            member: MemberRow {
                team_id: id.clone(),
                email: email.clone(),
                role: role.into(),
                joined_at: crate::db::now(),
            },
        })
        .await
        .map_err(db_error("team", &id))?;
    invalidate(state, [email]).await;
    let team = visible_team(state, principal, &id).await?;
    Ok(team_view(team))
}

/// Removes a member (by the team's managers, or the member leaving).
pub async fn remove(
    state: &AppState,
    principal: &Principal,
    id: String,
    email: &str,
) -> Result<HttpResponse, ApiError> {
    visible_team(state, principal, &id).await?;
    let email = email.trim().to_ascii_lowercase();
    if email != principal.email && !principal.permits("teams.manage_members", On::Team(&id)) {
        return Err(forbidden(AuthError::Forbidden(
            "only the team's owners, its team admins or a platform admin may remove members".into(),
        )));
    }
    let removed = state
        .db
        .run(RemoveMember {
            team_id: id.clone(),
            email: email.clone(),
        })
        .await
        .map_err(db_error("team", &id))?;
    if !removed {
        return Err(ApiError::NotFound(format!("{email} is not a member")));
    }
    invalidate(state, [email]).await;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /teams/{id}/members` with `{"email"}`: by the team's managers, or a member leaving.
pub async fn remove_member(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    id: web::Path<String>,
    ApiJson(input): ApiJson<MemberRemove>,
) -> Result<HttpResponse, ApiError> {
    remove(&state, &principal, id.into_inner(), &input.email).await
}

/// `DELETE /teams/{id}/members/{email}`: the same, the member named in the path.
pub async fn remove_member_by_path(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, email) = path.into_inner();
    remove(&state, &principal, id, &email).await
}
