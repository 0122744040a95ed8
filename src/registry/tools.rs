//! Tools: REST-backed (created here) or discovered from upstream MCP servers (by federation).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::validate::{
    MASK, headers, invalid, mcp_name, object_schema, optional_text, tags, tool_url,
};
use super::{
    Change, Entity, Invalid, ItemMeta, Visibility, item_meta, new_id, nullable, stored_json, taken,
    to_json_text, update_meta,
};
use crate::db::registry::ToolRow;

pub use crate::db::stored::{IntegrationType, RequestType};

/// MCP tool annotations (hints for clients; never trusted for security).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ToolAnnotations {
    /// A human-readable title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The tool does not change its environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only_hint: Option<bool>,
    /// The tool may destroy data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destructive_hint: Option<bool>,
    /// Calling it twice with the same arguments has no further effect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotent_hint: Option<bool>,
    /// The tool talks to an open world (the internet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_world_hint: Option<bool>,
}

/// `POST /tools`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolCreate {
    /// The MCP name: 1–128 of `A-Z a-z 0-9 _ - .`; unique in the gateway.
    pub name: String,
    /// What the tool does, for the model.
    #[serde(default)]
    pub description: Option<String>,
    /// `REST` (the default). `MCP` tools come from gateways.
    #[serde(default)]
    pub integration_type: Option<IntegrationType>,
    /// The endpoint a REST tool calls.
    #[serde(default)]
    pub url: Option<String>,
    /// The HTTP method (default `POST`).
    #[serde(default)]
    pub request_type: Option<RequestType>,
    /// Headers sent with each call (credentials, usually). Their values are encrypted at rest
    /// and never shown again: responses show `*****`.
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    /// JSON Schema of the arguments (default: an object with no declared properties).
    #[serde(default, alias = "inputSchema")]
    #[schema(value_type = Option<Object>)]
    pub input_schema: Option<Value>,
    /// JSON Schema of `structuredContent`.
    #[serde(default, alias = "outputSchema")]
    #[schema(value_type = Option<Object>)]
    pub output_schema: Option<Value>,
    /// MCP tool annotations.
    #[serde(default)]
    pub annotations: Option<ToolAnnotations>,
    /// Free-form labels.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Who may see it (default `public`).
    #[serde(default)]
    pub visibility: Option<Visibility>,
    /// The team it belongs to (one of yours): with `"visibility": "team"`, its members see it.
    #[serde(default)]
    pub team_id: Option<String>,
}

/// `PUT /tools/{id}`: absent fields stay as they are; `null` clears a nullable field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolUpdate {
    /// A new name.
    #[serde(default)]
    pub name: Option<String>,
    /// A new description, or `null` to clear it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// A new endpoint.
    #[serde(default)]
    pub url: Option<String>,
    /// A new HTTP method.
    #[serde(default)]
    pub request_type: Option<RequestType>,
    /// Replaces all headers; a value of `*****` keeps the stored value of that header.
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    /// A new input schema.
    #[serde(default, alias = "inputSchema")]
    #[schema(value_type = Option<Object>)]
    pub input_schema: Option<Value>,
    /// A new output schema, or `null` to clear it.
    #[serde(default, alias = "outputSchema", deserialize_with = "nullable")]
    #[schema(value_type = Option<Object>)]
    pub output_schema: Option<Option<Value>>,
    /// New annotations.
    #[serde(default)]
    pub annotations: Option<ToolAnnotations>,
    /// Replaces all tags.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// A new visibility.
    #[serde(default)]
    pub visibility: Option<Visibility>,
    /// Move it to another of your teams (`null`: no team).
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub team_id: Option<Option<String>>,
}

/// A tool as clients see it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ToolView {
    /// Its id.
    pub id: String,
    /// Its MCP name.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// `REST` or `MCP`.
    pub integration_type: IntegrationType,
    /// The REST endpoint.
    pub url: Option<String>,
    /// The HTTP method of a REST tool.
    pub request_type: Option<RequestType>,
    /// Header names; every value is shown as `*****` (values are write-only).
    pub headers: BTreeMap<String, String>,
    /// JSON Schema of the arguments.
    #[schema(value_type = Object)]
    pub input_schema: Value,
    /// JSON Schema of `structuredContent`.
    #[schema(value_type = Option<Object>)]
    pub output_schema: Option<Value>,
    /// MCP annotations.
    pub annotations: ToolAnnotations,
    /// The upstream MCP server it came from.
    pub gateway_id: Option<String>,
    /// Its name on that upstream.
    pub original_name: Option<String>,
    /// Tags, state, visibility, owner and timestamps.
    #[serde(flatten)]
    pub meta: ItemMeta,
}

