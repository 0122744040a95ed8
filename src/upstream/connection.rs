//! A live connection to one upstream: the handshake, requests with the era's `_meta`, paging,
//! cancellation and the change watch, over whichever [`Transport`] the upstream speaks.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::process::{Exit, Processes, Role};
use super::transport::legacy_sse::LegacySse;
use super::transport::stdio::Stdio;
use super::transport::streamable::StreamableHttp;
use super::transport::{Notifications, OnChange, Transport};
use super::{CallError, Target, TransportKind};
use crate::protocol::{Era, LEGACY_VERSIONS, MODERN_VERSION, RawObject, implementation_info, meta};

/// How long connecting (discover/initialize, the SSE endpoint event) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The most pages a list method may take.
const MAX_PAGES: usize = 1000;

/// What the gateway declares as an MCP client of its own: the MCP Apps extension always (it
/// serves `ui://` resources and tools' `_meta.ui` through as they came, so App servers offer
/// their UI tools), and, on a session whose clients can be asked, sampling, elicitation and
/// roots.
fn own_capabilities(asks_clients: bool) -> Value {
    let mut capabilities = json!({
        "extensions": {
            "io.modelcontextprotocol/ui": { "mimeTypes": ["text/html;profile=mcp-app"] }
        }
    });
    if asks_clients {
        for asked in ["sampling", "elicitation", "roots"] {
            capabilities[asked] = json!({});
        }
    }
    capabilities
}

/// The member a listed item that cannot be read as JSON carries instead of its definition
/// (with its name, when that much can be read): the discovery's checks report it skipped.
pub const UNREADABLE: &str = "mcpgate/unreadable";

/// A listed item as a tree, or, when it cannot be one (it nests deeper than the parser goes),
/// its name and why.
fn readable(item: &serde_json::value::RawValue) -> Value {
    #[derive(serde::Deserialize)]
    struct Named {
        name: Option<String>,
    }
    serde_json::from_str(item.get()).unwrap_or_else(|error| {
        let name = serde_json::from_str::<Named>(item.get())
            .ok()
            .and_then(|named| named.name);
        json!({ "name": name, UNREADABLE: format!("cannot be read: {error}") })
    })
}

/// What one discovery may still bring: bytes of list pages (each, and all together) and items
/// of each kind.
#[derive(Debug, Clone)]
pub struct Budget {
    /// Items one list may hold.
    pub max_items: usize,
    /// Bytes one page may hold.
    pub max_page_bytes: usize,
    /// Bytes every page still to come may hold together.
    pub bytes_left: usize,
}

impl Budget {
    /// Counts a page of `bytes` against the budget.
    fn take_page(&mut self, method: &str, bytes: usize) -> Result<(), CallError> {
        if bytes > self.max_page_bytes {
            return Err(CallError::Bound(format!(
                "a page of {method} holds {bytes} bytes; the most accepted is {} (UPSTREAM_MAX_PAGE_BYTES)",
                self.max_page_bytes
            )));
        }
        self.bytes_left = self.bytes_left.checked_sub(bytes).ok_or_else(|| {
            CallError::Bound(
                "the upstream's lists together exceed UPSTREAM_MAX_DISCOVERY_BYTES".to_owned(),
            )
        })?;
        Ok(())
    }
}

/// A live connection to one upstream.
pub struct Connection {
    transport: Box<dyn Transport>,
    /// What was negotiated.
    pub era: Era,
    next_id: AtomicI64,
    /// The upstream's capabilities.
    pub capabilities: Value,
    /// The upstream's `serverInfo`.
    pub server_info: Value,
    /// The upstream's instructions.
    pub instructions: Option<String>,
}

impl Connection {
    /// Connects: Streamable HTTP tries 2026-07-28 first (`server/discover`) and falls back to
    /// `initialize`; the legacy SSE transport opens its stream and initializes over it.
    /// A stdio upstream's process is started in `role`.
    pub async fn connect(
        http: crate::egress::HttpClient,
        processes: &std::sync::Arc<Processes>,
        target: Target,
        role: Role,
    ) -> Result<Connection, CallError> {
        let connecting = async {
            let kind = target.transport;
            let transport: Box<dyn Transport> = match kind {
                TransportKind::StreamableHttp => Box::new(StreamableHttp::new(http, target)),
                TransportKind::Sse => Box::new(LegacySse::open(http, target).await?),
                TransportKind::Stdio => {
                    let command = target.command.as_ref().ok_or_else(|| {
                        CallError::Transport("a stdio upstream without a command".into())
                    })?;
                    Box::new(Stdio::start(processes, command, role)?)
                }
            };
            let mut connection = Connection {
                transport,
                era: Era::Modern,
                next_id: AtomicI64::new(1),
                capabilities: json!({}),
                server_info: json!({}),
                instructions: None,
            };
            if kind == TransportKind::StreamableHttp && connection.discover().await {
                return Ok(connection);
            }
            connection.initialize().await?;
            Ok(connection)
        };
        tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .unwrap_or(Err(CallError::Timeout(CONNECT_TIMEOUT)))
    }

