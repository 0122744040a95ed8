//! Method handlers. Each takes the request context and params and returns the result object
//! before era decoration (`resultType`, `_meta`, cache hints are added by [`decorate`]).

mod completion;
mod federated;
mod lifecycle;
mod prompts;
mod resources;
mod tools;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

pub use self::lifecycle::initialize_result;
use super::context::Ctx;
use super::error::McpError;
use super::protocol::server_info;
use crate::protocol::{Encoded, Era, Reply, meta};
use crate::ratelimit::Limit;

/// A JSON object.
pub type Object = Map<String, Value>;

/// Runs one request method (request `id`, when it has one) in a span named by the MCP semantic
/// conventions (`tools/call get_weather`) while traces are exported. A `traceparent` in the
/// request's `_meta` is the span's parent (the client's context for this very request).
pub async fn dispatch(
    ctx: &Ctx,
    id: Option<&Value>,
    method: &str,
    params: Object,
) -> Result<Reply, McpError> {
    if !crate::telemetry::enabled() {
        return run(ctx, method, params).await;
    }
    let text = |key: &str| params.get(key).and_then(Value::as_str).map(str::to_owned);
    let empty = tracing::field::Empty;
    let span = tracing::info_span!(
        "mcp",
        otel.name = empty,
        otel.kind = "server",
        otel.status_code = empty,
        mcp.method.name = method,
        mcp.protocol.version = ctx.era.version(),
        mcp.session.id = empty,
        jsonrpc.request.id = empty,
        gen_ai.tool.name = empty,
        gen_ai.operation.name = empty,
        gen_ai.prompt.name = empty,
        mcp.resource.uri = empty,
        rpc.response.status_code = empty,
        error.type = empty,
    );
    if let Some(id) = id {
        let id = match id {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        span.record("jsonrpc.request.id", id);
    }
    if let Some(session) = &ctx.session {
        span.record("mcp.session.id", session.id.as_str());
    }
    if let Some(meta) = params.get("_meta") {
        crate::telemetry::accept_meta(&span, meta);
    }
    let target = match method {
        "tools/call" => text("name").inspect(|name| {
            span.record("gen_ai.tool.name", name.as_str());
            span.record("gen_ai.operation.name", "execute_tool");
        }),
        "prompts/get" => {
            text("name").inspect(|name| _ = span.record("gen_ai.prompt.name", name.as_str()))
        }
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            text("uri").inspect(|uri| _ = span.record("mcp.resource.uri", uri.as_str()))
        }
        _ => None,
    };
    span.record(
        "otel.name",
        match &target {
            Some(target) => format!("{method} {target}"),
            None => method.to_owned(),
        },
    );
    let outcome = tracing::Instrument::instrument(run(ctx, method, params), span.clone()).await;
    let failed = match &outcome {
        Err(error) => Some((error.code(ctx.era), error.to_string())),
        Ok(reply) if reply.is_true("isError") => Some((0, "the tool reported an error".to_owned())),
        Ok(_) => None,
    };
    if let Some((code, message)) = failed {
        span.record("otel.status_code", "ERROR");
        span.record(
            "error.type",
            if code == 0 {
                "tool_error".to_owned()
            } else {
                code.to_string()
            },
        );
        if code != 0 {
            span.record("rpc.response.status_code", code);
        }
        tracing::debug!(parent: &span, error = %message, "MCP request failed");
    }
    outcome
}

async fn run(ctx: &Ctx, method: &str, params: Object) -> Result<Reply, McpError> {
    let limits = &ctx.rate_limits;
    limits.check(Limit::Principal, &ctx.principal.email).await?;
    if limits.limits(Limit::Team) {
        // A personal team has one member: the principal's own limit covers it.
        for team in ctx.principal.shared_team_ids() {
            limits.check(Limit::Team, team).await?;
        }
    }
    if method == "tools/call" {
        // Its arguments are moved on to the tool, not copied.
        return tools::call(ctx, params).await;
    }
    let legacy = matches!(ctx.era, Era::Legacy { .. });
    let params = &params;
    let built = match method {
        "server/discover" => Ok(lifecycle::discover(ctx)),
        // Removed in 2026-07-28, but the official SDKs' clients still send it and their servers
        // still answer it: answered in every era.
        "ping" => Ok(Object::new()),
        "logging/setLevel" if legacy => lifecycle::set_level(ctx, params),
        "resources/subscribe" if legacy => lifecycle::subscribe(ctx, params, true).await,
        "resources/unsubscribe" if legacy => lifecycle::subscribe(ctx, params, false).await,
        // Lists of items encoded once, results relayed as the upstream wrote them.
        "tools/list" => return tools::list(ctx, params),
        "resources/list" => return resources::list(ctx, params),
        "resources/templates/list" => return resources::templates(ctx, params),
        "resources/read" => return resources::read(ctx, params).await,
        "prompts/get" => return prompts::get(ctx, params).await,
        "prompts/list" => return prompts::list(ctx, params),
        "completion/complete" => completion::complete(ctx, params).await,
        other => Err(McpError::MethodNotFound(format!(
            "{other:?} is not a method of protocol {}",
            ctx.era.version()
        ))),
    };
    built.map(Reply::Built)
}

