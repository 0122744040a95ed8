//! The console's virtual servers and API tokens.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::pages::CsrfForm;
use super::{ConsoleRefusal, ConsoleUser};
use crate::http::AppState;
use crate::service::tokens::{self, TokenCreate};

async fn visible_servers(
    state: &AppState,
    user: &ConsoleUser,
) -> Vec<crate::registry::servers::ServerView> {
    crate::service::registry::visible_views::<crate::registry::servers::Servers>(
        &state.services,
        &user.principal,
        super::VISIBLE_MAX,
    )
    .await
    .unwrap_or_default()
}

/// A token's restrictions in words (besides its server).
fn limits(scope: &crate::auth::scope::TokenScope) -> String {
    let mut limits = Vec::new();
    if let Some(permissions) = &scope.permissions {
        limits.push(format!("only {}", permissions.join(", ")));
    }
    if !scope.ip_restrictions.is_empty() {
        limits.push(format!("from {}", scope.ip_restrictions.join(", ")));
    }
    if let Some(window) = &scope.time_restrictions {
        let days = if window.days.is_empty() {
            "every day".to_owned()
        } else {
            window.days.join(", ")
        };
        limits.push(format!(
            "{}–{} UTC, {days}",
            window.start_time, window.end_time
        ));
    }
    if limits.is_empty() {
        "none".to_owned()
    } else {
        limits.join("; ")
    }
}

async fn tokens_page(
    state: &AppState,
    user: &ConsoleUser,
    status: StatusCode,
    created: Option<Value>,
    flash: Option<&str>,
    error: Option<&str>,
) -> HttpResponse {
    let listed = tokens::of(&state.services, &user.principal.email)
        .await
        .unwrap_or_default();
    let visible = visible_servers(state, user).await;
    let server_name = |id: &str| {
        visible
            .iter()
            .find(|server| server.id == id)
            .map_or_else(|| id.to_owned(), |server| server.name.clone())
    };
    let tokens: Vec<Value> = listed
        .into_iter()
        .map(|token| {
            json!({
                "id": token.id,
                "name": token.name,
                "server": token.scope.server_id.as_deref().map_or_else(|| "any".to_owned(), server_name),
                "expires_at": token.expires_at,
                "created_at": token.created_at,
                "last_used_at": token.last_used_at,
                "limits": limits(&token.scope),
                "revoked": token.revoked_at.is_some(),
            })
        })
        .collect();
    let servers: Vec<Value> = visible
        .iter()
        .map(|server| json!({"id": server.id, "name": server.name}))
        .collect();
    let mut context = user.context("tokens");
    context.insert("tokens", &tokens);
    context.insert("servers", &servers);
    context.insert("created", &created);
    user.outcome(&mut context, "tokens.create", flash, error);
    state.console.page(status, "tokens.html", &context)
}

/// `GET /admin/tokens`.
pub async fn tokens(state: web::Data<AppState>, user: ConsoleUser) -> HttpResponse {
    tokens_page(&state, &user, StatusCode::OK, None, None, None).await
}

/// The new-token form.
#[derive(Deserialize)]
pub struct TokenForm {
    name: String,
    expires_in_days: Option<String>,
    server_id: Option<String>,
    ip_restrictions: Option<String>,
    /// Comma-separated permissions to keep (empty: all of yours).
    permissions: Option<String>,
    /// `HH:MM` a daily window starts (with `end_time`).
    start_time: Option<String>,
    /// `HH:MM` it ends.
    end_time: Option<String>,
    /// Comma-separated days (`mon` … `sun`; empty: every day).
    days: Option<String>,
    csrf: Option<String>,
}

/// A comma-separated form field as a list (empty entries left out).
fn listed(field: Option<&str>) -> Vec<String> {
    field
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `POST /admin/tokens`: creates a token and shows it once.
pub async fn create_token(
    state: web::Data<AppState>,
    user: ConsoleUser,
    form: web::Form<TokenForm>,
) -> Result<HttpResponse, ConsoleRefusal> {
    let form = form.into_inner();
    user.check_csrf(form.csrf.as_deref())?;
    let ips = listed(form.ip_restrictions.as_deref());
    let permissions = listed(form.permissions.as_deref());
    let start = form
        .start_time
        .as_deref()
        .map(str::trim)
        .unwrap_or_default();
    let end = form.end_time.as_deref().map(str::trim).unwrap_or_default();
    let window = (!start.is_empty() || !end.is_empty()).then(
        || json!({"start_time": start, "end_time": end, "days": listed(form.days.as_deref())}),
    );
    let days = match form
        .expires_in_days
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        None => None,
        Some(days) => match days.parse::<u32>() {
            Ok(days) => Some(days),
            Err(_) => {
                return Ok(tokens_page(
                    &state,
                    &user,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    None,
                    None,
                    Some("expires_in_days: a whole number of days is expected"),
                )
                .await);
            }
        },
    };
    let input: Result<TokenCreate, _> = serde_json::from_value(json!({
        "name": form.name,
        "expires_in_days": days,
        "scope": {
            "server_id": form.server_id.filter(|id| !id.is_empty()),
            "ip_restrictions": ips,
            "permissions": (!permissions.is_empty()).then_some(permissions),
            "time_restrictions": window,
        },
    }));
    let input = match input {
        Ok(input) => input,
        Err(error) => {
            return Ok(tokens_page(
                &state,
                &user,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                None,
                Some(&error.to_string()),
            )
            .await);
        }
    };
    Ok(
        match tokens::issue(&state.services, &user.principal, input).await {
            Ok(created) => {
                let shown =
                    json!({"name": created.token.name, "access_token": created.access_token});
                tokens_page(&state, &user, StatusCode::CREATED, Some(shown), None, None).await
            }
            Err(error) => {
                tokens_page(
                    &state,
                    &user,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    None,
                    None,
                    Some(&error.to_string()),
                )
                .await
            }
        },
    )
}

/// `POST /admin/tokens/{id}/revoke`.
pub async fn revoke(
    state: web::Data<AppState>,
    user: ConsoleUser,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleRefusal> {
    user.check_csrf(form.csrf.as_deref())?;
    Ok(
        match tokens::revoke(&state.services, &user.principal, &id).await {
            Ok(()) => {
                tokens_page(
                    &state,
                    &user,
                    StatusCode::OK,
                    None,
                    Some("Token revoked."),
                    None,
                )
                .await
            }
            Err(error) => {
                tokens_page(
                    &state,
                    &user,
                    StatusCode::NOT_FOUND,
                    None,
                    None,
                    Some(&error.to_string()),
                )
                .await
            }
        },
    )
}