/// The tool entity.
pub struct Tools;

/// The keyword of a REST tool's input property that is sent as a request header (its value the
/// header's name) instead of in the URL or the body.
pub const HEADER_KEYWORD: &str = "x-mcpgate-header";

/// Headers no argument may set: the connection's own, and what the gateway decides.
pub fn header_argument_allowed(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !lower.is_empty()
        && lower
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        && !lower.starts_with("proxy-")
        && !matches!(
            lower.as_str(),
            "host"
                | "content-length"
                | "content-type"
                | "transfer-encoding"
                | "connection"
                | "keep-alive"
                | "te"
                | "trailer"
                | "upgrade"
                | "cookie"
                | "traceparent"
                | "tracestate"
        )
}

/// The arguments of a REST tool sent as headers: (argument, header), checked.
pub fn header_arguments(schema: &Value) -> Result<Vec<(String, String)>, Invalid> {
    let mut found = Vec::new();
    for (argument, property) in schema["properties"].as_object().into_iter().flatten() {
        let Some(header) = property.get(HEADER_KEYWORD) else {
            continue;
        };
        let field = format!("input_schema.properties.{argument}.{HEADER_KEYWORD}");
        let header = header
            .as_str()
            .filter(|name| header_argument_allowed(name))
            .ok_or_else(|| {
                invalid(
                    &field,
                    "must name a header an argument may set (not Host, Content-Length, Cookie, Proxy-…)",
                )
            })?;
        found.push((argument.clone(), header.to_owned()));
    }
    Ok(found)
}

fn default_input_schema() -> Value {
    json!({"type": "object", "properties": {}})
}

/// Header values as stored: each sealed with the gateway's encryption secret.
fn sealed(change: &Change<'_>, headers: BTreeMap<String, String>) -> BTreeMap<String, String> {
    headers
        .into_iter()
        .map(|(name, value)| (name, change.secrets.seal_header(&value)))
        .collect()
}

fn validate_rest_fields(row: &ToolRow) -> Result<(), Invalid> {
    if row.integration_type == IntegrationType::Rest && row.url.is_none() {
        return Err(invalid("url", "is required for a REST tool"));
    }
    Ok(())
}

impl Entity for Tools {
    type Record = ToolRow;
    type Create = ToolCreate;
    type Update = ToolUpdate;
    type View = ToolView;

    fn egress_url(record: &ToolRow) -> Option<&str> {
        record.url.as_deref()
    }

    fn egress_url_of_update(input: &ToolUpdate) -> Option<&str> {
        input.url.as_deref()
    }

    const NOUN: &'static str = "tool";
    const PATH: &'static str = "tools";

    fn create(input: ToolCreate, change: &Change<'_>) -> Result<ToolRow, Invalid> {
        if input.integration_type == Some(IntegrationType::Mcp) {
            return Err(invalid(
                "integration_type",
                "MCP tools are discovered from upstream servers registered with POST /gateways; \
                 create REST tools here",
            ));
        }
        let input_schema = input.input_schema.unwrap_or_else(default_input_schema);
        object_schema("input_schema", &input_schema)?;
        header_arguments(&input_schema)?;
        if let Some(schema) = &input.output_schema {
            object_schema("output_schema", schema)?;
        }
        let url = input
            .url
            .as_deref()
            .map(|url| tool_url("url", url))
            .transpose()?;
        let row = ToolRow {
            id: new_id(),
            name: mcp_name("name", &input.name)?,
            description: optional_text("description", input.description.as_deref(), 8192)?,
            integration_type: IntegrationType::Rest,
            url,
            request_type: Some(input.request_type.unwrap_or(RequestType::Post)),
            headers: to_json_text(&sealed(
                change,
                headers("headers", &input.headers.unwrap_or_default())?,
            )),
            input_schema: to_json_text(&input_schema),
            output_schema: input.output_schema.as_ref().map(to_json_text),
            annotations: to_json_text(&input.annotations.unwrap_or_default()),
            tags: to_json_text(&tags(input.tags.as_deref())?),
            gateway_id: None,
            original_name: None,
            enabled: true,
            owner_email: Some(change.actor_email.to_owned()),
            team_id: optional_text("team_id", input.team_id.as_deref(), 64)?,
            visibility: input.visibility.unwrap_or_default(),
            created_at: change.now,
            updated_at: change.now,
            passthrough: "{}".into(),
        };
        validate_rest_fields(&row)?;
        Ok(row)
    }

