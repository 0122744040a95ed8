//! The console's pages: sign-in and sign-out, the dashboard (and its live figures), tools.

use std::time::Duration;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::registry::{Kind, ListQuery, list_into, team_names};
use super::{ConsoleRefusal, ConsoleUser, LOGIN_CSRF_COOKIE, same};
use crate::actors::metrics::{BUCKETS, MetricsSnapshot};
use crate::auth::On;
use crate::auth::{AuthError, Principal};
use crate::catalog::Scope;
use crate::http::AppState;
use crate::http::identity::SESSION_COOKIE;
use crate::http::mcp::sse::{self, SseBody, SseEvent};
use crate::registry::tools::{RequestType, ToolCreate, Tools};

/// How often the dashboard's figures are sent.
const FIGURES_EVERY: Duration = Duration::from_secs(2);

pub(super) fn cookie(
    name: &str,
    value: String,
    max_age_seconds: i64,
    secure: bool,
) -> actix_web::cookie::Cookie<'static> {
    actix_web::cookie::Cookie::build(name.to_owned(), value)
        .path("/admin")
        .http_only(true)
        .same_site(actix_web::cookie::SameSite::Strict)
        .secure(secure)
        .max_age(actix_web::cookie::time::Duration::seconds(max_age_seconds))
        .finish()
}

/// The session cookie of a sign-in.
pub(super) fn session_cookie(
    session: crate::actors::auth::Session,
    secure: bool,
) -> actix_web::cookie::Cookie<'static> {
    cookie(
        SESSION_COOKIE,
        session.access_token,
        session.expires_in.as_secs() as i64,
        secure,
    )
}

fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_owned()))
        .finish()
}

/// The sign-in form's fields.
#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    csrf: Option<String>,
    next: Option<String>,
}

/// `GET /admin/login`'s query: where to go once signed in.
#[derive(Deserialize)]
pub struct LoginQuery {
    pub(super) next: Option<String>,
}

/// A place to go after signing in: a console path only (never another site).
pub(super) fn next_page(next: Option<&str>) -> &str {
    match next {
        Some(path)
            if path.starts_with("/admin")
                && !path.starts_with("//")
                && !path.contains(['\\', '\r', '\n']) =>
        {
            path
        }
        _ => "/admin",
    }
}

pub(super) fn login_page(
    state: &AppState,
    status: StatusCode,
    email: &str,
    error: Option<&str>,
    secure: bool,
    next: Option<&str>,
) -> HttpResponse {
    let token = crate::auth::password::generate(32);
    let mut context = tera::Context::new();
    context.insert("user", &Value::Null);
    context.insert("csrf", &token);
    context.insert("page", "login");
    context.insert("email", email);
    context.insert("flash", &Value::Null);
    context.insert("error", &error);
    context.insert("next", next_page(next));
    context.insert("passwords", &state.settings.auth.identity.password_sign_in);
    context.insert("providers", &super::sso::buttons(state, next_page(next)));
    let mut response = state.console.page(status, "login.html", &context);
    let _ = response.add_cookie(&cookie(LOGIN_CSRF_COOKIE, token, 3600, secure));
    response
}

pub(super) fn is_https(request: &HttpRequest) -> bool {
    crate::http::public_origin(request).0 == "https"
}

/// `GET /admin/login`.
pub async fn login_form(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: web::Query<LoginQuery>,
) -> HttpResponse {
    let next = query.next.as_deref();
    login_page(&state, StatusCode::OK, "", None, is_https(&request), next)
}

