//! Resources: a fixed URI with text content, or a URI template.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::validate::{invalid, mime_type, optional_text, required_text, tags};
use super::{
    Change, Entity, Invalid, ItemMeta, Visibility, item_meta, new_id, nullable, taken,
    to_json_text, update_meta,
};
use crate::db::registry::ResourceRow;

/// The most text content a resource may hold (bytes).
const MAX_CONTENT_BYTES: usize = 1024 * 1024;

/// `POST /resources`: give `uri` and `content`, or `uri_template`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceCreate {
    /// The resource's URI (`file:///notes.txt`, `docs://guide`); unique.
    #[serde(default)]
    pub uri: Option<String>,
    /// An RFC 6570 URI template (`docs://{section}`), instead of `uri`; unique.
    #[serde(default, alias = "uriTemplate")]
    pub uri_template: Option<String>,
    /// A human-readable name.
    pub name: String,
    /// What it holds.
    #[serde(default)]
    pub description: Option<String>,
    /// Its MIME type (default `text/plain`).
    #[serde(default, alias = "mimeType")]
    pub mime_type: Option<String>,
    /// The text content (required with `uri`).
    #[serde(default)]
    pub content: Option<String>,
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

/// `PUT /resources/{id}`: absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceUpdate {
    /// A new URI (only for resources with a URI).
    #[serde(default)]
    pub uri: Option<String>,
    /// A new URI template (only for templates).
    #[serde(default, alias = "uriTemplate")]
    pub uri_template: Option<String>,
    /// A new name.
    #[serde(default)]
    pub name: Option<String>,
    /// A new description, or `null` to clear it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// A new MIME type.
    #[serde(default, alias = "mimeType")]
    pub mime_type: Option<String>,
    /// New text content.
    #[serde(default)]
    pub content: Option<String>,
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

/// A resource as clients see it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ResourceView {
    /// Its id.
    pub id: String,
    /// Its URI, for a fixed resource.
    pub uri: Option<String>,
    /// Its URI template, for a template.
    pub uri_template: Option<String>,
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// Its MIME type.
    pub mime_type: Option<String>,
    /// Its text content.
    pub content: Option<String>,
    /// The upstream MCP server it came from.
    pub gateway_id: Option<String>,
    /// Tags, state, visibility, owner and timestamps.
    #[serde(flatten)]
    pub meta: ItemMeta,
}

/// The resource entity.
pub struct Resources;

fn uri(field: &str, value: &str) -> Result<String, Invalid> {
    let value = required_text(field, value, 2048)?;
    let parsed = url::Url::parse(&value)
        .map_err(|error| invalid(field, format!("is not an absolute URI ({error})")))?;
    debug_assert!(!parsed.scheme().is_empty());
    Ok(value)
}

fn uri_template(field: &str, value: &str) -> Result<String, Invalid> {
    let value = required_text(field, value, 2048)?;
    let has_scheme = value.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    if !has_scheme {
        return Err(invalid(
            field,
            "must start with a scheme, as in docs://{section}",
        ));
    }
    let template =
        crate::uri_template::UriTemplate::parse(&value).map_err(|why| invalid(field, why))?;
    if template.variables().is_empty() {
        return Err(invalid(field, "must contain at least one {variable}"));
    }
    if !template.is_matchable() {
        return Err(invalid(
            field,
            "may use {name} and {+name} expressions only (a URI must be matched against it)",
        ));
    }
    Ok(value)
}

fn content(value: Option<&str>) -> Result<Option<String>, Invalid> {
    match value {
        Some(text) if text.len() > MAX_CONTENT_BYTES => Err(invalid(
            "content",
            format!(
                "is {} bytes; the most allowed is {MAX_CONTENT_BYTES}",
                text.len()
            ),
        )),
        other => Ok(other.map(str::to_owned)),
    }
}

impl Entity for Resources {
    type Record = ResourceRow;
    type Create = ResourceCreate;
    type Update = ResourceUpdate;
    type View = ResourceView;

    const NOUN: &'static str = "resource";
    const PATH: &'static str = "resources";

    fn create(input: ResourceCreate, change: &Change<'_>) -> Result<ResourceRow, Invalid> {
        let (uri, uri_template) = match (&input.uri, &input.uri_template) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "uri_template",
                    "give either uri or uri_template, not both",
                ));
            }
            (None, None) => return Err(invalid("uri", "is required (or give uri_template)")),
            (Some(value), None) => (Some(uri("uri", value)?), None),
            (None, Some(value)) => (None, Some(uri_template("uri_template", value)?)),
        };
        if uri.is_some() && input.content.is_none() {
            return Err(invalid(
                "content",
                "is required for a resource with a fixed uri",
            ));
        }
        Ok(ResourceRow {
            id: new_id(),
            uri,
            uri_template,
            name: required_text("name", &input.name, 255)?,
            description: optional_text("description", input.description.as_deref(), 8192)?,
            mime_type: Some(mime_type(
                "mime_type",
                input.mime_type.as_deref().unwrap_or("text/plain"),
            )?),
            content: content(input.content.as_deref())?,
            tags: to_json_text(&tags(input.tags.as_deref())?),
            gateway_id: None,
            enabled: true,
            owner_email: Some(change.actor_email.to_owned()),
            team_id: optional_text("team_id", input.team_id.as_deref(), 64)?,
            visibility: input.visibility.unwrap_or_default(),
            created_at: change.now,
            updated_at: change.now,
            passthrough: "{}".into(),
        })
    }

    fn update(
        mut row: ResourceRow,
        input: &ResourceUpdate,
        change: &Change<'_>,
    ) -> Result<ResourceRow, Invalid> {
        if let Some(value) = &input.uri {
            if row.uri.is_none() {
                return Err(invalid(
                    "uri",
                    "this resource is a template; change uri_template instead",
                ));
            }
            row.uri = Some(uri("uri", value)?);
        }
        if let Some(value) = &input.uri_template {
            if row.uri_template.is_none() {
                return Err(invalid(
                    "uri_template",
                    "this resource has a fixed uri; change uri instead",
                ));
            }
            row.uri_template = Some(uri_template("uri_template", value)?);
        }
        if let Some(name) = &input.name {
            row.name = required_text("name", name, 255)?;
        }
        if let Some(description) = &input.description {
            row.description = optional_text("description", description.as_deref(), 8192)?;
        }
        if let Some(value) = &input.mime_type {
            row.mime_type = Some(mime_type("mime_type", value)?);
        }
        if let Some(value) = &input.content {
            row.content = content(Some(value))?;
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
        Ok(row)
    }

    fn view(row: ResourceRow) -> ResourceView {
        ResourceView {
            meta: item_meta!(row, "resources"),
            id: row.id,
            uri: row.uri,
            uri_template: row.uri_template,
            name: row.name,
            description: row.description,
            mime_type: row.mime_type,
            content: row.content,
            gateway_id: row.gateway_id,
        }
    }

    fn conflict_message(constraint: &str) -> String {
        if constraint.contains("template") {
            taken("uri_template", "this uri_template")
        } else {
            taken("uri", "this uri")
        }
    }
}
