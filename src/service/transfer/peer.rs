//! The peer gateway's export (IBM mcp-context-forge, `GET /export` there), converted to this
//! gateway's document so its users move over in one step.
//!
//! Its shape: `{"version", "exported_at", "exported_by", "entities": {"tools", "gateways",
//! "servers", "prompts", "resources", "roots"}, "metadata"}`. Tags are strings or
//! `{"id", "label"}`; prompts carry their arguments as a JSON Schema (`input_schema`); a server
//! lists its tools by name or slug (`tool_ids`); credentials (`auth_value`) are AES-256-GCM under
//! SHA-256 of the peer's `AUTH_ENCRYPTION_SECRET`, base64url: given that secret as the import's
//! passphrase they are opened, otherwise left out and listed. What this gateway has no place for
//! (roots, `jsonpath_filter`, passthrough headers, federated MCP tools, which come back when
//! their upstream is discovered) is named in the report's warnings.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::{Map, Value, json};

use super::document::{FORMAT, VERSION};
use crate::registry::gateways::slugify;
use crate::registry::validate::invalid;
use crate::service::Outcome;

/// The peer format's name in reports.
pub const NAME: &str = "mcp-context-forge";

/// The entity types the peer exports.
const TYPES: &[&str] = &[
    "tools",
    "gateways",
    "servers",
    "prompts",
    "resources",
    "roots",
];

/// Converts a peer export; returns this gateway's document and what could not be carried.
pub fn convert(body: Value, passphrase: Option<&str>) -> Outcome<(Value, Vec<String>)> {
    let text = |key: &str| {
        body.get(key)
            .and_then(Value::as_str)
            .filter(|text| !text.is_empty())
    };
    if text("version").is_none() {
        return Err(invalid("version", "the peer export has no version").into());
    }
    let exported_at = text("exported_at")
        .ok_or_else(|| invalid("exported_at", "the peer export has no exported_at"))?;
    let exported_at = chrono::DateTime::parse_from_rfc3339(exported_at)
        .map_err(|error| invalid("exported_at", format!("is not an RFC 3339 time: {error}")))?;
    let Some(entities) = body.get("entities").and_then(Value::as_object) else {
        return Err(invalid("entities", "must be an object of entity lists").into());
    };
    for (kind, items) in entities {
        if !TYPES.contains(&kind.as_str()) {
            return Err(invalid(
                format!("entities.{kind}"),
                format!(
                    "is not an entity type of the peer export ({})",
                    TYPES.join(", ")
                ),
            )
            .into());
        }
        if !items.is_array() {
            return Err(invalid(format!("entities.{kind}"), "must be a list").into());
        }
    }
    let mut peer = Peer {
        opener: passphrase.map(crate::secrets::SecretBox::new),
        omitted: Vec::new(),
        warnings: Vec::new(),
    };
    let list = |kind: &str| -> Vec<Map<String, Value>> {
        entities
            .get(kind)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|item| item.as_object().cloned())
            .collect()
    };
    for (kind, items) in entities {
        let objects = items.as_array().map_or(0, |items| {
            items.iter().filter(|item| item.is_object()).count()
        });
        let all = items.as_array().map_or(0, Vec::len);
        if objects != all {
            return Err(invalid(format!("entities.{kind}"), "every item must be an object").into());
        }
    }
    let tools: Vec<Value> = list("tools")
        .into_iter()
        .enumerate()
        .filter_map(|(index, tool)| peer.tool(index, tool))
        .collect();
    let tool_names: BTreeMap<String, String> = tools
        .iter()
        .filter_map(|tool| tool["name"].as_str())
        .map(|name| (slugify(name), name.to_owned()))
        .collect();
    let gateways: Vec<Value> = list("gateways")
        .into_iter()
        .enumerate()
        .map(|(index, gateway)| peer.gateway(index, gateway))
        .collect();
    let servers: Vec<Value> = list("servers")
        .into_iter()
        .map(|server| peer.server(server, &tool_names))
        .collect();
    let prompts: Vec<Value> = list("prompts")
        .into_iter()
        .map(|prompt| peer.prompt(prompt))
        .collect();
    let resources: Vec<Value> = list("resources")
        .into_iter()
        .map(|resource| peer.resource(resource))
        .collect();
    let roots = list("roots").len();
    if roots > 0 {
        peer.warnings.push(format!(
            "{roots} root(s) not imported: roots are offered by MCP clients, not configured on this gateway"
        ));
    }
    let document = json!({
        "format": FORMAT,
        "version": VERSION,
        "exported_at": exported_at.with_timezone(&chrono::Utc),
        "exported_by": text("exported_by").unwrap_or("unknown"),
        "gateway_version": format!("{NAME} (MCP {})", text("version").unwrap_or_default()),
        "secrets": {"mode": "omitted", "omitted": peer.omitted},
        "gateways": gateways,
        "tools": tools,
        "resources": resources,
        "prompts": prompts,
        "servers": servers,
    });
    Ok((document, peer.warnings))
}

