//! `resources/list`, `resources/templates/list`, `resources/read`.

use serde_json::{Value, json};

use super::{Object, listed, string_param};
use crate::catalog::Resource;
use crate::mcp::context::Ctx;
use crate::mcp::error::McpError;
use crate::protocol::Reply;

/// `resources/list`.
pub fn list(ctx: &Ctx, params: &Object) -> Result<Reply, McpError> {
    let page = |after: Option<&str>, limit| {
        ctx.catalog
            .resources_page(&ctx.scope, &ctx.principal, false, after, limit)
    };
    listed(ctx, params, "resources", page, uri_of, |r| &r.definition)
}

/// `resources/templates/list`.
pub fn templates(ctx: &Ctx, params: &Object) -> Result<Reply, McpError> {
    let page = |after: Option<&str>, limit| {
        ctx.catalog
            .resources_page(&ctx.scope, &ctx.principal, true, after, limit)
    };
    listed(ctx, params, "resourceTemplates", page, template_of, |r| {
        &r.definition
    })
}

/// What a `resources/list` cursor names.
fn uri_of(resource: &Resource) -> &str {
    resource.uri.as_deref().unwrap_or_default()
}

/// What a `resources/templates/list` cursor names.
fn template_of(resource: &Resource) -> &str {
    resource.uri_template.as_deref().unwrap_or_default()
}

/// `resources/read`: a fixed resource's content, or a template's content with the variables
/// the URI matched filled in.
pub async fn read(ctx: &Ctx, params: &Object) -> Result<Reply, McpError> {
    let uri = string_param(params, "uri")?;
    let (resource, variables) = match ctx.catalog.resource(&ctx.scope, &ctx.principal, uri) {
        Some(resource) => (resource, Vec::new()),
        None => ctx
            .catalog
            .templates(&ctx.scope, &ctx.principal)
            .into_iter()
            .find_map(|template| {
                let variables = match_template(template.uri_template.as_deref()?, uri)?;
                Some((template, variables))
            })
            .ok_or_else(|| McpError::ResourceNotFound(uri.to_owned()))?,
    };
    if let Some(gateway_id) = &resource.gateway_id {
        let mut forwarded = Object::new();
        forwarded.insert("uri".into(), json!(uri));
        return super::federated::forward_interactive(
            ctx,
            gateway_id,
            "resources/read",
            uri,
            forwarded,
            params,
        )
        .await;
    }
    let text = expand(resource.content.as_deref().unwrap_or_default(), &variables);
    Ok(contents(uri, &resource, text).into())
}

fn contents(uri: &str, resource: &Resource, text: String) -> Object {
    let mut item = json!({ "uri": uri, "text": text });
    if let Some(mime_type) = &resource.mime_type {
        item["mimeType"] = json!(mime_type);
    }
    let mut result = Object::new();
    result.insert("contents".into(), Value::Array(vec![item]));
    result
}

/// The variables `uri` gives a resource template (RFC 6570 `{name}` / `{+name}`).
fn match_template(template: &str, uri: &str) -> Option<Vec<(String, String)>> {
    crate::uri_template::UriTemplate::parse(template)
        .ok()?
        .matches(uri)
}

fn expand(content: &str, variables: &[(String, String)]) -> String {
    variables
        .iter()
        .fold(content.to_owned(), |text, (name, value)| {
            text.replace(&format!("{{{name}}}"), value)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match() {
        assert_eq!(
            match_template("docs://{section}/{page}", "docs://guide/intro"),
            Some(vec![
                ("section".into(), "guide".into()),
                ("page".into(), "intro".into())
            ])
        );
        assert_eq!(match_template("docs://{section}", "docs://a/b"), None);
        assert_eq!(match_template("docs://{section}", "other://a"), None);
        assert_eq!(
            expand("Section {section}", &[("section".into(), "x".into())]),
            "Section x"
        );
    }
}