/// `POST /admin/login`: the identity sign-in; the session cookie on success.
pub async fn login(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, ConsoleRefusal> {
    let form = form.into_inner();
    let expected = request
        .cookie(LOGIN_CSRF_COOKIE)
        .map(|cookie| cookie.value().to_owned());
    match (&expected, &form.csrf) {
        (Some(expected), Some(sent)) if same(expected, sent) => {}
        _ => return Err(ConsoleRefusal::Csrf),
    }
    let secure = is_https(&request);
    let origin = crate::http::origin(&request);
    match crate::service::tokens::sign_in(&state.services, &form.email, form.password, &origin)
        .await
    {
        Ok(session) => {
            let mut response = redirect(next_page(form.next.as_deref()));
            let _ = response.add_cookie(&session_cookie(session, secure));
            Ok(response)
        }
        Err(error) => {
            let status = match error {
                AuthError::Locked { .. } => StatusCode::TOO_MANY_REQUESTS,
                AuthError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                AuthError::Forbidden(_) => StatusCode::FORBIDDEN,
                _ => StatusCode::UNAUTHORIZED,
            };
            let message = error.to_string();
            Ok(login_page(
                &state,
                status,
                &form.email,
                Some(&message),
                secure,
                form.next.as_deref(),
            ))
        }
    }
}

/// A form carrying only its CSRF token.
#[derive(Deserialize)]
pub struct CsrfForm {
    pub(super) csrf: Option<String>,
}

/// `POST /admin/logout`: revokes the session's token and clears the cookie.
pub async fn logout(
    state: web::Data<AppState>,
    user: ConsoleUser,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleRefusal> {
    user.check_csrf(form.csrf.as_deref())?;
    crate::service::tokens::sign_out(&state.services, &user.principal)
        .await
        .map_err(|_| ConsoleRefusal::Unavailable)?;
    let mut response = redirect("/admin/login");
    let mut expired = cookie(SESSION_COOKIE, String::new(), 0, false);
    expired.make_removal();
    let _ = response.add_cookie(&expired);
    Ok(response)
}

/// The live figures of the dashboard.
#[derive(Serialize, Default)]
struct Figures {
    counts: serde_json::Map<String, Value>,
    calls: Value,
    pool: Option<Value>,
    /// Each upstream's health, by id, as the dashboard writes it.
    upstreams: serde_json::Map<String, Value>,
}

/// An upstream's health in words: `online`, or `offline` with why and since when.
fn health_text(gateway: &crate::registry::gateways::GatewayView) -> String {
    let at = |at: Option<chrono::DateTime<chrono::Utc>>| {
        at.map(|at| at.format("%Y-%m-%d %H:%M:%S UTC").to_string())
    };
    if gateway.reachable {
        "online".into()
    } else {
        match (&gateway.last_error, at(gateway.last_error_at)) {
            (Some(error), Some(at)) => format!("offline: {error} ({at})"),
            (Some(error), None) => format!("offline: {error}"),
            _ => "offline".into(),
        }
    }
}

/// Call totals and latency percentiles (from the histogram buckets) of every tool.
fn call_figures(metrics: &MetricsSnapshot, per_minute: f64) -> Value {
    let mut buckets = [0u64; BUCKETS.len()];
    let (mut total, mut failures) = (0u64, 0u64);
    for stats in metrics.tools.values() {
        total += stats.successes + stats.failures;
        failures += stats.failures;
        for (sum, count) in buckets.iter_mut().zip(stats.buckets) {
            *sum += count;
        }
    }
    let counted: u64 = buckets.iter().sum();
    let percentile = |p: f64| -> String {
        if counted == 0 {
            return "–".into();
        }
        let wanted = (p * counted as f64).ceil() as u64;
        let mut seen = 0;
        for (bound, count) in BUCKETS.iter().zip(buckets) {
            seen += count;
            if seen >= wanted {
                return format!("≤ {} ms", bound * 1000.0);
            }
        }
        format!("> {} ms", BUCKETS[BUCKETS.len() - 1] * 1000.0)
    };
    json!({
        "total": total,
        "per_minute": format!("{per_minute:.1}"),
        "error_rate": if total == 0 { "–".to_owned() } else { format!("{:.1} %", failures as f64 * 100.0 / total as f64) },
        "latency": format!("{} / {} / {}", percentile(0.5), percentile(0.95), percentile(0.99)),
    })
}

async fn figures(
    state: &AppState,
    principal: &Principal,
    per_minute: f64,
) -> (Figures, u64, Vec<crate::registry::gateways::GatewayView>) {
    let gateways: Vec<crate::registry::gateways::GatewayView> =
        crate::service::registry::visible_views::<crate::registry::gateways::Gateways>(
            &state.services,
            principal,
            super::VISIBLE_MAX,
        )
        .await
        .unwrap_or_default();
    let upstreams = gateways
        .iter()
        .map(|gateway| (gateway.id.clone(), json!(health_text(gateway))))
        .collect();
    let catalog = state.catalog.current();
    let scope = Scope::All;
    let mut counts = serde_json::Map::new();
    counts.insert("servers".into(), json!(catalog.servers_seen_by(principal)));
    counts.insert(
        "tools".into(),
        json!(catalog.tools(&scope, principal).len()),
    );
    counts.insert(
        "resources".into(),
        json!(
            catalog.resources(&scope, principal).len() + catalog.templates(&scope, principal).len()
        ),
    );
    counts.insert(
        "prompts".into(),
        json!(catalog.prompts(&scope, principal).len()),
    );
    counts.insert(
        "gateways".into(),
        json!(catalog.gateways_seen_by(principal)),
    );
    if let Ok(users) = crate::service::identity::users::count(&state.services, principal).await {
        counts.insert("users".into(), json!(users));
    }
    let metrics = state.metrics.snapshot().await;
    let total: u64 = metrics
        .tools
        .values()
        .map(|stats| stats.successes + stats.failures)
        .sum();
    let pool = if principal.permits("admin.system", On::Platform) {
        state.db.stats().await.ok().map(|stats| {
            json!({
                "backend": stats.backend,
                "in_use": stats.in_use,
                "idle": stats.idle,
                "waiting": stats.waiting,
                "checkout_timeouts": stats.checkout_timeouts,
                "retries": stats.retries,
                "breaker": format!("{:?}", stats.breaker.state).to_lowercase(),
            })
        })
    } else {
        None
    };
    (
        Figures {
            counts,
            calls: call_figures(&metrics, per_minute),
            pool,
            upstreams,
        },
        total,
        gateways,
    )
}

/// `GET /admin`: the dashboard.
pub async fn dashboard(state: web::Data<AppState>, user: ConsoleUser) -> HttpResponse {
    let (figures, _, upstreams) = figures(&state, &user.principal, 0.0).await;
    let mut context = user.context("dashboard");
    let labels = [
        ("servers", "Virtual servers"),
        ("tools", "Tools"),
        ("resources", "Resources"),
        ("prompts", "Prompts"),
        ("gateways", "Gateways"),
        ("users", "Users"),
    ];
    let counts: Vec<Value> = labels
        .iter()
        .filter_map(|(key, label)| {
            figures
                .counts
                .get(*key)
                .map(|value| json!({"key": key, "label": label, "value": value}))
        })
        .collect();
    context.insert("counts", &counts);
    // An empty gateway shows what to do first.
    let count = |key: &str| figures.counts.get(key).and_then(Value::as_u64).unwrap_or(0);
    let has_tools = count("tools") > 0;
    let has_servers = count("servers") > 0;
    context.insert(
        "setup",
        &json!({
            "show": !(has_tools && has_servers),
            "has_tools": has_tools,
            "has_servers": has_servers,
            "may_register": user.principal.permits("gateways.create", On::Anywhere),
        }),
    );
    context.insert("calls", &figures.calls);
    context.insert("pool", &figures.pool);
    let upstreams: Vec<Value> = upstreams
        .into_iter()
        .map(|gateway| {
            json!({
                "id": gateway.id,
                "name": gateway.name,
                "url": gateway.url,
                "reachable": gateway.reachable,
                "health": health_text(&gateway),
                "last_seen": gateway.last_seen_at,
            })
        })
        .collect();
    context.insert("upstreams", &upstreams);
    state
        .console
        .page(StatusCode::OK, "dashboard.html", &context)
}

/// `GET /admin/events`: the dashboard's figures every two seconds (SSE), until the page
/// closes or the gateway stops.
pub async fn events(state: web::Data<AppState>, user: ConsoleUser) -> HttpResponse {
    let permit = match state.streams.acquire_shared(&user.principal.email).await {
        Ok(permit) => permit,
        Err(exceeded) => {
            return HttpResponse::TooManyRequests()
                .insert_header(("Retry-After", exceeded.retry_after.as_secs().to_string()))
                .content_type("text/plain; charset=utf-8")
                .body(exceeded.message);
        }
    };
    let (sender, receiver) = tokio::sync::mpsc::channel::<SseEvent>(4);
    let principal = user.principal;
    let shutdown = state.shutdown.clone();
    let state = state.into_inner();
    actix_web::rt::spawn(async move {
        let mut last: Option<(std::time::Instant, u64)> = None;
        loop {
            let per_minute = match last {
                Some((at, previous)) if at.elapsed().as_secs_f64() > 0.0 => {
                    let now_total = state
                        .metrics
                        .snapshot()
                        .await
                        .tools
                        .values()
                        .map(|stats| stats.successes + stats.failures)
                        .sum::<u64>();
                    (now_total.saturating_sub(previous)) as f64 * 60.0 / at.elapsed().as_secs_f64()
                }
                _ => 0.0,
            };
            let (figures, total, _) = figures(&state, &principal, per_minute).await;
            last = Some((std::time::Instant::now(), total));
            let data = serde_json::to_value(&figures).unwrap_or_default();
            if sender.send(SseEvent::Named("figures", data)).await.is_err() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(FIGURES_EVERY) => {}
                _ = shutdown.cancelled() => return,
                _ = sender.closed() => return,
            }
        }
    });
    sse::response(
        SseBody::new(receiver, None, sse::LONG_LIVED_KEEP_ALIVE).holding(permit),
        &[],
    )
}

/// The new-tool form.
#[derive(Deserialize, Serialize, Default)]
pub struct ToolForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    request_type: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    input_schema: String,
    #[serde(default, skip_serializing)]
    csrf: Option<String>,
}

