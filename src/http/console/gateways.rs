//! The console's gateways page: upstreams with their health (state, breaker, latency, a
//! 24-hour strip) and federated tools; registering one from a form at the REST API's parity,
//! testing its connection and discovering it again.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::pages::CsrfForm;
use super::registry::{Kind, ListQuery, list_into, team_names};
use super::{ConsoleRefusal, ConsoleUser};
use crate::catalog::Scope;
use crate::http::AppState;
use crate::registry::gateways::Gateways;
use crate::service::gateways::Activity;

async fn gateways_page(
    state: &AppState,
    user: &ConsoleUser,
    status: StatusCode,
    query: &ListQuery,
    flash: Option<&str>,
    error: Option<&str>,
) -> HttpResponse {
    let mut context = user.context("gateways");
    let views = Gateways::views(state, user).await;
    let teams = team_names(state, user).await;
    list_into(
        &mut context,
        &user.principal,
        &teams,
        "gateways",
        query,
        views,
    );
    // The tools each upstream contributes, as MCP clients see them.
    let mut federated: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for tool in state.catalog.current().tools(&Scope::All, &user.principal) {
        if let crate::catalog::ToolTarget::Upstream { gateway_id, .. } = &tool.target {
            federated
                .entry(gateway_id.clone())
                .or_default()
                .push(tool.name.clone());
        }
    }
    context.insert("federated", &federated);
    // What calls and breakers show, beside what the registry stores.
    let stats = state.services.metrics.snapshot().await;
    let breakers: BTreeMap<String, _> = state.upstream.breakers().await.into_iter().collect();
    let now = chrono::Utc::now();
    let activity: BTreeMap<&String, Value> = stats
        .upstreams
        .keys()
        .chain(breakers.keys())
        .map(|id| {
            let stats = stats.upstreams.get(id).cloned().unwrap_or_default();
            let activity = Activity::of(breakers.get(id).cloned(), &stats, now);
            (id, activity_view(activity))
        })
        .collect();
    context.insert("activity", &activity);
    user.outcome(&mut context, "gateways.create", flash, error);
    state.console.page(status, "gateways.html", &context)
}

/// An upstream's activity as the gateways page shows it: breaker, calls, latency and a strip
/// of 24 hours, each hour `none`, `ok`, `some` (failures) or `bad` (mostly failures).
fn activity_view(activity: Activity) -> Value {
    let ms = |value: Option<f64>| value.map_or("–".to_owned(), |ms| format!("≤ {ms} ms"));
    let calls = &activity.calls;
    let hours: Vec<Value> = activity
        .hours
        .iter()
        .map(|hour| {
            let level = match (hour.calls, hour.failures) {
                (0, _) => "none",
                (_, 0) => "ok",
                (calls, failures) if failures * 2 > calls => "bad",
                _ => "some",
            };
            json!({
                "level": level,
                "label": format!("{}: {} calls, {} failed", hour.start.format("%H:00 UTC"), hour.calls, hour.failures),
            })
        })
        .collect();
    json!({
        "breaker": activity.breaker.as_ref().map(|b| b.state),
        "consecutive_failures": activity.breaker.as_ref().map_or(0, |b| b.consecutive_failures),
        "calls": calls.total,
        "failures": calls.failures,
        "p50": ms(calls.p50_ms),
        "p95": ms(calls.p95_ms),
        "hours": hours,
    })
}

/// `POST /admin/gateways/{id}/test`: pings the upstream (no discovery).
pub async fn test_gateway(
    state: web::Data<AppState>,
    user: ConsoleUser,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleRefusal> {
    user.check_csrf(form.csrf.as_deref())?;
    let done = crate::service::gateways::test_connection(&state.services, &user.principal, &id)
        .await
        .and_then(|tested| match tested.error {
            None => Ok((
                StatusCode::OK,
                format!("It answered in {:.1} ms.", tested.latency_ms),
            )),
            Some(error) => Err(crate::http::error::ApiError::BadGateway(format!(
                "It did not answer: {error}"
            ))),
        });
    Ok(gateway_outcome(&state, &user, done).await)
}

/// `GET /admin/gateways`.
pub async fn gateways(
    state: web::Data<AppState>,
    user: ConsoleUser,
    query: web::Query<ListQuery>,
) -> HttpResponse {
    gateways_page(&state, &user, StatusCode::OK, &query, None, None).await
}

/// The register form: what `POST /gateways` takes.
#[derive(Deserialize)]
pub struct GatewayForm {
    name: String,
    url: String,
    transport: Option<String>,
    description: Option<String>,
    /// Comma-separated.
    tags: Option<String>,
    visibility: Option<String>,
    team_id: Option<String>,
    /// A checkbox: present when ticked.
    prefix_tool_names: Option<String>,
    /// `none`, `bearer`, `basic` or `headers`.
    auth_type: Option<String>,
    token: Option<String>,
    username: Option<String>,
    password: Option<String>,
    /// `Name: value` per line.
    headers: Option<String>,
    csrf: Option<String>,
}

impl GatewayForm {
    /// The credentials the form describes, as `POST /gateways` takes them.
    fn auth(&self) -> Result<Value, crate::http::error::ApiError> {
        let filled = |value: &Option<String>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
        };
        let kind = filled(&self.auth_type).unwrap_or_else(|| {
            // The old form sent a bare token.
            if filled(&self.token).is_some() {
                "bearer"
            } else {
                "none"
            }
            .to_owned()
        });
        Ok(match kind.as_str() {
            "none" => Value::Null,
            "bearer" => json!({"type": "bearer", "token": filled(&self.token).unwrap_or_default()}),
            "basic" => {
                json!({"type": "basic", "username": filled(&self.username).unwrap_or_default(),
                              "password": self.password.clone().unwrap_or_default()})
            }
            "headers" => {
                let mut headers = Map::new();
                for line in self.headers.as_deref().unwrap_or_default().lines() {
                    let line = line.trim();
                    if line.is_empty() {
                        continue;
                    }
                    let Some((name, value)) = line.split_once(':') else {
                        return Err(crate::http::error::ApiError::InvalidField {
                            field: "headers".into(),
                            message: format!("{line:?} is not `Name: value`"),
                        });
                    };
                    headers.insert(name.trim().to_owned(), json!(value.trim()));
                }
                json!({"type": "headers", "headers": headers})
            }
            other => {
                return Err(crate::http::error::ApiError::InvalidField {
                    field: "auth_type".into(),
                    message: format!("{other:?} is not none, bearer, basic or headers"),
                });
            }
        })
    }
}

