//! Forwarding to the upstream MCP server that owns an item, with its notifications relayed to
//! the client under the client's own progress token.

use serde_json::Value;

use tokio::sync::mpsc;

use super::Object;
use crate::actors::upstream::{Forward, ForwardError};
use crate::mcp::context::Ctx;
use crate::mcp::error::McpError;
use crate::mcp::protocol::{LogLevel, meta};
use crate::upstream::{CallError, ClientRequest, Notifications};

/// Forwards `method` with `params` to the gateway's upstream and returns its result, cleaned
/// of the upstream's own era fields (the gateway adds the client's).
pub async fn forward(
    ctx: &Ctx,
    gateway_id: &str,
    method: &str,
    params: Object,
) -> Result<Object, McpError> {
    let gateway = ctx.catalog.gateway(gateway_id).ok_or_else(|| {
        McpError::Upstream("the upstream this item belongs to is not available".into())
    })?;
    let notifications = Notifications {
        notifications: relay(ctx),
        requests: client_requests(ctx),
    };
    let outcome = ctx
        .upstream
        .forward(Forward {
            gateway_id: gateway.id.clone(),
            gateway_name: gateway.name.clone(),
            target: gateway.target.clone(),
            method: method.to_owned(),
            params,
            notifications,
            cancel: ctx.cancel.clone(),
            timeout: ctx.settings.tool_timeout,
        })
        .await;
    match outcome {
        Ok(result) => Ok(clean(result)),
        Err(ForwardError::Call {
            error:
                CallError::Rpc {
                    code,
                    message,
                    data,
                },
            ..
        }) => Err(McpError::Relayed {
            code,
            message,
            data,
        }),
        Err(ForwardError::Call {
            error: CallError::Cancelled,
            ..
        }) => Err(McpError::InvalidRequest("the request was cancelled".into())),
        Err(error) => {
            ctx.log(LogLevel::Warning, error.to_string());
            Err(McpError::Upstream(error.to_string()))
        }
    }
}

/// A channel whose messages (the upstream's notifications about this request) are passed on
/// to the client when it asked for them.
fn relay(ctx: &Ctx) -> Option<mpsc::Sender<Value>> {
    let notifier = ctx.notifier.clone()?;
    if ctx.progress_token.is_none() && ctx.log_level.is_none() {
        return None;
    }
    let (sender, mut receiver) = mpsc::channel::<Value>(64);
    let token = ctx.progress_token.clone();
    let threshold = ctx.log_level;
    actix_web::rt::spawn(async move {
        while let Some(mut message) = receiver.recv().await {
            let pass = match message.get("method").and_then(Value::as_str) {
                Some("notifications/progress") => match &token {
                    Some(token) => {
                        message["params"]["progressToken"] = token.clone();
                        true
                    }
                    None => false,
                },
                Some("notifications/message") => {
                    let level = message["params"]["level"]
                        .as_str()
                        .and_then(LogLevel::parse);
                    matches!((level, threshold), (Some(level), Some(threshold)) if level >= threshold)
                }
                _ => false,
            };
            if pass && notifier.send(message).await.is_err() {
                return;
            }
        }
    });
    Some(sender)
}

/// A channel for the upstream's own requests (sampling, elicitation, roots) during this call,
/// relayed to a session-era client on this request's stream when it declared the capability;
/// otherwise answered with an error naming what is missing.
fn client_requests(ctx: &Ctx) -> Option<mpsc::Sender<ClientRequest>> {
    let session = ctx.session.clone()?;
    let stream = ctx.notifier.clone()?;
    let timeout = ctx.settings.tool_timeout;
    let (sender, mut receiver) = mpsc::channel::<ClientRequest>(16);
    actix_web::rt::spawn(async move {
        while let Some((request, reply)) = receiver.recv().await {
            let method = request["method"].as_str().unwrap_or_default().to_owned();
            let capability = match method.as_str() {
                "sampling/createMessage" => "sampling",
                "elicitation/create" => "elicitation",
                "roots/list" => "roots",
                _ => "",
            };
            let answer = if capability.is_empty() || !session.client_supports(capability) {
                serde_json::json!({ "error": {
                    "code": -32601,
                    "message": format!("the client does not support {method}"),
                }})
            } else {
                let params = request.get("params").cloned().unwrap_or(Value::Null);
                session
                    .request_client(&method, params, &stream, timeout)
                    .await
                    .unwrap_or_else(|cause| serde_json::json!({ "error": { "code": -32603, "message": cause } }))
            };
            let _ = reply.send(answer);
        }
    });
    Some(sender)
}

/// Removes the upstream's modern-era fields; the gateway decorates for its client's era.
fn clean(mut result: Object) -> Object {
    result.remove("resultType");
    result.remove("ttlMs");
    result.remove("cacheScope");
    if let Some(Value::Object(meta_object)) = result.get_mut("_meta") {
        meta_object.remove(meta::SERVER_INFO);
        if meta_object.is_empty() {
            result.remove("_meta");
        }
    }
    result
}
