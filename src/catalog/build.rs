//! Building the catalog's items from stored rows: each row becomes what the hot path serves
//! (a tool's definition and compiled schema, its REST target with headers opened, an upstream's
//! target with credentials opened); a row that cannot be served is left out and logged.

use crate::protocol::Encoded;
use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::{Gateway, Prompt, Resource, Server, Tool, ToolTarget};
use crate::db::registry::{GatewayRow, PromptRow, ResourceRow, ServerRecord, ToolRow};
use crate::db::stored::{IntegrationType, RequestType, Transport};
use crate::registry::prompts::PromptArgument;
use crate::secrets::SecretBox;
use crate::upstream::TransportKind;

pub(super) fn parse_json(column: &str, text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|error| {
        tracing::error!(column, %error, "stored JSON does not parse");
        Value::Null
    })
}

/// Adds the members an upstream's definition carried that the gateway passes through as they
/// came (stored as a JSON object); the members the gateway sets itself are never replaced.
fn pass_through(definition: &mut Map<String, Value>, table: &str, stored: &str) {
    if let Value::Object(members) = parse_json(&format!("{table}.passthrough"), stored) {
        for (member, value) in members {
            definition.entry(member).or_insert(value);
        }
    }
}

pub(super) fn tool(row: ToolRow, secrets: &SecretBox) -> Option<Tool> {
    let access = crate::ownership_of!(row);
    let input_schema = parse_json("tools.input_schema", &row.input_schema);
    let mut definition = Map::new();
    definition.insert("name".into(), json!(row.name));
    if let Some(description) = &row.description {
        definition.insert("description".into(), json!(description));
    }
    definition.insert("inputSchema".into(), input_schema.clone());
    if let Some(schema) = &row.output_schema {
        definition.insert(
            "outputSchema".into(),
            parse_json("tools.output_schema", schema),
        );
    }
    let annotations = parse_json("tools.annotations", &row.annotations);
    if annotations.as_object().is_some_and(|a| !a.is_empty()) {
        definition.insert("annotations".into(), annotations);
    }
    pass_through(&mut definition, "tools", &row.passthrough);
    let validator = jsonschema::validator_for(&input_schema)
        .map_err(|error| tracing::error!(tool = %row.name, %error, "stored input schema does not compile"))
        .ok();
    let target = match (row.integration_type, row.url) {
        (IntegrationType::Rest, Some(url)) => ToolTarget::Rest {
            method: row.request_type.unwrap_or(RequestType::Post),
            url,
            headers: {
                let stored: BTreeMap<String, String> =
                    serde_json::from_str(&row.headers).unwrap_or_default();
                let mut headers = BTreeMap::new();
                for (name, value) in stored {
                    match secrets.open_header(&value) {
                        Ok((plain, _)) => headers.insert(name, plain),
                        Err(error) => {
                            tracing::error!(tool = %row.name, %error, "a stored header does not open; the tool is not served");
                            return None;
                        }
                    };
                }
                headers
            },
            header_arguments: crate::registry::tools::header_arguments(&input_schema)
                .unwrap_or_default(),
        },
        _ => ToolTarget::Upstream {
            gateway_id: row.gateway_id.unwrap_or_default(),
            original_name: row.original_name.unwrap_or_else(|| row.name.clone()),
        },
    };
    Some(Tool {
        id: row.id,
        name: row.name,
        definition: Encoded::new(&Value::Object(definition)),
        validator,
        target,
        access,
    })
}

