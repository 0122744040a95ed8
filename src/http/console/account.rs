//! The console's account page: who you are, and changing your own password (the current one
//! checked as a sign-in is; other sessions end, this one continues on a fresh sign-in).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::pages::session_cookie;
use super::{ConsoleRefusal, ConsoleUser};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::service::identity::{PasswordChange, users};

async fn account_page(
    state: &AppState,
    user: &ConsoleUser,
    status: StatusCode,
    errors: Value,
) -> HttpResponse {
    let me = users::get(&state.services, &user.principal, &user.principal.email).await;
    let mut context = user.context("account");
    context.insert(
        "account",
        &match me {
            Ok(view) => json!({
                "email": view.email,
                "full_name": view.full_name.unwrap_or_default(),
                "is_admin": view.is_admin,
                "password_changed_at": view.password_changed_at,
            }),
            Err(_) => json!({"email": user.principal.email, "full_name": "", "is_admin": false,
                             "password_changed_at": null}),
        },
    );
    if let Some(general) = errors.get("_").and_then(Value::as_str) {
        context.insert("error", general);
    }
    context.insert("errors", &errors);
    context.insert(
        "apps",
        &crate::service::oauth::connected(&state.services, &user.principal).await,
    );
    state.console.page(status, "account.html", &context)
}

/// `GET /admin/account`.
pub async fn page(state: web::Data<AppState>, user: ConsoleUser) -> HttpResponse {
    account_page(&state, &user, StatusCode::OK, json!({})).await
}

/// A form carrying only its CSRF token.
#[derive(Deserialize)]
pub struct DisconnectForm {
    csrf: Option<String>,
}

/// `POST /admin/account/apps/{client_id}/disconnect`: the app's tokens stop working.
pub async fn disconnect(
    state: web::Data<AppState>,
    user: ConsoleUser,
    client_id: web::Path<String>,
    form: web::Form<DisconnectForm>,
) -> Result<HttpResponse, ConsoleRefusal> {
    user.check_csrf(form.csrf.as_deref())?;
    Ok(
        match crate::service::oauth::disconnect(&state.services, &user.principal, &client_id).await
        {
            Ok(_) => super::registry::flash_redirect("/admin/account", "The app is disconnected."),
            Err(error) => {
                account_page(
                    &state,
                    &user,
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"_": error.description}),
                )
                .await
            }
        },
    )
}

/// The change-password form.
#[derive(Deserialize)]
pub struct PasswordForm {
    csrf: Option<String>,
    current_password: String,
    new_password: String,
    confirm_password: String,
}

/// `POST /admin/account`: changes the signed-in user's password; errors are shown at their
/// fields.
pub async fn change_password(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: ConsoleUser,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, ConsoleRefusal> {
    let form = form.into_inner();
    user.check_csrf(form.csrf.as_deref())?;
    if form.new_password != form.confirm_password {
        let errors = json!({"confirm_password": "does not match the new password"});
        return Ok(account_page(&state, &user, StatusCode::UNPROCESSABLE_ENTITY, errors).await);
    }
    let change = PasswordChange {
        current_password: form.current_password,
        new_password: form.new_password.clone(),
    };
    if let Err(error) = users::change_password(&state.services, &user.principal, change).await {
        use actix_web::ResponseError;
        let errors = match &error {
            ApiError::InvalidField { field, message } => json!({ field.as_str(): message }),
            other => json!({"_": other.to_string()}),
        };
        return Ok(account_page(&state, &user, error.status_code(), errors).await);
    }
    // The change ended every sign-in made before it, this one too: sign in again with the
    // new password so the page continues.
    let origin = crate::http::origin(&request);
    let mut done = super::registry::flash_redirect(
        "/admin/account",
        "Your password is changed; your other sessions are signed out.",
    );
    if let Ok(session) = crate::service::tokens::sign_in(
        &state.services,
        &user.principal.email,
        form.new_password,
        &origin,
    )
    .await
    {
        let secure = crate::http::public_origin(&request).0 == "https";
        let _ = done.add_cookie(&session_cookie(session, secure));
    }
    Ok(done)
}
