//! `tools/list` and `tools/call`. REST-backed tools run through the UpstreamActor.

use serde_json::{Map, Value, json};

use super::{Object, listed};
use crate::actors::metrics::CallRecord;
use crate::actors::upstream::{CallHttp, HttpReply, UpstreamError};
use crate::auth::On;
use crate::catalog::{Tool, ToolTarget};
use crate::mcp::context::Ctx;
use crate::mcp::error::McpError;
use crate::protocol::{Era, LogLevel, Reply};
use crate::registry::tools::RequestType;

/// How much of an upstream error body is quoted in a result.
const ERROR_EXCERPT_BYTES: usize = 2048;

/// `tools/list`.
pub fn list(ctx: &Ctx, params: &Object) -> Result<Reply, McpError> {
    let page = |after: Option<&str>, limit| {
        ctx.catalog
            .tools_page(&ctx.scope, &ctx.principal, after, limit)
    };
    listed(ctx, params, "tools", page, |t| &t.name, |t| &t.definition)
}

/// `tools/call`, recorded in the call metrics.
pub async fn call(ctx: &Ctx, mut params: Object) -> Result<Reply, McpError> {
    // A place among the principal's calls in flight, held until this call ends.
    let _permit = ctx.tool_calls.acquire(&ctx.principal.email)?;
    let name = match params.remove("name") {
        Some(Value::String(name)) => name,
        Some(_) => {
            return Err(McpError::InvalidParams(
                "params.name must be a string".into(),
            ));
        }
        None => return Err(McpError::InvalidParams("params.name is required".into())),
    };
    let lookup =
        crate::otel_span!("catalog", otel.name = "catalog lookup", gen_ai.tool.name = %name);
    let tool = lookup
        .in_scope(|| ctx.catalog.tool(&ctx.scope, &ctx.principal, &name))
        .ok_or_else(|| McpError::InvalidParams(format!("unknown tool {name:?}")))?;
    ctx.rate_limits
        .check(crate::ratelimit::Limit::Tool, &tool.name)
        .await?;
    let started_at = chrono::Utc::now();
    let clock = std::time::Instant::now();
    let outcome = run(ctx, &tool, &name, params).await;
    let failed = match &outcome {
        Ok(result) => result.is_true("isError"),
        Err(_) => true,
    };
    ctx.metrics.record(CallRecord {
        tool_name: tool.name.clone(),
        gateway_id: match &tool.target {
            ToolTarget::Upstream { gateway_id, .. } => Some(gateway_id.clone()),
            ToolTarget::Rest { .. } => None,
        },
        server_id: match &ctx.scope {
            crate::catalog::Scope::Server(id) => Some(id.clone()),
            crate::catalog::Scope::All => None,
        },
        started_at,
        duration: clock.elapsed(),
        success: !failed,
        error: outcome
            .as_ref()
            .err()
            .map(|error| error.to_string().chars().take(500).collect()),
    });
    outcome
}

/// Runs `tool` with the rest of the client's `params` (`arguments`, and a 2026-07-28 retry's
/// `inputResponses` and `requestState`).
async fn run(ctx: &Ctx, tool: &Tool, name: &str, mut params: Object) -> Result<Reply, McpError> {
    ctx.principal
        .authorize("tools.execute", On::Item(&tool.access))
        .map_err(|refused| McpError::Forbidden(refused.to_string()))?;
    let arguments = match params.remove("arguments") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(arguments @ Value::Object(_)) => arguments,
        Some(_) => {
            return Err(McpError::InvalidParams(
                "params.arguments must be an object".into(),
            ));
        }
    };
    validate_arguments(tool, &arguments)?;
    let Value::Object(arguments) = arguments else {
        return Err(McpError::InvalidParams(
            "params.arguments must be an object".into(),
        ));
    };
    match &tool.target {
        ToolTarget::Rest {
            method,
            url,
            headers,
            header_arguments,
        } => call_rest(
            ctx,
            tool,
            method,
            url,
            (headers, header_arguments),
            arguments,
        )
        .await
        .map(Reply::from),
        ToolTarget::Upstream {
            gateway_id,
            original_name,
        } => {
            let mut forwarded = Object::new();
            forwarded.insert("name".into(), json!(original_name));
            forwarded.insert("arguments".into(), Value::Object(arguments));
            let forwarding = super::federated::forward_interactive(
                ctx,
                gateway_id,
                "tools/call",
                name,
                forwarded,
                &params,
            );
            match forwarding.await {
                // An upstream that failed or is unavailable is a tool error the model sees.
                Err(McpError::Upstream(message)) => Ok(error_result(message).into()),
                other => other,
            }
        }
    }
}