pub(super) fn resource(row: ResourceRow) -> Resource {
    let access = crate::ownership_of!(row);
    let mut definition = Map::new();
    match (&row.uri, &row.uri_template) {
        (Some(uri), _) => definition.insert("uri".into(), json!(uri)),
        (None, template) => definition.insert("uriTemplate".into(), json!(template)),
    };
    definition.insert("name".into(), json!(row.name));
    if let Some(description) = &row.description {
        definition.insert("description".into(), json!(description));
    }
    if let Some(mime_type) = &row.mime_type {
        definition.insert("mimeType".into(), json!(mime_type));
    }
    if let (Some(_), Some(content)) = (&row.uri, &row.content) {
        definition.insert("size".into(), json!(content.len()));
    }
    pass_through(&mut definition, "resources", &row.passthrough);
    Resource {
        id: row.id,
        uri: row.uri,
        uri_template: row.uri_template,
        definition: Encoded::new(&Value::Object(definition)),
        mime_type: row.mime_type,
        content: row.content,
        gateway_id: row.gateway_id,
        access,
    }
}

pub(super) fn prompt(row: PromptRow) -> Option<Prompt> {
    let access = crate::ownership_of!(row);
    let arguments: Vec<PromptArgument> = serde_json::from_str(&row.arguments).unwrap_or_default();
    let upstream = row.gateway_id.clone().map(|gateway_id| {
        (
            gateway_id,
            row.original_name
                .clone()
                .unwrap_or_else(|| row.name.clone()),
        )
    });
    let template = if upstream.is_some() {
        String::new()
    } else {
        row.template.clone()
    };
    if let Err(error) = crate::prompt_render::check_syntax(&template) {
        tracing::error!(prompt = %row.name, %error, "stored prompt template does not compile; not served");
        return None;
    }
    let mut definition = Map::new();
    definition.insert("name".into(), json!(row.name));
    if let Some(description) = &row.description {
        definition.insert("description".into(), json!(description));
    }
    definition.insert(
        "arguments".into(),
        Value::Array(
            arguments
                .iter()
                .map(|argument| {
                    let mut value = Map::new();
                    value.insert("name".into(), json!(argument.name));
                    if let Some(description) = &argument.description {
                        value.insert("description".into(), json!(description));
                    }
                    value.insert("required".into(), json!(argument.required));
                    Value::Object(value)
                })
                .collect(),
        ),
    );
    pass_through(&mut definition, "prompts", &row.passthrough);
    Some(Prompt {
        id: row.id,
        name: row.name,
        definition: Encoded::new(&Value::Object(definition)),
        arguments,
        description: row.description,
        template,
        upstream,
        access,
    })
}

impl From<Transport> for TransportKind {
    fn from(transport: Transport) -> Self {
        match transport {
            Transport::Streamablehttp => TransportKind::StreamableHttp,
            Transport::Sse => TransportKind::Sse,
            Transport::Stdio => TransportKind::Stdio,
        }
    }
}

pub(super) fn gateway(row: GatewayRow, secrets: &SecretBox) -> Option<Gateway> {
    let access = crate::ownership_of!(row);
    let headers: BTreeMap<String, String> = match &row.auth_secret {
        None => BTreeMap::new(),
        Some(sealed) => match secrets
            .open(sealed)
            .map(|plain| serde_json::from_str(&plain))
        {
            Ok(Ok(headers)) => headers,
            Ok(Err(_)) | Err(_) => {
                tracing::error!(gateway = %row.name, "stored credentials do not decrypt; the gateway is not served");
                return None;
            }
        },
    };
    let Some(target) = crate::federation::target_of(&row, headers) else {
        tracing::error!(gateway = %row.name, "its stored command cannot be read; the gateway is not served");
        return None;
    };
    Some(Gateway {
        target: std::sync::Arc::new(target),
        id: row.id,
        name: row.name,
        access,
    })
}

pub(super) fn server(record: ServerRecord) -> Server {
    // Ids are UUIDs, unique across the three kinds: one set holds every member.
    let members = (record.members.tool_ids.iter())
        .chain(&record.members.resource_ids)
        .chain(&record.members.prompt_ids)
        .cloned()
        .collect();
    Server {
        members,
        access: crate::ownership_of!(record.row),
        id: record.row.id,
        name: record.row.name,
        description: record.row.description,
        tool_ids: record.members.tool_ids,
        resource_ids: record.members.resource_ids,
        prompt_ids: record.members.prompt_ids,
    }
}
