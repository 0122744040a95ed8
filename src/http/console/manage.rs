//! The console's test-run of a tool, virtual servers and API tokens.

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::pages::CsrfForm;
use super::{ConsoleRefusal, ConsoleUser};
use crate::catalog::Scope;
use crate::http::AppState;
use crate::service::tokens::{self, TokenCreate};

/// One input of the test-run form, from a top-level property of the tool's input schema.
fn fields(schema: &Value, submitted: &Map<String, Value>) -> Vec<Value> {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    schema["properties"]
        .as_object()
        .map(|properties| {
            properties
                .iter()
                .map(|(name, property)| {
                    let kind = property["type"].as_str().unwrap_or("json");
                    let value = match submitted.get(name) {
                        Some(Value::String(text)) => text.clone(),
                        Some(other) => other.to_string(),
                        None => String::new(),
                    };
                    json!({
                        "name": name,
                        "kind": kind,
                        "required": required.contains(&name.as_str()),
                        "description": property["description"].as_str().unwrap_or(""),
                        "value": value,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Turns the form's `arg.<name>` fields into arguments, typed by the schema; empty optional
/// fields are left out.
fn arguments(schema: &Value, form: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    let mut arguments = Map::new();
    for (key, raw) in form {
        let Some(name) = key.strip_prefix("arg.") else {
            continue;
        };
        let text = raw.as_str().unwrap_or_default().trim();
        if text.is_empty() {
            continue;
        }
        let kind = schema["properties"][name]["type"]
            .as_str()
            .unwrap_or("json");
        let value = match kind {
            "string" => Value::String(text.to_owned()),
            "boolean" => Value::Bool(text == "true"),
            "integer" => text
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| format!("{name}: a whole number is expected"))?,
            "number" => text
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| format!("{name}: a number is expected"))?,
            _ => {
                serde_json::from_str(text).map_err(|error| format!("{name}: not JSON ({error})"))?
            }
        };
        arguments.insert(name.to_owned(), value);
    }
    Ok(arguments)
}

fn run_page(
    state: &AppState,
    user: &ConsoleUser,
    name: &str,
    submitted: &Map<String, Value>,
    outcome: Option<(Value, bool, f64)>,
    error: Option<&str>,
) -> HttpResponse {
    let catalog = state.catalog.current();
    let Some(tool) = catalog.tool(&Scope::All, &user.principal, name) else {
        let mut context = user.context("tools");
        context.insert("error", &format!("There is no tool {name:?} you can see."));
        context.insert("tools", &Vec::<Value>::new());
        context.insert("q", "");
        context.insert("form", &json!({}));
        context.insert("methods", &Vec::<String>::new());
        context.insert("may_create", &false);
        return state
            .console
            .page(StatusCode::NOT_FOUND, "tools.html", &context);
    };
    let definition = tool.definition.parse();
    let schema = definition["inputSchema"].clone();
    let mut context = user.context("tools");
    context.insert(
        "tool",
        &json!({"name": tool.name, "description": definition["description"].as_str().unwrap_or("")}),
    );
    context.insert("fields", &fields(&schema, submitted));
    context.insert("error", &error);
    match outcome {
        Some((result, is_error, elapsed_ms)) => {
            context.insert(
                "result",
                &serde_json::to_string_pretty(&result).unwrap_or_default(),
            );
            context.insert("is_error", &is_error);
            context.insert("elapsed_ms", &format!("{elapsed_ms:.1}"));
        }
        None => context.insert("result", &Value::Null),
    }
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    state.console.page(status, "run.html", &context)
}

/// `GET /admin/tools/{name}/run`: the test-run form, its inputs from the tool's schema.
pub async fn run_form(
    state: web::Data<AppState>,
    user: ConsoleUser,
    name: web::Path<String>,
) -> HttpResponse {
    run_page(&state, &user, &name, &Map::new(), None, None)
}

/// `POST /admin/tools/{name}/run`: runs the tool as `tools/call` would and shows the result and
/// the time it took.
pub async fn run(
    state: web::Data<AppState>,
    user: ConsoleUser,
    name: web::Path<String>,
    form: web::Form<Map<String, Value>>,
) -> Result<HttpResponse, ConsoleRefusal> {
    let form = form.into_inner();
    user.check_csrf(form.get("csrf").and_then(Value::as_str))?;
    let name = name.into_inner();
    let submitted: Map<String, Value> = form
        .iter()
        .filter_map(|(key, value)| {
            key.strip_prefix("arg.")
                .map(|k| (k.to_owned(), value.clone()))
        })
        .collect();
    let schema = state
        .catalog
        .current()
        .tool(&Scope::All, &user.principal, &name)
        .map(|tool| tool.definition.parse()["inputSchema"].clone())
        .unwrap_or(Value::Null);
    let arguments = match arguments(&schema, &form) {
        Ok(arguments) => arguments,
        Err(message) => {
            return Ok(run_page(
                &state,
                &user,
                &name,
                &submitted,
                None,
                Some(&message),
            ));
        }
    };
    let started = Instant::now();
    let outcome = crate::http::mcp::call_tool(
        &state,
        user.principal.clone(),
        &name,
        Value::Object(arguments),
    )
    .await;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(match outcome {
        Ok(result) => {
            let is_error = result
                .get("isError")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            run_page(
                &state,
                &user,
                &name,
                &submitted,
                Some((Value::Object(result), is_error, elapsed_ms)),
                None,
            )
        }
        Err(error) => run_page(
            &state,
            &user,
            &name,
            &submitted,
            None,
            Some(&error.to_string()),
        ),
    })
}

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
    let tokens: Vec<Value> = listed
        .into_iter()
        .map(|token| {
            json!({
                "id": token.id,
                "name": token.name,
                "server": token.scope.server_id.clone().unwrap_or_else(|| "any".into()),
                "expires_at": token.expires_at.map(|at| at.format("%Y-%m-%d").to_string()).unwrap_or_default(),
                "created_at": token.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
                "limits": limits(&token.scope),
                "revoked": token.revoked_at.is_some(),
            })
        })
        .collect();
    let servers: Vec<Value> = visible_servers(state, user)
        .await
        .into_iter()
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