async fn tools_page(
    state: &AppState,
    user: &ConsoleUser,
    status: StatusCode,
    query: &ListQuery,
    form: &ToolForm,
    flash: Option<&str>,
    refused: Option<&super::registry::Refused>,
) -> HttpResponse {
    let mut context = user.context("tools");
    // A problem with one field is also shown beside it.
    let mut errors = serde_json::Map::new();
    if let Some(super::registry::Refused {
        field: Some(field),
        message,
        ..
    }) = refused
    {
        errors.insert(field.clone(), json!(message));
    }
    context.insert("errors", &errors);
    let error = refused.map(super::registry::Refused::summary);
    // From the registry, so that disabled tools are listed too (the catalog serves enabled ones).
    let views = Tools::views(state, user).await;
    let teams = team_names(state, user).await;
    list_into(&mut context, &user.principal, &teams, "tools", query, views);
    // Where each federated tool comes from, by name.
    let upstreams: serde_json::Map<String, Value> = state
        .catalog
        .current()
        .gateways()
        .iter()
        .map(|gateway| (gateway.id.clone(), json!(gateway.name)))
        .collect();
    context.insert("upstream_names", &upstreams);
    context.insert("form", form);
    context.insert("methods", &["GET", "POST", "PUT", "PATCH", "DELETE"]);
    user.outcome(&mut context, "tools.create", flash, error.as_deref());
    state.console.page(status, "tools.html", &context)
}