/// `POST /admin/gateways`: registers an upstream (discovering what it offers).
pub async fn register_gateway(
    state: web::Data<AppState>,
    request: actix_web::HttpRequest,
    user: ConsoleUser,
    form: web::Form<GatewayForm>,
) -> Result<HttpResponse, ConsoleRefusal> {
    let (scheme, host) = crate::http::public_origin(&request);
    let origin = format!("{scheme}://{host}");
    let form = form.into_inner();
    user.check_csrf(form.csrf.as_deref())?;
    let result = match form.auth() {
        Ok(auth) => {
            let text = |value: Option<String>| {
                value
                    .map(|value| value.trim().to_owned())
                    .filter(|value| !value.is_empty())
            };
            let tags: Option<Vec<String>> = text(form.tags).map(|tags| {
                tags.split(',')
                    .map(|tag| tag.trim().to_owned())
                    .filter(|tag| !tag.is_empty())
                    .collect()
            });
            let input = serde_json::from_value::<crate::registry::gateways::GatewayCreate>(json!({
                "name": form.name,
                "url": form.url.trim(),
                "transport": form.transport.unwrap_or_else(|| "streamablehttp".into()),
                "description": text(form.description),
                "tags": tags,
                "visibility": text(form.visibility),
                "team_id": text(form.team_id),
                "prefix_tool_names": form.prefix_tool_names.is_some(),
                "auth": auth,
            }));
            match input {
                Ok(input) => {
                    crate::service::gateways::register(
                        &state.services,
                        &user.principal,
                        input,
                        Some(&origin),
                    )
                    .await
                }
                Err(error) => Err(crate::http::error::ApiError::BadRequest {
                    code: "invalid-form",
                    message: error.to_string(),
                }),
            }
        }
        Err(invalid) => Err(invalid),
    };
    let done = result.map(|registered| {
        (
            StatusCode::CREATED,
            format!(
                "Registered {}: {} tools, {} resources, {} prompts.",
                registered.gateway.name,
                registered.discovered.tools,
                registered.discovered.resources,
                registered.discovered.prompts
            ),
        )
    });
    Ok(gateway_outcome(&state, &user, done).await)
}

/// The gateways page after a register or refresh (whose sync the catalog has applied already),
/// the outcome shown in the page with its status.
async fn gateway_outcome(
    state: &AppState,
    user: &ConsoleUser,
    done: Result<(StatusCode, String), crate::http::error::ApiError>,
) -> HttpResponse {
    let query = ListQuery::default();
    match done {
        Ok((status, message)) => {
            gateways_page(state, user, status, &query, Some(&message), None).await
        }
        Err(error) => {
            let status = actix_web::ResponseError::status_code(&error);
            gateways_page(state, user, status, &query, None, Some(&error.to_string())).await
        }
    }
}

/// `POST /admin/gateways/{id}/refresh`.
pub async fn refresh_gateway(
    state: web::Data<AppState>,
    user: ConsoleUser,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleRefusal> {
    user.check_csrf(form.csrf.as_deref())?;
    let done = crate::service::gateways::refresh(&state.services, &user.principal, &id)
        .await
        .map(|refreshed| {
            (
                StatusCode::OK,
                format!(
                    "Refreshed {}: {} tools.",
                    refreshed.gateway.name, refreshed.discovered.tools
                ),
            )
        });
    Ok(gateway_outcome(&state, &user, done).await)
}
