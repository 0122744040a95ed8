//! `initialize`, `server/discover`, `logging/setLevel`, `resources/(un)subscribe`.

use serde_json::json;

use super::{Object, string_param};
use crate::catalog::Scope;
use crate::mcp::context::Ctx;
use crate::mcp::error::McpError;
use crate::mcp::protocol::{server_capabilities, server_info};
use crate::protocol::{Era, LogLevel, supported_versions};

/// The instructions of a scope: a virtual server's description.
fn instructions(ctx_catalog: &crate::catalog::Catalog, scope: &Scope) -> Option<String> {
    match scope {
        Scope::All => None,
        Scope::Server(id) => ctx_catalog
            .server(id)
            .and_then(|server| server.description.clone()),
    }
}

fn title(catalog: &crate::catalog::Catalog, scope: &Scope) -> Option<String> {
    match scope {
        Scope::All => None,
        Scope::Server(id) => catalog.server(id).map(|server| server.name.clone()),
    }
}

/// The result of a legacy `initialize`.
pub fn initialize_result(
    catalog: &crate::catalog::Catalog,
    scope: &Scope,
    version: &'static str,
) -> Object {
    let mut result = Object::new();
    result.insert("protocolVersion".into(), json!(version));
    result.insert(
        "capabilities".into(),
        server_capabilities(Era::Legacy { version }),
    );
    result.insert(
        "serverInfo".into(),
        server_info(title(catalog, scope).as_deref()),
    );
    if let Some(text) = instructions(catalog, scope) {
        result.insert("instructions".into(), json!(text));
    }
    result
}

/// `server/discover`.
pub fn discover(ctx: &Ctx) -> Object {
    let mut result = Object::new();
    result.insert("supportedVersions".into(), json!(supported_versions()));
    result.insert("capabilities".into(), server_capabilities(ctx.era));
    if let Some(text) = instructions(&ctx.catalog, &ctx.scope) {
        result.insert("instructions".into(), json!(text));
    }
    result
}

/// `logging/setLevel` (legacy): the session's level for `notifications/message`.
pub fn set_level(ctx: &Ctx, params: &Object) -> Result<Object, McpError> {
    let level = string_param(params, "level")?;
    let level = LogLevel::parse(level)
        .ok_or_else(|| McpError::InvalidParams(format!("unknown log level {level:?}")))?;
    if let Some(session) = &ctx.session {
        session.set_log_level(level);
    }
    Ok(Object::new())
}

/// `resources/subscribe` and `resources/unsubscribe` (legacy). A federated resource's upstream
/// is told too, over the client's own upstream session (a subscription is state of that
/// session): its updates then reach this client alone. An upstream that refuses still leaves
/// the gateway's own update notifications (when the catalog changes the resource).
pub async fn subscribe(ctx: &Ctx, params: &Object, on: bool) -> Result<Object, McpError> {
    let uri = string_param(params, "uri")?;
    let Some(resource) = ctx.catalog.resource(&ctx.scope, &ctx.principal, uri) else {
        return Err(McpError::ResourceNotFound(uri.to_owned()));
    };
    let Some(session) = &ctx.session else {
        return Err(McpError::InvalidRequest(
            "subscriptions need a session: use the Streamable HTTP endpoint after initialize"
                .into(),
        ));
    };
    if on {
        session.subscribe(uri.to_owned());
    } else {
        session.unsubscribe(uri);
    }
    if let Some(gateway_id) = &resource.gateway_id {
        let method = if on {
            "resources/subscribe"
        } else {
            "resources/unsubscribe"
        };
        let mut forwarded = Object::new();
        forwarded.insert("uri".into(), serde_json::Value::String(uri.to_owned()));
        if let Err(error) = super::federated::forward(ctx, gateway_id, method, forwarded).await {
            tracing::debug!(%error, %uri, "the upstream did not take the subscription");
        }
    }
    Ok(Object::new())
}
