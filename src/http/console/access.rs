//! The console's access pages: users (and role assignment) for those with `users.manage`,
//! teams and their members for everyone (each sees their own teams; admins all).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ConsoleRefusal, ConsoleUser};
use crate::auth::On;
use crate::auth::rbac::ROLES;
use crate::http::AppState;
use crate::service::identity::{
    MemberAdd, RoleAssignment, TeamCreate, UserCreate, UserUpdate, roles, teams, users,
};

/// The outcome a page shows after a form: its status, a confirmation or an error.
type Outcome = (StatusCode, Option<String>, Option<String>);

fn outcome<T>(
    result: Result<T, crate::http::error::ApiError>,
    done: impl FnOnce(T) -> String,
) -> Outcome {
    match result {
        Ok(value) => (StatusCode::OK, Some(done(value)), None),
        Err(error) => {
            use actix_web::ResponseError;
            let message = match &error {
                crate::http::error::ApiError::InvalidField { field, message } => {
                    format!("{field}: {message}")
                }
                other => other.to_string(),
            };
            (error.status_code(), None, Some(message))
        }
    }
}

async fn users_page(state: &AppState, user: &ConsoleUser, outcome: Outcome) -> HttpResponse {
    let (status, flash, error) = outcome;
    if !user.principal.permits("users.manage", On::Platform) {
        let mut context = user.context("users");
        context.insert("error", "Managing users needs the users.manage permission.");
        context.insert("users", &Vec::<Value>::new());
        context.insert("roles", &Vec::<String>::new());
        context.insert("teams", &Vec::<Value>::new());
        context.insert("default_role", "");
        return state
            .console
            .page(StatusCode::FORBIDDEN, "users.html", &context);
    }
    let users: Vec<Value> = users::list(&state.services, &user.principal, Some(500), None)
        .await
        .map(|page| page.items)
        .unwrap_or_default()
        .into_iter()
        .map(|view| {
            json!({
                "email": view.email,
                "full_name": view.full_name.unwrap_or_default(),
                "is_admin": view.is_admin,
                "is_active": view.is_active,
                "locked": view.locked_until.is_some(),
                "is_you": view.email == user.principal.email,
            })
        })
        .collect();
    let teams = teams::list(&state.services, &user.principal)
        .await
        .unwrap_or_default();
    let mut context = user.context("users");
    context.insert("users", &users);
    context.insert("roles", &ROLES);
    context.insert("default_role", &state.settings.auth.identity.default_role);
    context.insert(
        "teams",
        &teams
            .iter()
            .filter(|team| !team.is_personal)
            .map(|team| json!({"id": team.id, "name": team.name}))
            .collect::<Vec<_>>(),
    );
    // A confirmation from this form, or one carried across a redirect.
    context.insert("flash", &flash.or_else(|| user.flash.clone()));
    context.insert("error", &error);
    state.console.page(status, "users.html", &context)
}

/// `GET /admin/users`.
pub async fn users(state: web::Data<AppState>, user: ConsoleUser) -> HttpResponse {
    users_page(&state, &user, (StatusCode::OK, None, None)).await
}

/// The new-user form.
#[derive(Deserialize)]
pub struct UserForm {
    email: String,
    password: String,
    full_name: Option<String>,
    role: Option<String>,
    csrf: Option<String>,
}

/// `POST /admin/users`.
pub async fn create_user(
    state: web::Data<AppState>,
    user: ConsoleUser,
    form: web::Form<UserForm>,
) -> Result<HttpResponse, ConsoleRefusal> {
    let form = form.into_inner();
    user.check_csrf(form.csrf.as_deref())?;
    let input = UserCreate {
        email: form.email,
        password: form.password,
        full_name: form.full_name.filter(|name| !name.trim().is_empty()),
        role: form.role,
        is_admin: false,
    };
    let result = users::create(&state.services, &user.principal, input).await;
    let outcome = outcome(result, |created| format!("User {} created.", created.email));
    Ok(users_page(&state, &user, outcome).await)
}

/// The role-assignment form.
#[derive(Deserialize)]
pub struct RoleForm {
    email: String,
    role: String,
    team_id: Option<String>,
    csrf: Option<String>,
}

/// `POST /admin/users/roles`.
pub async fn assign_role(
    state: web::Data<AppState>,
    user: ConsoleUser,
    form: web::Form<RoleForm>,
) -> Result<HttpResponse, ConsoleRefusal> {
    let form = form.into_inner();
    user.check_csrf(form.csrf.as_deref())?;
    let input = RoleAssignment {
        role: form.role.clone(),
        team_id: form.team_id.filter(|team| !team.is_empty()),
    };
    let result = roles::grant(&state.services, &user.principal, &form.email, input).await;
    let outcome = outcome(result, |_| format!("{} is now {}.", form.email, form.role));
    Ok(users_page(&state, &user, outcome).await)
}

/// A form acting on one user (`/admin/users/{email}/{action}`).
#[derive(Deserialize)]
pub struct UserActionForm {
    csrf: Option<String>,
    /// `enable` or `disable` (state).
    state: Option<String>,
    /// The new password (reset).
    password: Option<String>,
    /// The email typed again (delete).
    confirm: Option<String>,
}