    /// Asks `server/discover`: whether the upstream speaks 2026-07-28 (a session-era upstream
    /// refuses it without a session).
    async fn discover(&mut self) -> bool {
        let Ok(result) = self
            .request("server/discover", Map::new(), Notifications::none())
            .await
        else {
            return false;
        };
        let modern = result
            .get("supportedVersions")
            .and_then(Value::as_array)
            .is_some_and(|versions| versions.iter().any(|v| v == MODERN_VERSION));
        if modern {
            self.capabilities = result.get("capabilities").cloned().unwrap_or(json!({}));
            self.server_info = result
                .get("_meta")
                .and_then(|m| m.get(meta::SERVER_INFO))
                .cloned()
                .unwrap_or(json!({}));
            self.instructions = result
                .get("instructions")
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        modern
    }

    /// The session-era handshake: `initialize`, then `notifications/initialized`.
    async fn initialize(&mut self) -> Result<(), CallError> {
        self.adopt(Era::Legacy {
            version: LEGACY_VERSIONS[0],
        });
        let body = json!({
            "jsonrpc": "2.0",
            "id": self.next_id(),
            "method": "initialize",
            "params": {
                "protocolVersion": LEGACY_VERSIONS[0],
                // Declared so upstreams offer what needs them; each request is relayed to the
                // client only if that client declared the capability too.
                "capabilities": own_capabilities(true),
                "clientInfo": implementation_info(),
            },
        });
        let result = self
            .transport
            .request(&body, "initialize", Notifications::none())
            .await?
            .into_object();
        let version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                CallError::Transport("initialize result has no protocolVersion".into())
            })?;
        let version = crate::protocol::legacy_version(version).ok_or_else(|| {
            CallError::Transport(format!(
                "the upstream speaks protocol {version}, which the gateway does not"
            ))
        })?;
        self.adopt(Era::Legacy { version });
        self.capabilities = result.get("capabilities").cloned().unwrap_or(json!({}));
        self.server_info = result.get("serverInfo").cloned().unwrap_or(json!({}));
        self.instructions = result
            .get("instructions")
            .and_then(Value::as_str)
            .map(str::to_owned);
        self.notify("notifications/initialized", Map::new()).await
    }

    fn adopt(&mut self, era: Era) {
        self.era = era;
        self.transport.negotiated(era);
    }

    fn next_id(&self) -> i64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The negotiated protocol version.
    pub fn protocol_version(&self) -> &str {
        self.era.version()
    }

    /// Sends a request and returns its result object; notifications about it go to
    /// `notifications` (progress tokens are the caller's business).
    pub async fn request(
        &self,
        method: &str,
        params: Map<String, Value>,
        notifications: Notifications,
    ) -> Result<Map<String, Value>, CallError> {
        self.request_with_id(self.next_id(), method, params, notifications)
            .await
            .map(RawObject::into_object)
    }

    /// A fresh request id, for [`Connection::request_with_id`].
    pub fn next_request_id(&self) -> i64 {
        self.next_id()
    }

    /// Whether this is a session-era (legacy) connection, where cancellation is a
    /// `notifications/cancelled` rather than a closed stream.
    pub fn is_legacy(&self) -> bool {
        matches!(self.era, Era::Legacy { .. })
    }

    /// Tells a legacy upstream that request `id` is cancelled (best effort).
    pub async fn cancel(&self, id: i64) {
        let mut params = Map::new();
        params.insert("requestId".into(), json!(id));
        params.insert("reason".into(), json!("the client cancelled the request"));
        if let Err(error) = self.notify("notifications/cancelled", params).await {
            tracing::debug!(%error, "could not send notifications/cancelled upstream");
        }
    }

    /// [`Connection::request`] with a chosen id (so the caller can cancel it).
    pub async fn request_with_id(
        &self,
        id: i64,
        method: &str,
        params: Map<String, Value>,
        notifications: Notifications,
    ) -> Result<RawObject, CallError> {
        let body = self.request_body(id, method, params, &notifications);
        self.send(&body, method, notifications).await
    }

    /// The request message `id` for `method`, with the era's `_meta` added to `params`
    /// (moved in; [`Connection::params_of`] takes them back out for a retry).
    pub fn request_body(
        &self,
        id: i64,
        method: &str,
        mut params: Map<String, Value>,
        notifications: &Notifications,
    ) -> Value {
        if self.era == Era::Modern {
            // A client's own capabilities on its calls; the gateway's on its own requests
            // (discovery, health), where no client can be asked anything.
            let capabilities = match &notifications.capabilities {
                Value::Object(capabilities) => Value::Object(capabilities.clone()),
                _ => own_capabilities(false),
            };
            let meta_object = params.entry("_meta").or_insert_with(|| json!({}));
            if let Some(meta_object) = meta_object.as_object_mut() {
                meta_object.insert(meta::PROTOCOL_VERSION.into(), json!(MODERN_VERSION));
                meta_object.insert(meta::CLIENT_CAPABILITIES.into(), capabilities);
                meta_object.insert(meta::CLIENT_INFO.into(), implementation_info());
            }
        } else {
            // Multi round-trip fields mean nothing to a session-era upstream.
            params.remove("inputResponses");
            params.remove("requestState");
        }
        if notifications.notifications.is_some() {
            // Our own progress token (the request id) routes the upstream's progress back to
            // this request; the caller maps it to its client's token.
            let meta_object = params.entry("_meta").or_insert_with(|| json!({}));
            if let Some(meta_object) = meta_object.as_object_mut() {
                meta_object.insert("progressToken".into(), json!(id));
            }
        }
        json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })
    }

    /// The params of a message built by [`Connection::request_body`], without what it added.
    pub fn params_of(mut body: Value) -> Map<String, Value> {
        let Some(Value::Object(mut params)) = body.get_mut("params").map(Value::take) else {
            return Map::new();
        };
        if let Some(Value::Object(meta_object)) = params.get_mut("_meta") {
            for added in [
                meta::PROTOCOL_VERSION,
                meta::CLIENT_CAPABILITIES,
                meta::CLIENT_INFO,
                "progressToken",
            ] {
                meta_object.remove(added);
            }
            if meta_object.is_empty() {
                params.remove("_meta");
            }
        }
        params
    }

    /// Sends a request message and waits for its result, as the upstream wrote it.
    pub async fn send(
        &self,
        body: &Value,
        method: &str,
        notifications: Notifications,
    ) -> Result<RawObject, CallError> {
        self.transport.request(body, method, notifications).await
    }

    /// Sends a notification.
    pub async fn notify(&self, method: &str, params: Map<String, Value>) -> Result<(), CallError> {
        let body = json!({ "jsonrpc": "2.0", "method": method, "params": params });
        self.transport.notify(body).await
    }

    /// Lists every page of a list method within `budget`; `field` names the array in the
    /// result. Each page is checked before its items are parsed (its size, then how many it
    /// holds), so an oversized list costs no more than the page that broke the bound.
    pub async fn list_all(
        &self,
        method: &str,
        field: &str,
        budget: &mut Budget,
    ) -> Result<Vec<Value>, CallError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut params = Map::new();
            if let Some(cursor) = &cursor {
                params.insert("cursor".into(), json!(cursor));
            }
            let result = self
                .request_with_id(self.next_id(), method, params, Notifications::none())
                .await?;
            if let Some(page) = result.get(field) {
                budget.take_page(method, page.get().len())?;
                let page: Vec<&serde_json::value::RawValue> = serde_json::from_str(page.get())
                    .map_err(|_| {
                        CallError::Transport(format!("{method}: {field} is not an array"))
                    })?;
                if items.len() + page.len() > budget.max_items {
                    return Err(CallError::Bound(format!(
                        "{method} lists more than {} items (UPSTREAM_MAX_ITEMS)",
                        budget.max_items
                    )));
                }
                items.extend(page.into_iter().map(readable));
            }
            let next: Option<String> = result
                .get("nextCursor")
                .and_then(|raw| serde_json::from_str(raw.get()).ok());
            match next {
                Some(next) if Some(&next) != cursor.as_ref() => cursor = Some(next),
                _ => return Ok(items),
            }
        }
        Err(CallError::Bound(format!(
            "{method} returned more than {MAX_PAGES} pages"
        )))
    }

    /// Follows the upstream's change notifications, calling `on_change` for each list change,
    /// until the connection is dropped.
    pub fn watch(&mut self, on_change: OnChange) -> super::transport::Opened {
        let listen_id = self.next_id();
        self.transport.watch(on_change, listen_id)
    }

    /// Gives the connection to one client (see [`Transport::dedicate`]).
    pub fn dedicate(&self, client: std::sync::Arc<dyn super::ClientEnd>) {
        self.transport.dedicate(client);
    }

    /// How the connection ended, once it can carry no more requests (see
    /// [`Transport::ended`]).
    pub fn ended(&self) -> Option<Exit> {
        self.transport.ended()
    }

    /// For a stdio upstream: ends when its process has exited, telling how.
    pub fn exited(&self) -> Option<futures_util::future::BoxFuture<'static, Exit>> {
        self.transport.exited()
    }

    /// Ends a session-era upstream session, or stops a stdio upstream's process (best effort).
    pub async fn close(&self) {
        self.transport.close().await;
    }
}
