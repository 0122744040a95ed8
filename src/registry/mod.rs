//! The registry's API types: what clients send, how it is validated, and what they get back.
//!
//! Each entity implements [`Entity`]: it turns a create request into a complete record, merges
//! an update into a stored record (validating the result), and renders a record as a view. The
//! HTTP layer is generic over `Entity`, so every entity gets the same endpoints and errors.

pub mod gateways;
pub mod openapi;
pub mod prompts;
pub mod resources;
pub mod servers;
pub mod tools;
pub(crate) mod validate;

use chrono::NaiveDateTime;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

pub use self::validate::Invalid;
use crate::db::registry::HasId;

pub use crate::auth::rbac::Visibility;

/// Who is creating or changing an item, and when.
pub struct Change<'a> {
    /// The principal's email, stored as the owner of new items.
    pub actor_email: &'a str,
    /// The time of the change.
    pub now: NaiveDateTime,
    /// Seals the credentials an item stores (REST tool headers).
    pub secrets: &'a crate::secrets::SecretBox,
}

/// The message of a uniqueness conflict: neutral, so it tells nothing about an item the caller
/// cannot see (not its owner, visibility or kind of use), only that `what` is in use.
pub fn taken(field: &str, what: &str) -> String {
    format!(
        "{what} is not available (the {field} must be unique across the gateway, including \
         items you cannot see): choose another"
    )
}

/// One registry entity: its API types and the rules between them and its record.
pub trait Entity: 'static {
    /// The stored form (what the DbActor returns).
    type Record: HasId + Clone + Send + Sync + 'static;
    /// The body of `POST /<path>`.
    type Create: DeserializeOwned + utoipa::ToSchema + 'static;
    /// The body of `PUT /<path>/{id}`: every field optional, absent fields unchanged.
    type Update: DeserializeOwned + utoipa::ToSchema + Send + Sync + 'static;
    /// The response form.
    type View: Serialize + utoipa::ToSchema + 'static;

    /// The singular noun for messages (`tool`).
    const NOUN: &'static str;
    /// The collection path segment (`tools`).
    const PATH: &'static str;

    /// Builds a new record from a create request.
    fn create(input: Self::Create, change: &Change<'_>) -> Result<Self::Record, Invalid>;

    /// Applies an update to a stored record and validates the result.
    fn update(
        stored: Self::Record,
        input: &Self::Update,
        change: &Change<'_>,
    ) -> Result<Self::Record, Invalid>;

    /// Renders a record for clients.
    fn view(record: Self::Record) -> Self::View;

    /// A record's id.
    fn id(record: &Self::Record) -> &str {
        record.id()
    }

    /// The message for a uniqueness conflict on `constraint` (as the database named it).
    fn conflict_message(constraint: &str) -> String;

    /// The URL a new record makes the gateway call (a REST tool's), checked against the egress
    /// policy before the record is stored.
    fn egress_url(_record: &Self::Record) -> Option<&str> {
        None
    }

    /// The URL an update sets, checked likewise.
    fn egress_url_of_update(_input: &Self::Update) -> Option<&str> {
        None
    }
}

/// What every registry item shows besides its own fields (flattened into its view).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ItemMeta {
    /// Labels.
    pub tags: Vec<String>,
    /// Whether it is active (listed and usable).
    pub enabled: bool,
    /// Who may see it.
    pub visibility: Visibility,
    /// Who created it.
    pub owner_email: Option<String>,
    /// Its team.
    pub team_id: Option<String>,
    /// When it was created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When it last changed.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// Builds the [`ItemMeta`] of a row (every registry row has the same metadata columns).
macro_rules! item_meta {
    ($row:expr, $table:literal) => {
        $crate::registry::ItemMeta {
            tags: $crate::registry::stored_json(concat!($table, ".tags"), &$row.tags),
            enabled: $row.enabled,
            visibility: $row.visibility,
            owner_email: $row.owner_email.clone(),
            team_id: $row.team_id.clone(),
            created_at: $row.created_at.and_utc(),
            updated_at: $row.updated_at.and_utc(),
        }
    };
}
pub(crate) use item_meta;

/// Applies the metadata fields every update may carry (tags, visibility) and stamps the time.
fn update_meta(
    stored: (
        &mut String,
        &mut Visibility,
        &mut Option<String>,
        &mut NaiveDateTime,
    ),
    tags: Option<&[String]>,
    visibility: Option<Visibility>,
    team_id: Option<&Option<String>>,
    change: &Change<'_>,
) -> Result<(), Invalid> {
    let (stored_tags, stored_visibility, stored_team, updated_at) = stored;
    if let Some(team_id) = team_id {
        *stored_team = validate::optional_text("team_id", team_id.as_deref(), 64)?;
    }
    if let Some(tags) = tags {
        *stored_tags = to_json_text(&validate::tags(Some(tags))?);
    }
    if let Some(visibility) = visibility {
        *stored_visibility = visibility;
    }
    *updated_at = change.now;
    Ok(())
}

/// A new record id: UUIDv7, so id order is creation order and pages are stable.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// Deserializes a field that may be absent (`None`), `null` (`Some(None)`) or a value.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Reads a JSON column written by this crate; a value that does not parse is shown as null
/// and logged, rather than failing the whole response.
fn stored_json<T: DeserializeOwned + Default>(column: &'static str, text: &str) -> T {
    serde_json::from_str(text).unwrap_or_else(|error| {
        tracing::error!(column, %error, "stored JSON does not parse");
        T::default()
    })
}

fn to_json_text<T: Serialize>(value: &T) -> String {
    // Serializing plain data (maps, vectors, `Value`) cannot fail.
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}
