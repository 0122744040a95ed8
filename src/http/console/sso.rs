//! Console single sign-on through the external providers of `OIDC_ISSUERS` that have a
//! `client_id`: the authorization code flow with PKCE (S256), `state` checked against a
//! short-lived cookie (the callback's CSRF check) and `nonce` against the ID token (its replay
//! check). The account is the one of the ID token's email, created just in time when the
//! provider allows it; a session cookie as for a password sign-in.
//!
//! The provider's redirect URI is `<public origin>/admin/sso/callback`.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::pages::{is_https, login_page, next_page, session_cookie};
use crate::actors::idp::SignInRequest;
use crate::http::AppState;

/// The cookie carrying a sign-in's state, nonce and PKCE verifier to its callback.
const SSO_COOKIE: &str = "mcpgate_sso";
/// How long a sign-in at the provider may take.
const SSO_SECONDS: i64 = 600;

/// A provider's button on the sign-in page.
#[derive(Serialize)]
pub struct Button {
    /// Where it leads.
    href: String,
    /// What it says.
    label: String,
}

/// The sign-in page's buttons, one per provider with a `client_id`.
pub fn buttons(state: &AppState, next: &str) -> Vec<Button> {
    let next: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
    state
        .auth
        .identity_providers()
        .all()
        .iter()
        .enumerate()
        .filter(|(_, provider)| provider.settings.client_id.is_some())
        .map(|(index, provider)| Button {
            href: format!("/admin/sso/{index}?next={next}"),
            label: provider.settings.label(),
        })
        .collect()
}

/// What the sign-in's cookie holds.
#[derive(Serialize, Deserialize)]
struct Pending {
    provider: usize,
    state: String,
    nonce: String,
    verifier: String,
    next: String,
}

fn random() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn callback_url(request: &HttpRequest) -> String {
    let (scheme, host) = crate::http::public_origin(request);
    format!("{scheme}://{host}/admin/sso/callback")
}

fn pending_cookie(value: String, max_age: i64, secure: bool) -> actix_web::cookie::Cookie<'static> {
    // Lax: the callback is a top-level navigation from the provider's site.
    actix_web::cookie::Cookie::build(SSO_COOKIE, value)
        .path("/admin/sso")
        .http_only(true)
        .same_site(actix_web::cookie::SameSite::Lax)
        .secure(secure)
        .max_age(actix_web::cookie::time::Duration::seconds(max_age))
        .finish()
}

/// The sign-in page again, saying why single sign-on did not work.
fn failed(state: &AppState, request: &HttpRequest, status: StatusCode, why: &str) -> HttpResponse {
    let mut response = login_page(state, status, "", Some(why), is_https(request), None);
    let mut expired = pending_cookie(String::new(), 0, is_https(request));
    expired.make_removal();
    let _ = response.add_cookie(&expired);
    response
}

/// `GET /admin/sso/{provider}?next=`: off to the provider's sign-in.
pub async fn start(
    state: web::Data<AppState>,
    request: HttpRequest,
    provider: web::Path<usize>,
    query: web::Query<super::pages::LoginQuery>,
) -> HttpResponse {
    let index = provider.into_inner();
    let providers = state.auth.identity_providers();
    if providers
        .all()
        .get(index)
        .is_none_or(|provider| provider.settings.client_id.is_none())
    {
        return failed(
            &state,
            &request,
            StatusCode::NOT_FOUND,
            "there is no such sign-in provider",
        );
    }
    let pending = Pending {
        provider: index,
        state: random(),
        nonce: random(),
        verifier: random(),
        next: next_page(query.next.as_deref()).to_owned(),
    };
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(pending.verifier.as_bytes()));
    let redirect_uri = callback_url(&request);
    let target = providers
        .authorization_url(
            index,
            SignInRequest {
                redirect_uri: &redirect_uri,
                state: &pending.state,
                nonce: &pending.nonce,
                challenge: &challenge,
            },
        )
        .await;
    let target = match target {
        Ok(target) => target,
        Err(error) => {
            let why = format!("the identity provider cannot be reached right now ({error})");
            return failed(&state, &request, StatusCode::BAD_GATEWAY, &why);
        }
    };
    let value = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&pending).unwrap_or_default());
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, target))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .cookie(pending_cookie(value, SSO_SECONDS, is_https(&request)))
        .finish()
}

/// The provider's answer.
#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    /// RFC 9207: the provider that answered (checked when given).
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /admin/sso/callback`: the provider sent the browser back.
pub async fn callback(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: web::Query<Callback>,
) -> HttpResponse {
    let query = query.into_inner();
    let pending = request
        .cookie(SSO_COOKIE)
        .and_then(|cookie| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(cookie.value())
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice::<Pending>(&bytes).ok());
    let Some(pending) = pending else {
        let why = "this sign-in was not started here, or took longer than 10 minutes: start again";
        return failed(&state, &request, StatusCode::BAD_REQUEST, why);
    };
    let same_state = query
        .state
        .as_deref()
        .is_some_and(|sent| super::same(sent, &pending.state));
    if !same_state {
        let why = "the sign-in's state does not match (a forged or stale request): start again";
        return failed(&state, &request, StatusCode::BAD_REQUEST, why);
    }
    if let Some(error) = &query.error {
        let why = format!(
            "the identity provider did not sign you in: {error} {}",
            query.error_description.as_deref().unwrap_or_default()
        );
        return failed(&state, &request, StatusCode::UNAUTHORIZED, why.trim());
    }
    let Some(code) = query.code.as_deref() else {
        let why = "the identity provider sent no code";
        return failed(&state, &request, StatusCode::BAD_REQUEST, why);
    };
    let providers = state.auth.identity_providers();
    let Some(provider) = providers.all().get(pending.provider) else {
        let why = "there is no such sign-in provider";
        return failed(&state, &request, StatusCode::BAD_REQUEST, why);
    };
    if query
        .iss
        .as_deref()
        .is_some_and(|iss| iss != provider.settings.issuer)
    {
        let why =
            "the answer comes from another provider than the sign-in was sent to: start again";
        return failed(&state, &request, StatusCode::BAD_REQUEST, why);
    }
    let id_token = match providers
        .exchange_code(
            pending.provider,
            code,
            &callback_url(&request),
            &pending.verifier,
        )
        .await
    {
        Ok(id_token) => id_token,
        Err(error) => {
            tracing::warn!(%error, "a console sign-in's code exchange failed");
            let why = format!("the sign-in could not be completed: {error}");
            return failed(&state, &request, StatusCode::BAD_GATEWAY, &why);
        }
    };
    let session = state
        .auth
        .sign_in_external(pending.provider, &id_token, &pending.nonce)
        .await;
    let session = match session {
        Ok(session) => session,
        Err(error) => {
            let status = match error {
                crate::auth::AuthError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                crate::auth::AuthError::Forbidden(_) => StatusCode::FORBIDDEN,
                _ => StatusCode::UNAUTHORIZED,
            };
            return failed(&state, &request, status, &error.to_string());
        }
    };
    // The session cookie is SameSite=Strict: set it on a page that then moves on from this
    // site (a redirect would still count as the provider's navigation, and carry no cookie).
    let secure = is_https(&request);
    let mut context = tera::Context::new();
    context.insert("next", next_page(Some(&pending.next)));
    let mut response = state
        .console
        .page(StatusCode::OK, "signed_in.html", &context);
    let _ = response.add_cookie(&session_cookie(session, secure));
    let mut expired = pending_cookie(String::new(), 0, secure);
    expired.make_removal();
    let _ = response.add_cookie(&expired);
    response
}