    fn update(
        mut row: ToolRow,
        input: &ToolUpdate,
        change: &Change<'_>,
    ) -> Result<ToolRow, Invalid> {
        let is_rest = row.integration_type == IntegrationType::Rest;
        let rest_only = |field: &str, present: bool| {
            if present && !is_rest {
                Err(invalid(
                    field,
                    "can only be changed on REST tools; MCP tools follow their upstream",
                ))
            } else {
                Ok(())
            }
        };
        rest_only("url", input.url.is_some())?;
        rest_only("request_type", input.request_type.is_some())?;
        rest_only("headers", input.headers.is_some())?;
        rest_only("input_schema", input.input_schema.is_some())?;
        if let Some(name) = &input.name {
            row.name = mcp_name("name", name)?;
        }
        if let Some(description) = &input.description {
            row.description = optional_text("description", description.as_deref(), 8192)?;
        }
        if let Some(url) = &input.url {
            let url = tool_url("url", url)?;
            // Credentials stay with the origin they were entered for: moving the tool to
            // another origin needs its header values entered again.
            let origin = |url: &str| url::Url::parse(url).ok().map(|url| url.origin());
            let moves = row.url.as_deref().map(origin) != Some(origin(&url));
            let stored: BTreeMap<String, String> = stored_json("tools.headers", &row.headers);
            let reentered = input
                .headers
                .as_ref()
                .is_some_and(|headers| headers.values().all(|value| value != MASK));
            if moves && !stored.is_empty() && !reentered {
                return Err(invalid(
                    "headers",
                    "the URL moves to another origin: enter the header values again (stored \
                     credentials are not sent to a new origin)",
                ));
            }
            row.url = Some(url);
        }
        if let Some(method) = input.request_type {
            row.request_type = Some(method);
        }
        if let Some(new_headers) = &input.headers {
            let stored: BTreeMap<String, String> = stored_json("tools.headers", &row.headers);
            let entered = headers("headers", new_headers)?;
            let mut merged = BTreeMap::new();
            for (name, value) in entered {
                let value = if value == MASK {
                    stored.get(&name).cloned().ok_or_else(|| {
                        invalid(
                            format!("headers.{name}"),
                            "has no stored value to keep: enter its value",
                        )
                    })?
                } else {
                    change.secrets.seal_header(&value)
                };
                merged.insert(name, value);
            }
            row.headers = to_json_text(&merged);
        }
        if let Some(schema) = &input.input_schema {
            object_schema("input_schema", schema)?;
            header_arguments(schema)?;
            row.input_schema = to_json_text(schema);
        }
        if let Some(schema) = &input.output_schema {
            if let Some(schema) = schema {
                object_schema("output_schema", schema)?;
            }
            row.output_schema = schema.as_ref().map(to_json_text);
        }
        if let Some(annotations) = &input.annotations {
            row.annotations = to_json_text(annotations);
        }
        update_meta(
            (
                &mut row.tags,
                &mut row.visibility,
                &mut row.team_id,
                &mut row.updated_at,
            ),
            input.tags.as_deref(),
            input.visibility,
            input.team_id.as_ref(),
            change,
        )?;
        validate_rest_fields(&row)?;
        Ok(row)
    }

    fn view(row: ToolRow) -> ToolView {
        let headers: BTreeMap<String, String> = stored_json("tools.headers", &row.headers);
        ToolView {
            meta: item_meta!(row, "tools"),
            headers: headers
                .into_keys()
                .map(|name| (name, MASK.to_owned()))
                .collect(),
            input_schema: serde_json::from_str(&row.input_schema)
                .unwrap_or_else(|_| default_input_schema()),
            output_schema: row
                .output_schema
                .as_deref()
                .map(|text| stored_json("tools.output_schema", text)),
            annotations: stored_json("tools.annotations", &row.annotations),
            integration_type: row.integration_type,
            id: row.id,
            name: row.name,
            description: row.description,
            url: row.url,
            request_type: row.request_type,
            gateway_id: row.gateway_id,
            original_name: row.original_name,
        }
    }

    fn conflict_message(_constraint: &str) -> String {
        taken("name", "this name")
    }
}