/// `POST /admin/users/{email}/{action}`: enable or disable (`state`), `unlock`, `password`
/// (reset) or `delete` (the email typed again to confirm) — the REST API's operations.
pub async fn user_action(
    state: web::Data<AppState>,
    user: ConsoleUser,
    path: web::Path<(String, String)>,
    form: web::Form<UserActionForm>,
) -> Result<HttpResponse, ConsoleRefusal> {
    let (email, action) = path.into_inner();
    let form = form.into_inner();
    user.check_csrf(form.csrf.as_deref())?;
    let update = |input: UserUpdate| users::update(&state.services, &user.principal, &email, input);
    let blank = || UserUpdate {
        full_name: None,
        is_active: None,
        is_admin: None,
        password: None,
        unlock: false,
    };
    let result = match action.as_str() {
        "state" => {
            let active = form.state.as_deref() == Some("enable");
            let input = UserUpdate {
                is_active: Some(active),
                ..blank()
            };
            update(input).await.map(|_| {
                if active {
                    format!("{email} can sign in again.")
                } else {
                    format!("{email} is disabled; their sign-ins and tokens stopped working.")
                }
            })
        }
        "unlock" => {
            let input = UserUpdate {
                unlock: true,
                ..blank()
            };
            update(input).await.map(|_| format!("{email} is unlocked."))
        }
        "password" => {
            let input = UserUpdate {
                password: Some(form.password.unwrap_or_default()),
                ..blank()
            };
            update(input)
                .await
                .map(|_| format!("{email}'s password is reset; their sign-ins ended."))
        }
        "delete" => {
            if form.confirm.as_deref().map(str::trim) != Some(email.as_str()) {
                Err(crate::http::error::ApiError::InvalidField {
                    field: "confirm".into(),
                    message: format!("type {email} to confirm the deletion"),
                })
            } else {
                users::delete(&state.services, &user.principal, &email)
                    .await
                    .map(|()| {
                        format!(
                            "{email} is deleted, with the teams they owned, their tokens and roles."
                        )
                    })
            }
        }
        other => Err(crate::http::error::ApiError::NotFound(format!(
            "no user action {other:?}"
        ))),
    };
    Ok(match result {
        Ok(message) => super::registry::flash_redirect("/admin/users", &message),
        Err(error) => {
            users_page(&state, &user, outcome::<()>(Err(error), |()| String::new())).await
        }
    })
}

async fn teams_page(state: &AppState, user: &ConsoleUser, outcome: Outcome) -> HttpResponse {
    let (status, flash, error) = outcome;
    let teams: Vec<Value> = teams::list(&state.services, &user.principal)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|team| {
            let manageable = user
                .principal
                .permits("teams.manage_members", On::Team(&team.id));
            let mut value = serde_json::to_value(&team).unwrap_or_default();
            value["manageable"] = json!(manageable);
            value
        })
        .collect();
    let mut context = user.context("teams");
    context.insert("teams", &teams);
    user.outcome(
        &mut context,
        "teams.create",
        flash.as_deref(),
        error.as_deref(),
    );
    state.console.page(status, "teams.html", &context)
}

/// `GET /admin/teams`.
pub async fn teams(state: web::Data<AppState>, user: ConsoleUser) -> HttpResponse {
    teams_page(&state, &user, (StatusCode::OK, None, None)).await
}

/// The new-team form.
#[derive(Deserialize)]
pub struct TeamForm {
    name: String,
    description: Option<String>,
    csrf: Option<String>,
}

/// `POST /admin/teams`.
pub async fn create_team(
    state: web::Data<AppState>,
    user: ConsoleUser,
    form: web::Form<TeamForm>,
) -> Result<HttpResponse, ConsoleRefusal> {
    let form = form.into_inner();
    user.check_csrf(form.csrf.as_deref())?;
    let input = TeamCreate {
        name: form.name,
        description: form.description.filter(|d| !d.trim().is_empty()),
    };
    let result = teams::create(&state.services, &user.principal, input).await;
    // The creator's grants changed (a new team): reload them for the page.
    let user = refreshed(&state, user).await;
    let outcome = outcome(result, |team| format!("Team {} created.", team.name));
    Ok(teams_page(&state, &user, outcome).await)
}

/// The same user with grants read again (after a change to their own teams).
async fn refreshed(state: &AppState, mut user: ConsoleUser) -> ConsoleUser {
    if let Ok(Some(grants)) = state.auth.scoping().grants(&user.principal.email).await {
        user.principal = user.principal.with_grants(grants);
    }
    user
}

/// The add-member form.
#[derive(Deserialize)]
pub struct MemberForm {
    email: String,
    role: Option<String>,
    csrf: Option<String>,
}

/// `POST /admin/teams/{id}/members`.
pub async fn add_member(
    state: web::Data<AppState>,
    user: ConsoleUser,
    id: web::Path<String>,
    form: web::Form<MemberForm>,
) -> Result<HttpResponse, ConsoleRefusal> {
    let form = form.into_inner();
    user.check_csrf(form.csrf.as_deref())?;
    let input = MemberAdd {
        email: form.email.clone(),
        role: form.role,
    };
    let result = teams::join(&state.services, &user.principal, &id, input).await;
    let outcome = outcome(result, |team| {
        format!("{} added to {}.", form.email, team.name)
    });
    Ok(teams_page(&state, &user, outcome).await)
}

/// The remove-member form.
#[derive(Deserialize)]
pub struct RemoveForm {
    email: String,
    csrf: Option<String>,
}

/// `POST /admin/teams/{id}/members/remove`.
pub async fn remove_member(
    state: web::Data<AppState>,
    user: ConsoleUser,
    id: web::Path<String>,
    form: web::Form<RemoveForm>,
) -> Result<HttpResponse, ConsoleRefusal> {
    let form = form.into_inner();
    user.check_csrf(form.csrf.as_deref())?;
    let result = teams::remove(
        &state.services,
        &user.principal,
        &id.into_inner(),
        &form.email,
    )
    .await;
    let user = refreshed(&state, user).await;
    let outcome = outcome(result, |_| format!("{} removed.", form.email));
    Ok(teams_page(&state, &user, outcome).await)
}
