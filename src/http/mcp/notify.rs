//! Server-initiated notifications: catalog changes forwarded to legacy session streams and to
//! modern `subscriptions/listen` streams.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::catalog::CatalogChange;
use crate::http::AppState;
use crate::mcp::jsonrpc::notification;
use crate::mcp::session::Session;
use crate::protocol::meta;

/// Forwards every list change, and updates of the resources the session subscribed to, to a
/// legacy session's stream.
pub fn follow_session(state: &AppState, session: Arc<Session>, stream: mpsc::Sender<Value>) {
    let filter = Filter {
        tools: true,
        prompts: true,
        resources: true,
        resource_uris: Vec::new(),
    };
    forward(
        state.catalog.subscribe(),
        Listener {
            stream,
            filter,
            session: Some(session),
            subscription_id: None,
            shutdown: state.shutdown.clone(),
        },
    );
}

/// What a listener opted into.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// `notifications/tools/list_changed`.
    pub tools: bool,
    /// `notifications/prompts/list_changed`.
    pub prompts: bool,
    /// `notifications/resources/list_changed`.
    pub resources: bool,
    /// `notifications/resources/updated` for these URIs (legacy sessions use their own set).
    pub resource_uris: Vec<String>,
}

/// The notifications a change produces for a filter (and, for legacy sessions, the session's
/// resource subscriptions).
fn notifications(
    change: &CatalogChange,
    filter: &Filter,
    session: Option<&Session>,
) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    if change.tools && filter.tools {
        out.push(("notifications/tools/list_changed", json!({})));
    }
    if change.prompts && filter.prompts {
        out.push(("notifications/prompts/list_changed", json!({})));
    }
    if change.resources && filter.resources {
        out.push(("notifications/resources/list_changed", json!({})));
    }
    for uri in &change.updated_resources {
        let subscribed =
            filter.resource_uris.contains(uri) || session.is_some_and(|s| s.is_subscribed(uri));
        if subscribed {
            out.push(("notifications/resources/updated", json!({ "uri": uri })));
        }
    }
    out
}

/// Where a forwarder sends, and what ends it.
pub struct Listener {
    /// The stream.
    pub stream: mpsc::Sender<Value>,
    /// What it opted into.
    pub filter: Filter,
    /// The legacy session (for its resource subscriptions).
    pub session: Option<Arc<Session>>,
    /// The modern subscription id (the `subscriptions/listen` request id).
    pub subscription_id: Option<Value>,
    /// Cancelled when the server stops.
    pub shutdown: CancellationToken,
}

/// Forwards catalog changes to a stream until the stream closes or the server stops. With a
/// subscription id, each notification carries it in `_meta`, and a server stop ends the
/// subscription gracefully with its completion result.
pub fn forward(mut changes: broadcast::Receiver<CatalogChange>, listener: Listener) {
    let Listener {
        stream,
        filter,
        session,
        subscription_id,
        shutdown,
    } = listener;
    actix_web::rt::spawn(async move {
        loop {
            let change = tokio::select! {
                _ = stream.closed() => return,
                _ = shutdown.cancelled() => {
                    if let Some(id) = &subscription_id {
                        let closing = json!({
                            "jsonrpc": "2.0",
                            "id": id,
                            "result": { "resultType": "complete", "_meta": { meta::SUBSCRIPTION_ID: id } },
                        });
                        let _ = stream.send(closing).await;
                    }
                    return;
                }
                change = changes.recv() => change,
            };
            let change = match change {
                Ok(change) => change,
                // Missed some: tell the listener everything may have changed.
                Err(broadcast::error::RecvError::Lagged(_)) => CatalogChange {
                    tools: true,
                    prompts: true,
                    resources: true,
                    updated_resources: Vec::new(),
                },
                Err(broadcast::error::RecvError::Closed) => return,
            };
            for (method, mut params) in notifications(&change, &filter, session.as_deref()) {
                if let Some(id) = &subscription_id {
                    params["_meta"] = json!({ meta::SUBSCRIPTION_ID: id });
                }
                if stream.send(notification(method, params)).await.is_err() {
                    return;
                }
            }
        }
    });
}