/// `GET /admin/tools`.
pub async fn tools(
    state: web::Data<AppState>,
    user: ConsoleUser,
    query: web::Query<ListQuery>,
) -> HttpResponse {
    let form = ToolForm {
        request_type: "GET".into(),
        ..ToolForm::default()
    };
    tools_page(&state, &user, StatusCode::OK, &query, &form, None, None).await
}

/// `POST /admin/tools`: creates a REST tool; a bad field is shown in the page with the form
/// kept.
pub async fn create_tool(
    state: web::Data<AppState>,
    user: ConsoleUser,
    form: web::Form<ToolForm>,
) -> Result<HttpResponse, ConsoleRefusal> {
    let form = form.into_inner();
    user.check_csrf(form.csrf.as_deref())?;
    use super::registry::Refused;
    let outcome: Result<String, Refused> = async {
        user.principal
            .authorize("tools.create", On::Anywhere)
            .map_err(|error| Refused::from(crate::http::ApiError::from_auth(error.into())))?;
        let input_schema = if form.input_schema.trim().is_empty() {
            None
        } else {
            Some(
                serde_json::from_str::<Value>(&form.input_schema).map_err(|error| {
                    Refused::field("input_schema", format!("not valid JSON ({error})"))
                })?,
            )
        };
        let request_type: RequestType =
            serde_json::from_value(json!(form.request_type.to_uppercase())).map_err(|_| {
                Refused::field("request_type", "use GET, POST, PUT, PATCH or DELETE")
            })?;
        let input: ToolCreate = serde_path_to_error::deserialize(json!({
            "name": form.name.trim(),
            "url": form.url.trim(),
            "request_type": request_type,
            "description": (!form.description.trim().is_empty()).then(|| form.description.trim()),
            "input_schema": input_schema,
        }))
        .map_err(|error| {
            let field = error.path().to_string();
            Refused::field(&field, error.into_inner().to_string())
        })?;
        let created = Tools::add(&state, &user, input)
            .await
            .map_err(Refused::from)?;
        Ok(created["name"].as_str().unwrap_or_default().to_owned())
    }
    .await;
    Ok(match outcome {
        Ok(name) => {
            let empty = ToolForm {
                request_type: "GET".into(),
                ..ToolForm::default()
            };
            let flash = format!("Tool {name} created.");
            tools_page(
                &state,
                &user,
                StatusCode::CREATED,
                &ListQuery::default(),
                &empty,
                Some(&flash),
                None,
            )
            .await
        }
        Err(refused) => {
            let query = ListQuery::default();
            let status = refused.status;
            tools_page(&state, &user, status, &query, &form, None, Some(&refused)).await
        }
    })
}