fn validate_arguments(tool: &Tool, arguments: &Value) -> Result<(), McpError> {
    let Some(validator) = &tool.validator else {
        return Ok(());
    };
    let problems: Vec<String> = validator
        .iter_errors(arguments)
        .take(5)
        .map(|error| {
            let path = error.instance_path.to_string();
            if path.is_empty() {
                error.to_string()
            } else {
                format!("{path}: {error}")
            }
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(McpError::InvalidParams(format!(
            "arguments of tool {:?} do not match its input schema: {}",
            tool.name,
            problems.join("; ")
        )))
    }
}

async fn call_rest(
    ctx: &Ctx,
    tool: &Tool,
    method: &RequestType,
    url: &str,
    (configured, header_arguments): (
        &std::collections::BTreeMap<String, String>,
        &[(String, String)],
    ),
    mut arguments: Map<String, Value>,
) -> Result<Object, McpError> {
    let headers = headers_from(configured, header_arguments, &mut arguments)?;
    let url = fill_placeholders(url, &mut arguments)?;
    let (query, body) = if matches!(method, RequestType::Get | RequestType::Delete) {
        let query = arguments
            .into_iter()
            .filter(|(_, value)| !value.is_null())
            .map(|(key, value)| {
                let text = match value {
                    Value::String(text) => text,
                    other => other.to_string(),
                };
                (key, text)
            })
            .collect();
        (query, None)
    } else {
        (Vec::new(), Some(Value::Object(arguments)))
    };
    ctx.log(LogLevel::Info, format!("calling tool {:?}", tool.name));
    ctx.progress(0.0, Some(1.0), "calling the tool's endpoint");
    let started = std::time::Instant::now();
    let outcome = ctx
        .upstream
        .call_http(CallHttp {
            method: method.as_str().to_owned(),
            url,
            headers,
            query,
            body,
            timeout: ctx.settings.tool_timeout,
            cancel: ctx.cancel.clone(),
        })
        .await;
    ctx.progress(1.0, Some(1.0), "done");
    tracing::info!(
        tool.name = %tool.name,
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        ok = outcome.as_ref().is_ok_and(|reply| (200..300).contains(&reply.status)),
        "tool call"
    );
    match outcome {
        Ok(reply) => Ok(result_from_reply(ctx.era, reply)),
        Err(UpstreamError::Cancelled) => {
            Err(McpError::InvalidRequest("the request was cancelled".into()))
        }
        Err(UpstreamError::Unavailable) => Err(McpError::Unavailable {
            retry_after: std::time::Duration::from_secs(1),
        }),
        Err(error) => {
            ctx.log(
                LogLevel::Warning,
                format!("tool {:?} failed: {error}", tool.name),
            );
            Ok(error_result(format!("the tool's endpoint failed: {error}")))
        }
    }
}

/// The headers of a call: the tool's configured ones (credentials; they win), and the arguments
/// its schema sends as headers, taken out of the arguments.
fn headers_from(
    configured: &std::collections::BTreeMap<String, String>,
    header_arguments: &[(String, String)],
    arguments: &mut Map<String, Value>,
) -> Result<std::collections::BTreeMap<String, String>, McpError> {
    let mut headers = configured.clone();
    for (argument, header) in header_arguments {
        let Some(value) = arguments.remove(argument) else {
            continue;
        };
        let text = match value {
            Value::Null => continue,
            Value::String(text) => text,
            other => other.to_string(),
        };
        if reqwest::header::HeaderValue::from_str(&text).is_err() {
            return Err(McpError::InvalidParams(format!(
                "argument {argument:?} cannot be sent as the header {header:?} (control characters)"
            )));
        }
        if !configured
            .keys()
            .any(|name| name.eq_ignore_ascii_case(header))
        {
            headers.insert(header.clone(), text);
        }
    }
    Ok(headers)
}

/// Expands the tool's URL template (RFC 6570) from the arguments, removing those it used.
fn fill_placeholders(url: &str, arguments: &mut Map<String, Value>) -> Result<String, McpError> {
    crate::uri_template::UriTemplate::parse(url)
        .and_then(|template| template.expand(arguments))
        .map_err(McpError::InvalidParams)
}

/// A tool error result: the model sees it; it is not a protocol error.
fn error_result(message: String) -> Object {
    let mut result = Object::new();
    result.insert(
        "content".into(),
        json!([{ "type": "text", "text": message }]),
    );
    result.insert("isError".into(), json!(true));
    result
}

/// Maps an HTTP answer to a `CallToolResult`: 2xx is content (JSON also as
/// `structuredContent`), anything else an `isError` result quoting the status and body.
fn result_from_reply(era: Era, reply: HttpReply) -> Object {
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    if !(200..300).contains(&reply.status) {
        let mut excerpt = text;
        if excerpt.len() > ERROR_EXCERPT_BYTES {
            let mut cut = ERROR_EXCERPT_BYTES;
            while !excerpt.is_char_boundary(cut) {
                cut -= 1;
            }
            excerpt.truncate(cut);
            excerpt.push('…');
        }
        return error_result(format!(
            "the tool's endpoint answered HTTP {}: {excerpt}",
            reply.status
        ));
    }
    let mut result = Object::new();
    result.insert("content".into(), json!([{ "type": "text", "text": text }]));
    let is_json = reply
        .content_type
        .as_deref()
        .is_some_and(|content_type| content_type.contains("json"));
    if is_json && let Ok(value) = serde_json::from_slice::<Value>(&reply.body) {
        // Before 2026-07-28, structuredContent must be an object.
        if value.is_object() || era == Era::Modern {
            result.insert("structuredContent".into(), value);
        }
    }
    result.insert("isError".into(), json!(false));
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_encoded() {
        let mut arguments = Map::new();
        arguments.insert("city".into(), json!("New York"));
        arguments.insert("days".into(), json!(3));
        let url = fill_placeholders("http://h/weather/{city}/{days}", &mut arguments).unwrap();
        assert_eq!(url, "http://h/weather/New%20York/3");
        assert!(arguments.is_empty());
        assert!(fill_placeholders("http://h/{missing}", &mut Map::new()).is_err());
        let mut climbing = Map::new();
        climbing.insert("id".into(), json!(".."));
        assert!(fill_placeholders("http://h/items/{id}/detail", &mut climbing).is_err());
        let mut slash = Map::new();
        slash.insert("id".into(), json!("../admin"));
        assert_eq!(
            fill_placeholders("http://h/items/{id}", &mut slash).unwrap(),
            "http://h/items/..%2Fadmin"
        );
    }
}
