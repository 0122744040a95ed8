//! The consent step of the built-in authorization server: `/admin/oauth/authorize` signs the
//! user in through the console (so the session cookie, scoped to `/admin`, comes along), asks
//! once per client whether it may act for them on the MCP endpoint it asked for, and sends the
//! browser back to the client with a code (or the refusal).

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::{ConsoleRefusal, ConsoleUser};
use crate::http::AppState;
use crate::service::oauth::{self, Authorization, AuthorizeQuery, AuthorizeRefusal};

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.to_owned()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

fn base_of(request: &HttpRequest) -> String {
    let (scheme, host) = crate::http::public_origin(request);
    format!("{scheme}://{host}")
}

/// A refusal the user reads (nothing is sent to an unverified redirect URI).
fn refusal_page(state: &AppState, user: &ConsoleUser, message: &str) -> HttpResponse {
    let mut context = user.context("oauth");
    context.insert("error", message);
    context.insert("request", &serde_json::Value::Null);
    state
        .console
        .page(StatusCode::BAD_REQUEST, "consent.html", &context)
}

fn refused(state: &AppState, user: &ConsoleUser, refusal: AuthorizeRefusal) -> HttpResponse {
    match refusal {
        AuthorizeRefusal::Page(message) => refusal_page(state, user, &message),
        AuthorizeRefusal::Redirect(location) => see_other(&location),
    }
}

/// `GET /admin/oauth/authorize`: sign in first if needed; a client consented to before gets
/// its code at once, another is shown the consent page.
pub async fn authorize_form(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: Option<ConsoleUser>,
    query: web::Query<AuthorizeQuery>,
) -> HttpResponse {
    let Some(user) = user else {
        let here = match request.query_string() {
            "" => request.path().to_owned(),
            query => format!("{}?{query}", request.path()),
        };
        let next: String = url::form_urlencoded::byte_serialize(here.as_bytes()).collect();
        return see_other(&format!("/admin/login?next={next}"));
    };
    let base = base_of(&request);
    let authorization = match oauth::check(&state.services, &user.principal, &base, &query).await {
        Ok(authorization) => authorization,
        Err(refusal) => return refused(&state, &user, refusal),
    };
    if oauth::consented(
        &state.services,
        &user.principal.email,
        &authorization.client_id,
    )
    .await
    {
        return match oauth::approve(
            &state.services,
            &user.principal,
            &base,
            &authorization,
            false,
        )
        .await
        {
            Ok(location) => see_other(&location),
            Err(error) => refusal_page(&state, &user, &error.description),
        };
    }
    consent_page(&state, &user, &query, &authorization)
}

fn consent_page(
    state: &AppState,
    user: &ConsoleUser,
    query: &AuthorizeQuery,
    authorization: &Authorization,
) -> HttpResponse {
    let mut context = user.context("oauth");
    let redirect_host = url::Url::parse(&authorization.redirect_uri)
        .ok()
        .and_then(|url| url.host_str().map(str::to_owned))
        .unwrap_or_else(|| authorization.redirect_uri.clone());
    context.insert(
        "request",
        &json!({
            "client_name": authorization.client_name,
            "client_id": authorization.client_id,
            "resource": authorization.resource,
            "redirect_host": redirect_host,
            "response_type": query.response_type,
            "redirect_uri": authorization.redirect_uri,
            "code_challenge": authorization.code_challenge,
            "code_challenge_method": query.code_challenge_method,
            "state": authorization.state,
            "resource_param": query.resource,
            "scope": query.scope,
        }),
    );
    state.console.page(StatusCode::OK, "consent.html", &context)
}

/// The consent form: the authorization request again, and the answer.
#[derive(Debug, Deserialize)]
pub struct ConsentForm {
    csrf: Option<String>,
    decision: Option<String>,
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    state: Option<String>,
    resource: Option<String>,
    scope: Option<String>,
}

/// `POST /admin/oauth/authorize`: the user's answer.
pub async fn authorize(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: ConsoleUser,
    form: web::Form<ConsentForm>,
) -> Result<HttpResponse, ConsoleRefusal> {
    let form = form.into_inner();
    user.check_csrf(form.csrf.as_deref())?;
    let query = AuthorizeQuery {
        response_type: form.response_type,
        client_id: form.client_id,
        redirect_uri: form.redirect_uri,
        code_challenge: form.code_challenge,
        code_challenge_method: form.code_challenge_method,
        state: form.state,
        resource: form.resource.filter(|resource| !resource.is_empty()),
        scope: form.scope.filter(|scope| !scope.is_empty()),
    };
    let base = base_of(&request);
    let authorization = match oauth::check(&state.services, &user.principal, &base, &query).await {
        Ok(authorization) => authorization,
        Err(refusal) => return Ok(refused(&state, &user, refusal)),
    };
    if form.decision.as_deref() != Some("allow") {
        return Ok(see_other(&oauth::declined(&base, &authorization)));
    }
    Ok(
        match oauth::approve(
            &state.services,
            &user.principal,
            &base,
            &authorization,
            true,
        )
        .await
        {
            Ok(location) => see_other(&location),
            Err(error) => refusal_page(&state, &user, &error.description),
        },
    )
}
