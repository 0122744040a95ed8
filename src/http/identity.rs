//! Identity and access over REST: sign-in, password change, users, teams and members, role
//! assignments, and what the caller may do. Thin handlers over [`crate::service::identity`].

use actix_web::http::header;
use actix_web::{HttpResponse, delete, get, post, put, web};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, Authenticated};
use super::{AppState, Items};
use crate::auth::AuthError;
use crate::service::identity::{
    LoginRequest, LoginResponse, MemberAdd, MemberRemove, MyPermissions, PasswordChange,
    RoleAssignment, TeamCreate, TeamView, UserCreate, UserPage, UserUpdate, UserView, roles, teams,
    users,
};

/// Registers the routes.
pub fn routes(config: &mut ServiceConfig) {
    config
        .service(login)
        .service(change_password)
        .service(list_users)
        .service(create_user)
        .service(get_user)
        .service(update_user)
        .service(delete_user)
        .service(assign_role)
        .service(unassign_role)
        .service(my_permissions)
        .service(list_teams)
        .service(create_team)
        .service(get_team)
        .service(delete_team)
        .service(add_member)
        .service(remove_member)
        .service(remove_member_by_path);
}

/// `?limit&cursor`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Users per page, 1–500 (default 50).
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// `?team_id` of a role removal.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RoleScopeQuery {
    /// The team of a team role; absent for a global role.
    team_id: Option<String>,
}

// ---- sign-in ------------------------------------------------------------------------------

/// The console's session cookie: the sign-in token, HTTP-only, `SameSite=Strict`, sent only to
/// `/admin` (the console checks it there, with CSRF protection on its forms).
pub const SESSION_COOKIE: &str = "mcpgate_session";

