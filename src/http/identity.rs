//! Identity and access over REST: sign-in, password change, users, teams and members, role
//! assignments, and what the caller may do. Thin handlers over [`crate::service::identity`].

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, Authenticated};
use crate::auth::AuthError;
use crate::service::identity::{
    LoginRequest, LoginResponse, MemberAdd, MemberRemove, PasswordChange, RoleAssignment,
    TeamCreate, UserCreate, UserUpdate, roles, teams, users,
};

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

/// `?limit&cursor`.
#[derive(Deserialize)]
pub struct PageQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `?team_id` of a role removal.
#[derive(Deserialize)]
pub struct RoleScopeQuery {
    team_id: Option<String>,
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
    users::change_password(&state.services, &principal, input).await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---- users --------------------------------------------------------------------------------

/// `GET /users` (`users.manage`).
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
pub async fn get_user(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    email: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = users::get(&state.services, &principal, &email).await?;
    Ok(HttpResponse::Ok().json(user))
}

/// `PUT /users/{email}` (`users.manage`; a user may change their own display name).
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
pub async fn my_permissions(Authenticated(principal): Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(roles::permissions_view(
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
    let items = teams::list(&state.services, &principal).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}

/// `POST /teams` (`teams.create`): the caller owns the new team.
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
pub async fn get_team(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let team = teams::get(&state.services, &principal, &id).await?;
    Ok(HttpResponse::Ok().json(team))
}

/// `DELETE /teams/{id}`: by its owners or a platform admin.
pub async fn delete_team(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    teams::delete(&state.services, &principal, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /teams/{id}/members`: by the team's managers.
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
pub async fn remove_member_by_path(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, email) = path.into_inner();
    teams::remove(&state.services, &principal, &id, &email).await?;
    Ok(HttpResponse::NoContent().finish())
}
