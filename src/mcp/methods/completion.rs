//! `completion/complete` for prompt arguments (from their declared suggested values).

use serde_json::{Value, json};

use super::{Object, string_param};
use crate::mcp::context::Ctx;
use crate::mcp::error::McpError;

/// The most values one completion returns (the spec's limit).
const MAX_VALUES: usize = 100;

/// `completion/complete`.
pub async fn complete(ctx: &Ctx, params: &Object) -> Result<Object, McpError> {
    let reference = params
        .get("ref")
        .and_then(Value::as_object)
        .ok_or_else(|| McpError::InvalidParams("params.ref must be an object".into()))?;
    let argument = params
        .get("argument")
        .and_then(Value::as_object)
        .ok_or_else(|| McpError::InvalidParams("params.argument must be an object".into()))?;
    let argument_name = string_param(argument, "name")?;
    let typed = string_param(argument, "value")?.to_lowercase();
    let candidates: Vec<String> = match string_param(reference, "type")? {
        "ref/prompt" => {
            let name = string_param(reference, "name")?;
            let prompt = ctx
                .catalog
                .prompt(&ctx.scope, &ctx.principal, name)
                .ok_or_else(|| McpError::InvalidParams(format!("unknown prompt {name:?}")))?;
            if let Some((gateway_id, original_name)) = &prompt.upstream {
                let mut forwarded = params.clone();
                forwarded.insert(
                    "ref".into(),
                    json!({ "type": "ref/prompt", "name": original_name }),
                );
                return super::federated::forward(
                    ctx,
                    gateway_id,
                    "completion/complete",
                    forwarded,
                )
                .await;
            }
            let declared = prompt
                .arguments
                .iter()
                .find(|declared| declared.name == argument_name)
                .ok_or_else(|| {
                    McpError::InvalidParams(format!(
                        "prompt {name:?} has no argument {argument_name:?}"
                    ))
                })?;
            declared.values.clone()
        }
        "ref/resource" => {
            let uri = string_param(reference, "uri")?;
            let template = ctx
                .catalog
                .templates(&ctx.scope, &ctx.principal)
                .into_iter()
                .find(|template| template.uri_template.as_deref() == Some(uri))
                .ok_or_else(|| McpError::ResourceNotFound(uri.to_owned()))?;
            if let Some(gateway_id) = &template.gateway_id {
                return super::federated::forward(
                    ctx,
                    gateway_id,
                    "completion/complete",
                    params.clone(),
                )
                .await;
            }
            Vec::new()
        }
        other => {
            return Err(McpError::InvalidParams(format!(
                "unknown ref type {other:?}"
            )));
        }
    };
    let matching: Vec<String> = candidates
        .into_iter()
        .filter(|value| value.to_lowercase().starts_with(&typed))
        .collect();
    let total = matching.len();
    let values: Vec<String> = matching.into_iter().take(MAX_VALUES).collect();
    let mut result = Object::new();
    result.insert(
        "completion".into(),
        json!({ "values": values, "total": total, "hasMore": total > MAX_VALUES }),
    );
    Ok(result)
}