struct Peer {
    /// Opens the peer's credentials (keyed by its `AUTH_ENCRYPTION_SECRET`).
    opener: Option<crate::secrets::SecretBox>,
    omitted: Vec<Value>,
    warnings: Vec<String>,
}

impl Peer {
    fn tool(&mut self, index: usize, tool: Map<String, Value>) -> Option<Value> {
        let name = tool
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        match tool
            .get("integration_type")
            .and_then(Value::as_str)
            .unwrap_or("REST")
        {
            "REST" => {}
            "MCP" => {
                self.warnings.push(format!(
                    "tool {name:?} (entities.tools[{index}]) comes from an upstream MCP server: it is discovered again when that upstream is imported"
                ));
                return None;
            }
            other => {
                self.warnings.push(format!(
                    "tool {name:?} (entities.tools[{index}]) is of type {other}, which this gateway does not offer: not imported"
                ));
                return None;
            }
        }
        let mut item = pick(
            &tool,
            &[
                "name",
                "description",
                "url",
                "request_type",
                "input_schema",
                "output_schema",
            ],
        );
        common(&tool, &mut item);
        let mut annotations = Map::new();
        if let Some(Value::Object(given)) = tool.get("annotations") {
            for key in [
                "title",
                "readOnlyHint",
                "destructiveHint",
                "idempotentHint",
                "openWorldHint",
            ] {
                if let Some(value) = given.get(key).filter(|value| !value.is_null()) {
                    annotations.insert(key.into(), value.clone());
                }
            }
        }
        if let Some(title) = tool.get("displayName").filter(|title| title.is_string()) {
            annotations.entry("title").or_insert(title.clone());
        }
        item.insert("annotations".into(), Value::Object(annotations));
        let mut headers = Map::new();
        if let Some(Value::Object(given)) = tool.get("headers") {
            for (header, value) in given {
                let plain = match value {
                    Value::String(text) if text == "*****" => None,
                    Value::String(text) => Some(text.clone()),
                    Value::Object(sealed) => sealed
                        .get("_mcpgateway_encrypted_header_value_v1")
                        .and_then(Value::as_str)
                        .and_then(|sealed| self.open(sealed))
                        .and_then(|plain| {
                            serde_json::from_str::<String>(&plain).ok().or(Some(plain))
                        }),
                    _ => None,
                };
                match plain {
                    Some(plain) => {
                        headers.insert(header.clone(), plain.into());
                    }
                    None => self.omit("tool", &name, &format!("headers.{header}")),
                }
            }
        }
        if let Some(auth) = self.auth(&tool, "tool", &name) {
            for (header, value) in auth {
                headers.insert(header, value.into());
            }
        }
        item.insert("headers".into(), Value::Object(headers));
        if tool
            .get("jsonpath_filter")
            .is_some_and(|filter| filter.as_str().is_some_and(|f| !f.is_empty()))
        {
            self.warnings.push(format!(
                "tool {name:?}: its jsonpath_filter is not carried over (the whole response is returned)"
            ));
        }
        Some(Value::Object(item))
    }

    fn gateway(&mut self, index: usize, gateway: Map<String, Value>) -> Value {
        let name = gateway
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let mut item = pick(&gateway, &["name", "url", "description", "transport"]);
        common(&gateway, &mut item);
        if let Some(headers) = self.auth(&gateway, "gateway", &name) {
            let auth = match headers.get("Authorization").map(String::as_str) {
                Some(value) if headers.len() == 1 && value.starts_with("Bearer ") => {
                    json!({"type": "bearer", "token": value.trim_start_matches("Bearer ")})
                }
                Some(value) if headers.len() == 1 && value.starts_with("Basic ") => {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(value.trim_start_matches("Basic "))
                        .ok()
                        .and_then(|bytes| String::from_utf8(bytes).ok())
                        .unwrap_or_default();
                    let (username, password) = decoded.split_once(':').unwrap_or_default();
                    json!({"type": "basic", "username": username, "password": password})
                }
                _ => json!({"type": "headers", "headers": headers}),
            };
            item.insert("auth".into(), auth);
        }
        let passthrough = gateway.get("passthrough_headers").and_then(Value::as_array);
        if passthrough.is_some_and(|headers| !headers.is_empty()) {
            self.warnings.push(format!(
                "gateway {name:?} (entities.gateways[{index}]): passthrough_headers are not carried over (this gateway never forwards a client's headers upstream)"
            ));
        }
        Value::Object(item)
    }