/// Methods whose results carry cache hints in the modern era.
fn cacheable(method: &str) -> bool {
    matches!(
        method,
        "server/discover"
            | "tools/list"
            | "prompts/list"
            | "resources/list"
            | "resources/templates/list"
            | "resources/read"
    )
}

/// Adds the modern era's result fields: `resultType` (`complete` unless the result is an
/// `input_required` round), `_meta` server info, cache hints (never on an interim round).
pub fn decorate(era: Era, method: &str, mut result: Reply, cache_ttl_ms: u64) -> Reply {
    if era == Era::Modern {
        let interim = result.str_member("resultType") == Some("input_required");
        if !interim {
            result.insert("resultType", json!("complete"));
        }
        result.edit_meta(|meta_object| {
            meta_object.insert(meta::SERVER_INFO.into(), server_info(None));
        });
        if cacheable(method) && !interim {
            result.insert("ttlMs", json!(cache_ttl_ms));
            // Results depend on the caller's identity and permissions.
            result.insert("cacheScope", json!("private"));
        }
    }
    result
}

/// A required string parameter.
fn string_param<'a>(params: &'a Object, name: &str) -> Result<&'a str, McpError> {
    match params.get(name) {
        Some(Value::String(value)) => Ok(value),
        Some(_) => Err(McpError::InvalidParams(format!(
            "params.{name} must be a string"
        ))),
        None => Err(McpError::InvalidParams(format!(
            "params.{name} is required"
        ))),
    }
}

/// One page of a list, after the cursor in `params` (a cursor names the last key of the
/// previous page): `page(after, limit)` gives at most `limit + 1` items after that key, or
/// `None` when the key no longer marks a place.
fn paginate<T>(
    params: &Object,
    page_size: usize,
    page: impl FnOnce(Option<&str>, usize) -> Option<Vec<T>>,
    key: impl Fn(&T) -> &str,
) -> Result<(Vec<T>, Option<String>), McpError> {
    let after = match params.get("cursor") {
        None | Some(Value::Null) => None,
        Some(Value::String(cursor)) => Some(
            URL_SAFE_NO_PAD
                .decode(cursor)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| {
                    McpError::InvalidParams("the cursor is not one this server issued".into())
                })?,
        ),
        Some(_) => {
            return Err(McpError::InvalidParams(
                "params.cursor must be a string".into(),
            ));
        }
    };
    let mut items = page(after.as_deref(), page_size).ok_or_else(|| {
        McpError::InvalidParams("the cursor is stale; list again from the start".into())
    })?;
    let next = if items.len() > page_size {
        items.truncate(page_size);
        items.last().map(|item| URL_SAFE_NO_PAD.encode(key(item)))
    } else {
        None
    };
    Ok((items, next))
}

/// A list method's result: one page (see [`paginate`]) of items, written as the catalog
/// encoded their definitions, under `field`.
fn listed<T>(
    ctx: &Ctx,
    params: &Object,
    field: &'static str,
    page: impl FnOnce(Option<&str>, usize) -> Option<Vec<std::sync::Arc<T>>>,
    key: impl Fn(&T) -> &str,
    definition: impl Fn(&T) -> &Encoded,
) -> Result<Reply, McpError> {
    let (page, next) = paginate(params, ctx.settings.page_size, page, |item| key(item))?;
    let items = page.iter().map(|item| definition(item).clone()).collect();
    Ok(list_result(field, items, next))
}

/// A list result: `{ <field>: [...], nextCursor? }`, its items as the catalog encoded them.
fn list_result(field: &'static str, items: Vec<Encoded>, next_cursor: Option<String>) -> Reply {
    let mut rest = Object::new();
    if let Some(cursor) = next_cursor {
        rest.insert("nextCursor".into(), json!(cursor));
    }
    Reply::Listed { field, items, rest }
}
