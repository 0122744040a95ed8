//! A user connecting their own account for an upstream that authenticates each user:
//! `GET /admin/upstreams/{id}/connect` sends the browser to the upstream's authorization server
//! (the authorization code flow with S256 PKCE; state and verifier in a short-lived Lax cookie
//! scoped to the callback), `GET /admin/upstream-oauth/callback` moves on (from this site, so
//! the Strict console session comes along) to `/admin/upstream-oauth/finish`, which exchanges
//! the code for the signed-in user's tokens, and `POST /admin/upstreams/{id}/disconnect` forgets them. The work is
//! [`crate::service::upstream_oauth`]'s.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use serde::Deserialize;

use super::pages::is_https;
use super::registry::flash_redirect;
use super::{ConsoleRefusal, ConsoleUser};
use crate::http::AppState;
use crate::service::upstream_oauth::{self, CALLBACK_PATH, Pending};

/// The cookie carrying a connection under way to its callback.
const COOKIE: &str = "mcpgate_upstream_oauth";
/// Where the cookie goes: the callback and where it moves on to.
const COOKIE_PATH: &str = "/admin/upstream-oauth";
/// How long the user may take at the authorization server.
const SECONDS: i64 = 600;
/// Where the user lands afterwards.
const BACK: &str = "/admin/gateways";

fn callback_url(request: &HttpRequest) -> String {
    let (scheme, host) = crate::http::public_origin(request);
    format!("{scheme}://{host}{CALLBACK_PATH}")
}

fn pending_cookie(value: String, max_age: i64, secure: bool) -> actix_web::cookie::Cookie<'static> {
    // Lax: the callback is a top-level navigation from the authorization server's site.
    actix_web::cookie::Cookie::build(COOKIE, value)
        .path(COOKIE_PATH)
        .http_only(true)
        .same_site(actix_web::cookie::SameSite::Lax)
        .secure(secure)
        .max_age(actix_web::cookie::time::Duration::seconds(max_age))
        .finish()
}

/// `GET /admin/upstreams/{id}/connect`: off to the upstream's authorization server.
pub async fn connect(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: ConsoleUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ConsoleRefusal> {
    let begun = upstream_oauth::begin(
        &state.services,
        &user.principal,
        &id,
        &callback_url(&request),
    )
    .await;
    Ok(match begun {
        Ok((target, pending)) => {
            let value = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(serde_json::to_vec(&pending).unwrap_or_default());
            HttpResponse::SeeOther()
                .insert_header((header::LOCATION, target))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .cookie(pending_cookie(value, SECONDS, is_https(&request)))
                .finish()
        }
        Err(error) => flash_redirect(BACK, &format!("Could not connect: {error}")),
    })
}

/// Where the callback moves on to, on this site (see [`callback`]).
pub const FINISH_PATH: &str = "/admin/upstream-oauth/finish";

/// What the authorization server sends back.
#[derive(Deserialize, serde::Serialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    /// RFC 9207: the authorization server that answered (checked when given).
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /admin/upstream-oauth/callback`: the authorization server's navigation carries no
/// Strict console session cookie, so this page moves on, from this site, to [`finish`] with
/// the same answer (a redirect would still count as the server's navigation).
pub async fn callback(state: web::Data<AppState>, query: web::Query<Callback>) -> HttpResponse {
    let next = format!(
        "{FINISH_PATH}?{}",
        serde_urlencoded::to_string(&*query).unwrap_or_default()
    );
    let mut context = tera::Context::new();
    context.insert("next", &next);
    context.insert("title", "Back from the authorization server.");
    state
        .console
        .page(actix_web::http::StatusCode::OK, "moving_on.html", &context)
}

/// `GET /admin/upstream-oauth/finish`: the code exchanged for the signed-in user's tokens.
pub async fn finish(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: ConsoleUser,
    query: web::Query<Callback>,
) -> Result<HttpResponse, ConsoleRefusal> {
    let pending: Option<Pending> = request.cookie(COOKIE).and_then(|cookie| {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cookie.value())
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    });
    let outcome = match (pending, &query.code, &query.error) {
        (_, _, Some(error)) => Err(format!(
            "the authorization server said {error}{}",
            query
                .error_description
                .as_deref()
                .map(|why| format!(" ({why})"))
                .unwrap_or_default()
        )),
        (Some(pending), Some(code), None)
            if query.state.as_deref() == Some(pending.state.as_str()) =>
        {
            upstream_oauth::complete(
                &state.services,
                &user.principal,
                &pending,
                code,
                query.iss.as_deref(),
                &callback_url(&request),
            )
            .await
            .map_err(|error| error.to_string())
        }
        _ => Err("this connection was not started here, or took too long; start it again".into()),
    };
    let mut response = match outcome {
        Ok(name) => flash_redirect(BACK, &format!("Your account is connected to {name}.")),
        Err(why) => flash_redirect(BACK, &format!("Could not connect: {why}")),
    };
    let mut spent = pending_cookie(String::new(), 0, is_https(&request));
    spent.make_removal();
    let _ = response.add_cookie(&spent);
    Ok(response)
}

/// The disconnect form.
#[derive(Deserialize)]
pub struct DisconnectForm {
    csrf: Option<String>,
}

/// `POST /admin/upstreams/{id}/disconnect`.
pub async fn disconnect(
    state: web::Data<AppState>,
    user: ConsoleUser,
    id: web::Path<String>,
    form: web::Form<DisconnectForm>,
) -> Result<HttpResponse, ConsoleRefusal> {
    user.check_csrf(form.csrf.as_deref())?;
    Ok(
        match upstream_oauth::disconnect(&state.services, &user.principal, &id).await {
            Ok(true) => flash_redirect(BACK, "Your account is disconnected."),
            Ok(false) => flash_redirect(BACK, "Your account was not connected."),
            Err(error) => flash_redirect(BACK, &format!("Could not disconnect: {error}")),
        },
    )
}