/// `POST /auth/login`: email and password for a bearer token (and the console's cookie).
#[utoipa::path(
    tag = "auth",
    operation_id = "login",
    summary = "Sign in with email and password",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "a bearer token", body = LoginResponse),
        (status = 401, description = "the email or password is not correct", body = ErrorBody),
        (status = 403, description = "the account is disabled", body = ErrorBody),
        (status = 429, description = "locked after repeated failures; see Retry-After", body = ErrorBody),
    ),
)]
#[post("/auth/login")]
pub async fn login(
    state: web::Data<AppState>,
    request: actix_web::HttpRequest,
    ApiJson(input): ApiJson<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let origin = super::origin(&request);
    let session =
        crate::service::tokens::sign_in(&state.services, &input.email, input.password, &origin)
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
#[utoipa::path(
    tag = "auth",
    operation_id = "change_password",
    summary = "Change your own password",
    request_body = PasswordChange,
    responses(
        (status = 204, description = "changed"),
        (status = 422, description = "a field is missing or invalid (a password-policy failure names the rule)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/auth/password")]
pub async fn change_password(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    ApiJson(input): ApiJson<PasswordChange>,
) -> Result<HttpResponse, ApiError> {
    users::change_password(&state.services, &principal, input).await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---- users --------------------------------------------------------------------------------

/// `GET /users` (`users.manage`).
#[utoipa::path(
    tag = "users",
    operation_id = "list_users",
    summary = "List users in email order (users.manage)",
    params(PageQuery),
    responses(
        (status = 200, description = "one page", body = UserPage),
        (status = 403, description = "your roles do not allow this", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[get("/users")]
pub async fn list_users(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let page = users::list(&state.services, &principal, query.limit, query.cursor).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `POST /users` (`users.manage`): the user gets a personal team and a global role.
#[utoipa::path(
    tag = "users",
    operation_id = "create_user",
    summary = "Create a user with a personal team and a global role (users.manage)",
    request_body = UserCreate,
    responses(
        (status = 201, description = "the user", body = UserView),
        (status = 403, description = "your roles do not allow this", body = ErrorBody),
        (status = 409, description = "the email is taken", body = ErrorBody),
        (status = 422, description = "a field is missing or invalid (a password-policy failure names the rule)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/users")]
pub async fn create_user(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    ApiJson(input): ApiJson<UserCreate>,
) -> Result<HttpResponse, ApiError> {
    let view = users::create(&state.services, &principal, input).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/users/{}", view.email)))
        .json(view))
}

/// `GET /users/{email}`: yourself, or anyone with `users.manage`.
#[utoipa::path(
    tag = "users",
    operation_id = "get_user",
    summary = "A user (yourself, or anyone with users.manage)",
    responses(
        (status = 200, description = "the user", body = UserView),
        (status = 403, description = "your roles do not allow this", body = ErrorBody),
        (status = 404, description = "no such user or team (or not one you may see)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[get("/users/{email}")]
pub async fn get_user(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    email: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = users::get(&state.services, &principal, &email).await?;
    Ok(HttpResponse::Ok().json(user))
}

/// `PUT /users/{email}` (`users.manage`; a user may change their own display name).
#[utoipa::path(
    tag = "users",
    operation_id = "update_user",
    summary = "Update a user (users.manage; your own display name)",
    request_body = UserUpdate,
    responses(
        (status = 200, description = "the user", body = UserView),
        (status = 403, description = "your roles do not allow this", body = ErrorBody),
        (status = 404, description = "no such user or team (or not one you may see)", body = ErrorBody),
        (status = 409, description = "you cannot disable or demote yourself", body = ErrorBody),
        (status = 422, description = "a field is missing or invalid (a password-policy failure names the rule)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[put("/users/{email}")]
pub async fn update_user(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    email: web::Path<String>,
    ApiJson(input): ApiJson<UserUpdate>,
) -> Result<HttpResponse, ApiError> {
    let user = users::update(&state.services, &principal, &email, input).await?;
    Ok(HttpResponse::Ok().json(user))
}

/// `DELETE /users/{email}` (`users.manage`; not yourself, not the last platform admin).
#[utoipa::path(
    tag = "users",
    operation_id = "delete_user",
    summary = "Delete a user (users.manage)",
    responses(
        (status = 204, description = "deleted"),
        (status = 403, description = "your roles do not allow this", body = ErrorBody),
        (status = 404, description = "no such user or team (or not one you may see)", body = ErrorBody),
        (status = 409, description = "yourself, or the last platform admin", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[delete("/users/{email}")]
pub async fn delete_user(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    email: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    users::delete(&state.services, &principal, &email).await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---- roles --------------------------------------------------------------------------------

/// `POST /users/{email}/roles`: assign a role, globally or for one team.
#[utoipa::path(
    tag = "users",
    operation_id = "assign_role",
    summary = "Assign a role, globally or for one team",
    request_body = RoleAssignment,
    responses(
        (status = 200, description = "the user's permissions now", body = MyPermissions),
        (status = 403, description = "your roles do not allow this", body = ErrorBody),
        (status = 422, description = "a field is missing or invalid (a password-policy failure names the rule)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/users/{email}/roles")]
pub async fn assign_role(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    email: web::Path<String>,
    ApiJson(input): ApiJson<RoleAssignment>,
) -> Result<HttpResponse, ApiError> {
    let email = email.into_inner().to_ascii_lowercase();
    let grants = roles::grant(&state.services, &principal, &email, input).await?;
    Ok(HttpResponse::Ok().json(roles::permissions_view(&email, &grants)))
}

/// `DELETE /users/{email}/roles/{role}?team_id=`: remove an assignment.
#[utoipa::path(
    tag = "users",
    operation_id = "unassign_role",
    summary = "Remove a role assignment (?team_id= for a team role)",
    params(RoleScopeQuery),
    responses(
        (status = 204, description = "removed"),
        (status = 403, description = "your roles do not allow this", body = ErrorBody),
        (status = 404, description = "no such user or team (or not one you may see)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[delete("/users/{email}/roles/{role}")]
pub async fn unassign_role(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    path: web::Path<(String, String)>,
    query: web::Query<RoleScopeQuery>,
) -> Result<HttpResponse, ApiError> {
    let (email, role) = path.into_inner();
    roles::revoke(
        &state.services,
        &principal,
        &email,
        &role,
        query.team_id.as_deref(),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /rbac/my/permissions`.
#[utoipa::path(
    tag = "rbac",
    operation_id = "my_permissions",
    summary = "What you may do: teams and permissions",
    responses(
        (status = 200, description = "your grants", body = MyPermissions),
    ),
    security(("bearer" = []))
)]
#[get("/rbac/my/permissions")]
pub async fn my_permissions(Authenticated(principal): Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(roles::permissions_view(
        &principal.email,
        principal.grants_for_display(),
    ))
}

// ---- teams --------------------------------------------------------------------------------

/// `GET /teams`: every team for a platform admin, the caller's teams otherwise.
#[utoipa::path(
    tag = "teams",
    operation_id = "list_teams",
    summary = "Your teams (every team for a platform admin)",
    responses(
        (status = 200, description = "the teams", body = Items<TeamView>),
    ),
    security(("bearer" = []))
)]
#[get("/teams")]
pub async fn list_teams(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<HttpResponse, ApiError> {
    let items = teams::list(&state.services, &principal).await?;
    Ok(HttpResponse::Ok().json(Items { items }))
}

/// `POST /teams` (`teams.create`): the caller owns the new team.
#[utoipa::path(
    tag = "teams",
    operation_id = "create_team",
    summary = "Create a team you own (teams.create)",
    request_body = TeamCreate,
    responses(
        (status = 201, description = "the team", body = TeamView),
        (status = 403, description = "your roles do not allow this", body = ErrorBody),
        (status = 409, description = "the name is taken", body = ErrorBody),
        (status = 422, description = "a field is missing or invalid (a password-policy failure names the rule)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/teams")]
pub async fn create_team(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    ApiJson(input): ApiJson<TeamCreate>,
) -> Result<HttpResponse, ApiError> {
    let team = teams::create(&state.services, &principal, input).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/teams/{}", team.id)))
        .json(team))
}

/// `GET /teams/{id}`: for its members and platform admins.
#[utoipa::path(
    tag = "teams",
    operation_id = "get_team",
    summary = "A team you belong to",
    responses(
        (status = 200, description = "the team", body = TeamView),
        (status = 404, description = "no such user or team (or not one you may see)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[get("/teams/{id}")]
pub async fn get_team(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let team = teams::get(&state.services, &principal, &id).await?;
    Ok(HttpResponse::Ok().json(team))
}

/// `DELETE /teams/{id}`: by its owners or a platform admin.
#[utoipa::path(
    tag = "teams",
    operation_id = "delete_team",
    summary = "Delete a team (its owners)",
    responses(
        (status = 204, description = "deleted"),
        (status = 403, description = "your roles do not allow this", body = ErrorBody),
        (status = 404, description = "no such user or team (or not one you may see)", body = ErrorBody),
        (status = 409, description = "a personal team", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[delete("/teams/{id}")]
pub async fn delete_team(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    teams::delete(&state.services, &principal, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /teams/{id}/members`: by the team's managers.
#[utoipa::path(
    tag = "teams",
    operation_id = "add_member",
    summary = "Add a member (the team's managers)",
    request_body = MemberAdd,
    responses(
        (status = 200, description = "the team", body = TeamView),
        (status = 403, description = "your roles do not allow this", body = ErrorBody),
        (status = 404, description = "no such user or team (or not one you may see)", body = ErrorBody),
        (status = 422, description = "a field is missing or invalid (a password-policy failure names the rule)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/teams/{id}/members")]
pub async fn add_member(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    id: web::Path<String>,
    ApiJson(input): ApiJson<MemberAdd>,
) -> Result<HttpResponse, ApiError> {
    let team = teams::join(&state.services, &principal, &id, input).await?;
    Ok(HttpResponse::Ok().json(team))
}

/// `DELETE /teams/{id}/members` with `{"email"}`: by the team's managers, or a member leaving.
#[utoipa::path(
    tag = "teams",
    operation_id = "remove_member",
    summary = "Remove a member, or leave",
    request_body = MemberRemove,
    responses(
        (status = 204, description = "removed"),
        (status = 403, description = "your roles do not allow this", body = ErrorBody),
        (status = 404, description = "no such user or team (or not one you may see)", body = ErrorBody),
        (status = 409, description = "the last owner", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[delete("/teams/{id}/members")]
pub async fn remove_member(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    id: web::Path<String>,
    ApiJson(input): ApiJson<MemberRemove>,
) -> Result<HttpResponse, ApiError> {
    teams::remove(&state.services, &principal, &id, &input.email).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /teams/{id}/members/{email}`: the same, the member named in the path.
#[utoipa::path(
    tag = "teams",
    operation_id = "remove_member_by_path",
    summary = "Remove a member, or leave",
    responses(
        (status = 204, description = "removed"),
        (status = 403, description = "your roles do not allow this", body = ErrorBody),
        (status = 404, description = "no such user or team (or not one you may see)", body = ErrorBody),
        (status = 409, description = "the last owner", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[delete("/teams/{id}/members/{email}")]
pub async fn remove_member_by_path(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, email) = path.into_inner();
    teams::remove(&state.services, &principal, &id, &email).await?;
    Ok(HttpResponse::NoContent().finish())
}
