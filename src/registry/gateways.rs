//! Gateways: upstream MCP server records. Connecting to them is federation's work; here they
//! are stored and validated.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::validate::{http_url, invalid, optional_text, required_text, tags};
use super::{
    Change, Entity, Invalid, ItemMeta, Visibility, item_meta, new_id, nullable, to_json_text,
    update_meta,
};
use crate::db::registry::GatewayRow;

/// How the gateway talks to the upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Streamable HTTP (the current transport).
    #[serde(
        alias = "STREAMABLEHTTP",
        alias = "streamable_http",
        alias = "streamable-http"
    )]
    Streamablehttp,
    /// The legacy HTTP+SSE transport.
    #[serde(alias = "SSE")]
    Sse,
}

impl Transport {
    fn as_str(self) -> &'static str {
        match self {
            Transport::Streamablehttp => "streamablehttp",
            Transport::Sse => "sse",
        }
    }
}

/// `POST /gateways`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewayCreate {
    /// A unique name; its slug prefixes federated tool names.
    pub name: String,
    /// The upstream's MCP endpoint.
    pub url: String,
    /// `streamablehttp` (default) or `sse`.
    #[serde(default)]
    pub transport: Option<Transport>,
    /// What the upstream offers.
    #[serde(default)]
    pub description: Option<String>,
    /// Free-form labels.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Who may see it (default `public`).
    #[serde(default)]
    pub visibility: Option<Visibility>,
}

/// `PUT /gateways/{id}`: absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewayUpdate {
    /// A new name (the slug follows).
    #[serde(default)]
    pub name: Option<String>,
    /// A new endpoint.
    #[serde(default)]
    pub url: Option<String>,
    /// A new transport.
    #[serde(default)]
    pub transport: Option<Transport>,
    /// A new description, or `null` to clear it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// Replaces all tags.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// A new visibility.
    #[serde(default)]
    pub visibility: Option<Visibility>,
}

/// A gateway as clients see it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GatewayView {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The prefix of its federated tool names.
    pub slug: String,
    /// The upstream's MCP endpoint.
    pub url: String,
    /// The transport.
    pub transport: Transport,
    /// Its description.
    pub description: Option<String>,
    /// Tags, state, visibility, owner and timestamps.
    #[serde(flatten)]
    pub meta: ItemMeta,
}

/// The gateway entity.
pub struct Gateways;

/// The slug of a name: lowercase ASCII letters and digits, other runs become one `-`.
pub fn slugify(name: &str) -> String {
    let mut slug = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    slug.trim_end_matches('-').to_owned()
}

fn name_and_slug(value: &str) -> Result<(String, String), Invalid> {
    let name = required_text("name", value, 128)?;
    let slug = slugify(&name);
    if slug.is_empty() {
        return Err(invalid(
            "name",
            "must contain at least one ASCII letter or digit",
        ));
    }
    Ok((name, slug))
}

impl Entity for Gateways {
    type Record = GatewayRow;
    type Create = GatewayCreate;
    type Update = GatewayUpdate;
    type View = GatewayView;

    const NOUN: &'static str = "gateway";
    const PATH: &'static str = "gateways";

    fn create(input: GatewayCreate, change: &Change<'_>) -> Result<GatewayRow, Invalid> {
        let (name, slug) = name_and_slug(&input.name)?;
        Ok(GatewayRow {
            id: new_id(),
            name,
            slug,
            url: http_url("url", &input.url)?,
            transport: input
                .transport
                .unwrap_or(Transport::Streamablehttp)
                .as_str()
                .into(),
            description: optional_text("description", input.description.as_deref(), 8192)?,
            tags: to_json_text(&tags(input.tags.as_deref())?),
            enabled: true,
            owner_email: Some(change.actor_email.to_owned()),
            team_id: None,
            visibility: input.visibility.unwrap_or_default().as_str().into(),
            created_at: change.now,
            updated_at: change.now,
        })
    }

    fn update(
        mut row: GatewayRow,
        input: &GatewayUpdate,
        change: &Change<'_>,
    ) -> Result<GatewayRow, Invalid> {
        if let Some(value) = &input.name {
            (row.name, row.slug) = name_and_slug(value)?;
        }
        if let Some(value) = &input.url {
            row.url = http_url("url", value)?;
        }
        if let Some(transport) = input.transport {
            row.transport = transport.as_str().into();
        }
        if let Some(description) = &input.description {
            row.description = optional_text("description", description.as_deref(), 8192)?;
        }
        update_meta(
            (&mut row.tags, &mut row.visibility, &mut row.updated_at),
            input.tags.as_deref(),
            input.visibility,
            change,
        )?;
        Ok(row)
    }

    fn view(row: GatewayRow) -> GatewayView {
        GatewayView {
            meta: item_meta!(row, "gateways"),
            transport: if row.transport == "sse" {
                Transport::Sse
            } else {
                Transport::Streamablehttp
            },
            id: row.id,
            name: row.name,
            slug: row.slug,
            url: row.url,
            description: row.description,
        }
    }

    fn conflict_message(constraint: &str) -> String {
        if constraint.contains("slug") {
            "a gateway whose name gives the same slug already exists".into()
        } else {
            "a gateway with this name already exists".into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::slugify;

    #[test]
    fn slugs() {
        assert_eq!(slugify("My Weather API!"), "my-weather-api");
        assert_eq!(slugify("--a__b--"), "a-b");
        assert_eq!(slugify("ünï"), "n");
    }
}