    fn server(
        &mut self,
        server: Map<String, Value>,
        tool_names: &BTreeMap<String, String>,
    ) -> Value {
        let mut item = pick(&server, &["name", "description"]);
        common(&server, &mut item);
        let references = server.get("tool_ids").and_then(Value::as_array);
        let tools: Vec<Value> = references
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|reference| {
                // A name or a slug; a federated tool's is resolved when its upstream is found.
                tool_names
                    .get(&slugify(reference))
                    .cloned()
                    .unwrap_or_else(|| reference.to_owned())
                    .into()
            })
            .collect();
        item.insert("tools".into(), tools.into());
        Value::Object(item)
    }

    fn resource(&mut self, resource: Map<String, Value>) -> Value {
        let mut item = pick(
            &resource,
            &["name", "uri", "description", "mime_type", "content"],
        );
        common(&resource, &mut item);
        if !item.contains_key("content") {
            let name = item.get("uri").and_then(Value::as_str).unwrap_or_default();
            self.warnings.push(format!(
                "resource {name:?}: the peer export carries no content, so it is imported empty: set its content"
            ));
            item.insert("content".into(), "".into());
        }
        Value::Object(item)
    }

    fn prompt(&mut self, prompt: Map<String, Value>) -> Value {
        let mut item = pick(&prompt, &["name", "description", "template"]);
        common(&prompt, &mut item);
        let schema = prompt.get("input_schema").cloned().unwrap_or(Value::Null);
        let required: Vec<&str> = schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let arguments: Vec<Value> = schema["properties"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, property)| {
                let mut argument =
                    json!({"name": name, "required": required.contains(&name.as_str())});
                if let Some(description) = property.get("description").filter(|d| d.is_string()) {
                    argument["description"] = description.clone();
                }
                argument
            })
            .collect();
        item.insert("arguments".into(), arguments.into());
        Value::Object(item)
    }

    /// The headers of an item's `auth_type`/`auth_value`, opened; `None` (and listed) if there
    /// is none or it cannot be opened.
    fn auth(
        &mut self,
        item: &Map<String, Value>,
        kind: &str,
        name: &str,
    ) -> Option<BTreeMap<String, String>> {
        item.get("auth_type")
            .and_then(Value::as_str)
            .filter(|kind| !kind.is_empty())?;
        let opened = item
            .get("auth_value")
            .and_then(Value::as_str)
            .and_then(|sealed| self.open(sealed))
            .and_then(|plain| serde_json::from_str(&plain).ok());
        if opened.is_none() {
            self.omit(kind, name, "auth");
        }
        opened
    }

    /// Opens one of the peer's sealed values (base64url of nonce ‖ ciphertext).
    fn open(&self, sealed: &str) -> Option<String> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sealed.trim_end_matches('='))
            .ok()?;
        let standard = base64::engine::general_purpose::STANDARD.encode(bytes);
        self.opener.as_ref()?.open(&standard).ok()
    }

    fn omit(&mut self, kind: &str, name: &str, field: &str) {
        self.omitted
            .push(json!({"kind": kind, "name": name, "field": field}));
    }
}

/// The non-null fields `keys` of `item`.
fn pick(item: &Map<String, Value>, keys: &[&str]) -> Map<String, Value> {
    keys.iter()
        .filter_map(|key| {
            let value = item.get(*key).filter(|value| !value.is_null())?;
            Some(((*key).to_owned(), value.clone()))
        })
        .collect()
}

/// `tags` (strings or `{"id", "label"}`) and `is_active`, as this gateway's fields.
fn common(item: &Map<String, Value>, out: &mut Map<String, Value>) {
    let tags: Vec<Value> = item
        .get("tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|tag| match tag {
            Value::String(tag) => Some(tag.clone().into()),
            Value::Object(tag) => tag
                .get("label")
                .or_else(|| tag.get("id"))
                .filter(|label| label.is_string())
                .cloned(),
            _ => None,
        })
        .collect();
    out.insert("tags".into(), tags.into());
    if let Some(active) = item.get("is_active").and_then(Value::as_bool) {
        out.insert("enabled".into(), active.into());
    }
}
