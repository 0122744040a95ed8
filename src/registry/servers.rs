//! Virtual servers: curated sets of tools, resources and prompts served as one MCP server.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::validate::{http_url, invalid, optional_text, required_text, tags};
use super::{
    Change, Entity, Invalid, ItemMeta, Visibility, item_meta, new_id, nullable, taken,
    to_json_text, update_meta,
};
use crate::db::registry::{ServerMembers, ServerRecord, ServerRow};

/// `POST /servers`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerCreate {
    /// A unique name.
    pub name: String,
    /// What the server is for.
    #[serde(default)]
    pub description: Option<String>,
    /// An icon URL.
    #[serde(default)]
    pub icon: Option<String>,
    /// Member tool ids, in the order clients see them.
    #[serde(default, alias = "associated_tools")]
    pub tool_ids: Option<Vec<String>>,
    /// Member resource ids.
    #[serde(default, alias = "associated_resources")]
    pub resource_ids: Option<Vec<String>>,
    /// Member prompt ids.
    #[serde(default, alias = "associated_prompts")]
    pub prompt_ids: Option<Vec<String>>,
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

/// `PUT /servers/{id}`: absent fields stay as they are; a member list replaces the old one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerUpdate {
    /// A new name.
    #[serde(default)]
    pub name: Option<String>,
    /// A new description, or `null` to clear it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// A new icon URL, or `null` to clear it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub icon: Option<Option<String>>,
    /// Replaces the member tools.
    #[serde(default, alias = "associated_tools")]
    pub tool_ids: Option<Vec<String>>,
    /// Replaces the member resources.
    #[serde(default, alias = "associated_resources")]
    pub resource_ids: Option<Vec<String>>,
    /// Replaces the member prompts.
    #[serde(default, alias = "associated_prompts")]
    pub prompt_ids: Option<Vec<String>>,
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

/// A virtual server as clients see it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ServerView {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// Its icon URL.
    pub icon: Option<String>,
    /// Member tool ids.
    pub tool_ids: Vec<String>,
    /// Member resource ids.
    pub resource_ids: Vec<String>,
    /// Member prompt ids.
    pub prompt_ids: Vec<String>,
    /// Tags, state, visibility, owner and timestamps.
    #[serde(flatten)]
    pub meta: ItemMeta,
}

/// The virtual server entity.
pub struct Servers;

/// Member ids: non-empty, at most 1000, duplicates removed (first occurrence kept).
fn member_ids(field: &str, values: Option<&[String]>) -> Result<Vec<String>, Invalid> {
    let values = values.unwrap_or_default();
    if values.len() > 1000 {
        return Err(invalid(field, "at most 1000 members are allowed"));
    }
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for (index, id) in values.iter().enumerate() {
        let id = required_text(&format!("{field}[{index}]"), id, 64)?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

fn icon(value: Option<&str>) -> Result<Option<String>, Invalid> {
    value.map(|url| http_url("icon", url)).transpose()
}

impl Entity for Servers {
    type Record = ServerRecord;
    type Create = ServerCreate;
    type Update = ServerUpdate;
    type View = ServerView;

    const NOUN: &'static str = "server";
    const PATH: &'static str = "servers";

    fn create(input: ServerCreate, change: &Change<'_>) -> Result<ServerRecord, Invalid> {
        let row = ServerRow {
            id: new_id(),
            name: required_text("name", &input.name, 128)?,
            description: optional_text("description", input.description.as_deref(), 8192)?,
            icon: icon(input.icon.as_deref())?,
            tags: to_json_text(&tags(input.tags.as_deref())?),
            enabled: true,
            owner_email: Some(change.actor_email.to_owned()),
            team_id: optional_text("team_id", input.team_id.as_deref(), 64)?,
            visibility: input.visibility.unwrap_or_default(),
            created_at: change.now,
            updated_at: change.now,
        };
        let members = ServerMembers {
            tool_ids: member_ids("tool_ids", input.tool_ids.as_deref())?,
            resource_ids: member_ids("resource_ids", input.resource_ids.as_deref())?,
            prompt_ids: member_ids("prompt_ids", input.prompt_ids.as_deref())?,
        };
        Ok(ServerRecord { row, members })
    }

    fn update(
        mut record: ServerRecord,
        input: &ServerUpdate,
        change: &Change<'_>,
    ) -> Result<ServerRecord, Invalid> {
        let row = &mut record.row;
        if let Some(name) = &input.name {
            row.name = required_text("name", name, 128)?;
        }
        if let Some(description) = &input.description {
            row.description = optional_text("description", description.as_deref(), 8192)?;
        }
        if let Some(value) = &input.icon {
            row.icon = icon(value.as_deref())?;
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
        let members = &mut record.members;
        if let Some(ids) = &input.tool_ids {
            members.tool_ids = member_ids("tool_ids", Some(ids))?;
        }
        if let Some(ids) = &input.resource_ids {
            members.resource_ids = member_ids("resource_ids", Some(ids))?;
        }
        if let Some(ids) = &input.prompt_ids {
            members.prompt_ids = member_ids("prompt_ids", Some(ids))?;
        }
        Ok(record)
    }

    fn view(record: ServerRecord) -> ServerView {
        let ServerRecord { row, members } = record;
        ServerView {
            meta: item_meta!(row, "servers"),
            id: row.id,
            name: row.name,
            description: row.description,
            icon: row.icon,
            tool_ids: members.tool_ids,
            resource_ids: members.resource_ids,
            prompt_ids: members.prompt_ids,
        }
    }

    fn conflict_message(_constraint: &str) -> String {
        taken("name", "this name")
    }
}
