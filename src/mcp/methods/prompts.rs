//! `prompts/list` and `prompts/get` (Jinja rendering in the sandbox).

use serde_json::{Value, json};

use super::{Object, listed, string_param};
use crate::mcp::context::Ctx;
use crate::mcp::error::McpError;
use crate::prompt_render::RenderError;
use crate::protocol::Reply;

/// `prompts/list`.
pub fn list(ctx: &Ctx, params: &Object) -> Result<Reply, McpError> {
    let page = |after: Option<&str>, limit| {
        ctx.catalog
            .prompts_page(&ctx.scope, &ctx.principal, after, limit)
    };
    listed(ctx, params, "prompts", page, |p| &p.name, |p| &p.definition)
}

/// `prompts/get`: renders the template with the arguments; a missing required argument is
/// invalid params.
pub async fn get(ctx: &Ctx, params: &Object) -> Result<Reply, McpError> {
    let name = string_param(params, "name")?;
    let prompt = ctx
        .catalog
        .prompt(&ctx.scope, &ctx.principal, name)
        .ok_or_else(|| McpError::InvalidParams(format!("unknown prompt {name:?}")))?;
    let arguments = match params.get("arguments") {
        None | Some(Value::Null) => Object::new(),
        Some(Value::Object(arguments)) => arguments.clone(),
        Some(_) => {
            return Err(McpError::InvalidParams(
                "params.arguments must be an object".into(),
            ));
        }
    };
    if let Some((gateway_id, original_name)) = &prompt.upstream {
        let mut forwarded = Object::new();
        forwarded.insert("name".into(), json!(original_name));
        forwarded.insert("arguments".into(), Value::Object(arguments));
        return super::federated::forward_interactive(
            ctx,
            gateway_id,
            "prompts/get",
            name,
            forwarded,
            params,
        )
        .await;
    }
    let mut context = std::collections::BTreeMap::new();
    for declared in &prompt.arguments {
        match arguments.get(&declared.name) {
            Some(Value::String(value)) => {
                context.insert(declared.name.clone(), value.clone());
            }
            Some(Value::Null) | None if declared.required => {
                return Err(McpError::InvalidParams(format!(
                    "prompt {name:?} needs argument {:?}",
                    declared.name
                )));
            }
            // Left undefined (printed as nothing): `default(...)` and `is defined` work as
            // they do in Jinja2, so templates written for it render the same here.
            Some(Value::Null) | None => {}
            Some(_) => {
                return Err(McpError::InvalidParams(format!(
                    "argument {:?} must be a string",
                    declared.name
                )));
            }
        }
    }
    // Rendered in the sandbox, off this thread, within the render budget.
    let text = ctx
        .prompts
        .render(&prompt.template, context)
        .await
        .map_err(|error| match error {
            RenderError::Unavailable(_) => {
                tracing::error!(%error, "prompt renderer");
                McpError::Unavailable {
                    retry_after: std::time::Duration::from_secs(1),
                }
            }
            other => {
                McpError::InvalidParams(format!("prompt {name:?} could not be rendered: {other}"))
            }
        })?;
    let mut result = Object::new();
    if let Some(description) = &prompt.description {
        result.insert("description".into(), json!(description));
    }
    result.insert(
        "messages".into(),
        json!([{ "role": "user", "content": { "type": "text", "text": text } }]),
    );
    Ok(result.into())
}
