//! Row types of the registry tables. JSON columns hold serialized text.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{gateways, prompts, resources, servers, tools};

/// A tool: REST-backed, or discovered from an upstream MCP server.
#[derive(Clone, Debug, PartialEq, Queryable, Selectable, Insertable, AsChangeset, Identifiable)]
#[diesel(table_name = tools, treat_none_as_null = true)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct ToolRow {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub integration_type: crate::db::stored::IntegrationType,
    pub url: Option<String>,
    pub request_type: Option<crate::db::stored::RequestType>,
    pub headers: String,
    pub input_schema: String,
    pub output_schema: Option<String>,
    pub annotations: String,
    pub tags: String,
    pub gateway_id: Option<String>,
    pub original_name: Option<String>,
    pub enabled: bool,
    pub owner_email: Option<String>,
    pub team_id: Option<String>,
    pub visibility: crate::auth::rbac::Visibility,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Definition members passed through from the upstream as they came (a JSON object).
    pub passthrough: String,
}

/// A resource with a fixed URI (and text content) or a URI template.
#[derive(Clone, Debug, PartialEq, Queryable, Selectable, Insertable, AsChangeset, Identifiable)]
#[diesel(table_name = resources, treat_none_as_null = true)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct ResourceRow {
    pub id: String,
    pub uri: Option<String>,
    pub uri_template: Option<String>,
    pub name: String,
    pub description: Option<String>,
    pub mime_type: Option<String>,
    pub content: Option<String>,
    pub tags: String,
    pub gateway_id: Option<String>,
    pub enabled: bool,
    pub owner_email: Option<String>,
    pub team_id: Option<String>,
    pub visibility: crate::auth::rbac::Visibility,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Definition members passed through from the upstream as they came (a JSON object).
    pub passthrough: String,
}

/// A prompt rendered from a tera template.
#[derive(Clone, Debug, PartialEq, Queryable, Selectable, Insertable, AsChangeset, Identifiable)]
#[diesel(table_name = prompts, treat_none_as_null = true)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct PromptRow {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub template: String,
    pub arguments: String,
    pub tags: String,
    pub gateway_id: Option<String>,
    pub original_name: Option<String>,
    pub enabled: bool,
    pub owner_email: Option<String>,
    pub team_id: Option<String>,
    pub visibility: crate::auth::rbac::Visibility,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Definition members passed through from the upstream as they came (a JSON object).
    pub passthrough: String,
}

/// An upstream MCP server record.
#[derive(Clone, Debug, PartialEq, Queryable, Selectable, Insertable, AsChangeset, Identifiable)]
#[diesel(table_name = gateways, treat_none_as_null = true)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct GatewayRow {
    pub id: String,
    pub name: String,
    pub slug: String,
    pub url: String,
    pub transport: crate::db::stored::Transport,
    pub description: Option<String>,
    pub tags: String,
    pub enabled: bool,
    pub owner_email: Option<String>,
    pub team_id: Option<String>,
    pub visibility: crate::auth::rbac::Visibility,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub prefix_tool_names: bool,
    /// `bearer`, `basic` or `headers`; the headers themselves are in `auth_secret`, encrypted.
    pub auth_type: Option<String>,
    pub auth_secret: Option<String>,
    pub protocol_version: Option<String>,
    pub capabilities: String,
    pub reachable: bool,
    pub last_seen_at: Option<NaiveDateTime>,
    /// What the last discovery left out and why (JSON array of `{kind, name, reason}`).
    pub skipped: String,
    /// Why the upstream is degraded (its last refresh broke a bound), if it is.
    pub degraded_reason: Option<String>,
    /// Why the upstream last failed (a call, the health check).
    pub last_error: Option<String>,
    /// When.
    pub last_error_at: Option<NaiveDateTime>,
    /// A stdio upstream's command (JSON, see [`crate::upstream::process::StoredCommand`]).
    pub command: Option<String>,
}

/// A virtual server's own columns; its members live in the `server_*` tables.
#[derive(Clone, Debug, PartialEq, Queryable, Selectable, Insertable, AsChangeset, Identifiable)]
#[diesel(table_name = servers, treat_none_as_null = true)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct ServerRow {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub icon: Option<String>,
    pub tags: String,
    pub enabled: bool,
    pub owner_email: Option<String>,
    pub team_id: Option<String>,
    pub visibility: crate::auth::rbac::Visibility,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// The ordered member ids of a virtual server.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerMembers {
    pub tool_ids: Vec<String>,
    pub resource_ids: Vec<String>,
    pub prompt_ids: Vec<String>,
}

/// A virtual server with its members.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerRecord {
    pub row: ServerRow,
    pub members: ServerMembers,
}

/// Anything stored with a string id.
pub trait HasId {
    /// The record's id.
    fn id(&self) -> &str;
    /// Who owns it and who may see it.
    fn ownership(&self) -> crate::auth::rbac::Ownership;
}

/// The ownership columns of a registry row.
#[macro_export]
macro_rules! ownership_of {
    ($row:expr) => {
        $crate::auth::rbac::Ownership {
            owner_email: $row.owner_email.clone(),
            team_id: $row.team_id.clone(),
            visibility: $row.visibility,
        }
    };
}

macro_rules! has_id {
    ($($row:ty),*) => { $(impl HasId for $row {
        fn id(&self) -> &str { &self.id }
        fn ownership(&self) -> crate::auth::rbac::Ownership { crate::ownership_of!(self) }
    })* };
}
has_id!(ToolRow, ResourceRow, PromptRow, GatewayRow);

impl HasId for ServerRecord {
    fn id(&self) -> &str {
        &self.row.id
    }
    fn ownership(&self) -> crate::auth::rbac::Ownership {
        crate::ownership_of!(self.row)
    }
}
