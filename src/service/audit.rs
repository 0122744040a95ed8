//! The audit trail: what every change recorded (who, from where, what, before and after with
//! secrets masked), and reading it back (`audit.read`, platform-wide).
//!
//! The services record an [`Entry`] after a change is stored; the AuditActor writes entries
//! in batches through the DbActor. Masking is applied here, whatever the view already hides:
//! a field whose name says it is a secret, every header value and anything shaped like a JWT
//! never reach the database.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Outcome, Services};
use crate::auth::{On, Origin, Principal};
use crate::db::audit::{AuditFilter, AuditRow, ListAudit};
use crate::error::ApiError;

/// What stands in for a masked value.
pub const MASK: &str = "*****";

/// A stored before/after larger than this is replaced by a note of its size.
const MAX_SNAPSHOT_BYTES: usize = 32 * 1024;

/// One change, as a service describes it.
#[derive(Debug, Default)]
pub struct Entry {
    /// Named like the permission it needed (`tools.create`).
    pub action: String,
    /// What kind of thing changed (`tool`).
    pub kind: &'static str,
    /// Its id.
    pub id: Option<String>,
    /// Its name (taken from the snapshots' `name`, `uri` or `email` when not given).
    pub name: Option<String>,
    /// A short note.
    pub detail: Option<String>,
    /// The record before.
    pub before: Option<Value>,
    /// The record after.
    pub after: Option<Value>,
}

impl Entry {
    /// An entry for `action` on a `kind`.
    pub fn new(action: impl Into<String>, kind: &'static str) -> Self {
        Entry {
            action: action.into(),
            kind,
            ..Entry::default()
        }
    }

    /// Its target's id.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Its target's name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// A note.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The record before the change.
    pub fn before(mut self, view: &impl Serialize) -> Self {
        self.before = snapshot(view);
        self
    }

    /// The record after the change.
    pub fn after(mut self, view: &impl Serialize) -> Self {
        self.after = snapshot(view);
        self
    }
}

impl Services {
    /// Records a change `principal` made.
    pub fn audit(&self, principal: &Principal, entry: Entry) {
        let row = row(
            &principal.email,
            Some(principal.token_id.clone()),
            &principal.origin,
            "ok",
            entry,
        );
        self.audit.record(row);
    }

    /// Records a sign-in attempt for `email` (no principal yet): `ok`, or `refused` with why.
    pub fn audit_sign_in(&self, email: &str, origin: &Origin, refused: Option<&str>) {
        let mut entry = Entry::new("auth.sign_in", "user").id(email);
        if let Some(reason) = refused {
            entry = entry.detail(reason);
        }
        let outcome = if refused.is_some() { "refused" } else { "ok" };
        self.audit.record(row(email, None, origin, outcome, entry));
    }
}

fn row(
    actor: &str,
    token_id: Option<String>,
    origin: &Origin,
    outcome: &str,
    entry: Entry,
) -> AuditRow {
    let name = entry.name.or_else(|| {
        [&entry.after, &entry.before]
            .into_iter()
            .flatten()
            .find_map(|snapshot| {
                ["name", "uri", "email"]
                    .iter()
                    .find_map(|key| snapshot.get(*key)?.as_str().map(str::to_owned))
            })
    });
    AuditRow {
        id: uuid::Uuid::now_v7().simple().to_string(),
        at: crate::db::now(),
        // A refused sign-in's "email" is whatever was typed: bounded.
        actor: bounded(actor, MAX_TEXT_CHARS),
        token_id,
        client_ip: origin.client.map(|ip| ip.to_string()),
        request_id: origin.request_id.clone(),
        action: entry.action,
        target_kind: entry.kind.to_owned(),
        target_id: entry.id,
        target_name: name.map(|name| bounded(&name, MAX_TEXT_CHARS)),
        outcome: outcome.to_owned(),
        detail: entry.detail.map(|detail| bounded(&detail, MAX_TEXT_CHARS)),
        before_json: entry.before.map(|value| value.to_string()),
        after_json: entry.after.map(|value| value.to_string()),
    }
}

/// The longest actor, target name or detail kept, in characters.
const MAX_TEXT_CHARS: usize = 500;

/// `text` cut at `max` characters (marked with `…`).
fn bounded(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// A view as JSON with its secrets masked, or a note of its size when it is too large to keep.
fn snapshot(view: &impl Serialize) -> Option<Value> {
    let mut value = serde_json::to_value(view).ok()?;
    mask(&mut value);
    let size = value.to_string().len();
    if size > MAX_SNAPSHOT_BYTES {
        return Some(serde_json::json!({ "omitted": format!("{size} bytes") }));
    }
    Some(value)
}

/// Whether a field of this name holds a secret.
fn secret_field(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "authorization",
        "api_key",
        "apikey",
        "private",
        "cookie",
        "credential",
    ]
    .iter()
    .any(|word| key.contains(word))
        || matches!(
            key.as_str(),
            "token" | "access_token" | "refresh_token" | "auth_value" | "auth_token" | "bearer"
        )
}

/// Masks, in place, every value of a secret-named field, every header value and every string
/// shaped like a JWT.
pub fn mask(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                if secret_field(key) && !field.is_null() {
                    *field = Value::String(MASK.into());
                } else if key.to_ascii_lowercase().ends_with("headers") {
                    mask_all(field);
                } else {
                    mask(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask),
        Value::String(text) if looks_like_jwt(text) => *text = MASK.into(),
        _ => {}
    }
}

/// Masks every string (header maps: any value may be a credential).
fn mask_all(value: &mut Value) {
    match value {
        Value::Object(map) => map.values_mut().for_each(mask_all),
        Value::Array(items) => items.iter_mut().for_each(mask_all),
        Value::String(text) => *text = MASK.into(),
        _ => {}
    }
}

/// Three base64url segments, the first a JSON object (`eyJ`): a JWT.
fn looks_like_jwt(text: &str) -> bool {
    let text = text.strip_prefix("Bearer ").unwrap_or(text);
    text.starts_with("eyJ")
        && text.split('.').count() == 3
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'='))
}

/// A search of the trail (`GET /audit`).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// The acting account's email.
    pub actor: Option<String>,
    /// An action (`tools.create`), or a family ending with a dot (`tools.`).
    pub action: Option<String>,
    /// A target's id or name.
    pub target: Option<String>,
    /// `ok` or `refused`.
    pub outcome: Option<String>,
    /// Entries at or after this time (RFC 3339).
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Entries before this time (RFC 3339).
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// The `next_cursor` of the page before.
    pub cursor: Option<String>,
    /// Entries per page (1–500, default 100).
    pub limit: Option<u32>,
}

/// One entry, as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditView {
    /// Its id (sorts by time).
    pub id: String,
    /// When, UTC.
    pub at: chrono::NaiveDateTime,
    /// Who: the account's email (for a sign-in, the email tried).
    pub actor: String,
    /// The id of the token used.
    pub token_id: Option<String>,
    /// The client's address.
    pub client_ip: Option<String>,
    /// The request id (`X-Request-Id`), to find the request in the log.
    pub request_id: Option<String>,
    /// What: `tools.create`, `users.delete`, `auth.sign_in`, …
    pub action: String,
    /// The kind of thing changed.
    pub target_kind: String,
    /// Its id.
    pub target_id: Option<String>,
    /// Its name.
    pub target_name: Option<String>,
    /// `ok`, or `refused`.
    pub outcome: String,
    /// A note.
    pub detail: Option<String>,
    /// The record before (secrets masked).
    #[schema(value_type = Option<Object>)]
    pub before: Option<Value>,
    /// The record after (secrets masked).
    #[schema(value_type = Option<Object>)]
    pub after: Option<Value>,
}

impl From<AuditRow> for AuditView {
    fn from(row: AuditRow) -> Self {
        let parse = |text: Option<String>| text.and_then(|text| serde_json::from_str(&text).ok());
        AuditView {
            id: row.id,
            at: row.at,
            actor: row.actor,
            token_id: row.token_id,
            client_ip: row.client_ip,
            request_id: row.request_id,
            action: row.action,
            target_kind: row.target_kind,
            target_id: row.target_id,
            target_name: row.target_name,
            outcome: row.outcome,
            detail: row.detail,
            before: parse(row.before_json),
            after: parse(row.after_json),
        }
    }
}

/// One page of the trail, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// The entries.
    pub entries: Vec<AuditView>,
    /// Pass as `cursor` for older entries; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Searches the trail (`audit.read`, platform-wide: the trail names every account). Waits
/// until what was recorded before is written, so a change just made is shown.
pub async fn search(
    services: &Services,
    principal: &Principal,
    query: AuditQuery,
) -> Outcome<AuditPage> {
    principal
        .authorize("audit.read", On::Platform)
        .map_err(|denied| ApiError::from_auth(denied.into()))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::InvalidField {
            field: "limit".into(),
            message: "must be from 1 to 500".into(),
        });
    }
    // An empty parameter (a search form's blank field) filters nothing.
    let text = |value: Option<String>| {
        value
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    };
    let outcome = text(query.outcome);
    if let Some(outcome) = &outcome
        && !matches!(outcome.as_str(), "ok" | "refused")
    {
        return Err(ApiError::InvalidField {
            field: "outcome".into(),
            message: "must be ok or refused".into(),
        });
    }
    let filter = AuditFilter {
        actor: text(query.actor).map(|actor| actor.to_ascii_lowercase()),
        action: text(query.action),
        target: text(query.target),
        outcome,
        since: query.since.map(|at| at.naive_utc()),
        until: query.until.map(|at| at.naive_utc()),
    };
    services.audit.settle().await;
    let mut rows = services
        .db
        .run(ListAudit {
            filter,
            before: text(query.cursor),
            limit: i64::from(limit) + 1,
        })
        .await
        .map_err(|error| ApiError::from_db(error, "audit entry", None))?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = more
        .then(|| rows.last().map(|row| row.id.clone()))
        .flatten();
    Ok(AuditPage {
        entries: rows.into_iter().map(AuditView::from).collect(),
        next_cursor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_wherever_they_are() {
        let mut value = serde_json::json!({
            "name": "weather",
            "headers": {"X-Api-Key": "k-123", "Accept": "application/json"},
            "auth": {"kind": "bearer", "token": "t-456", "password": "p-789"},
            "client_secret": "s-000",
            "note": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl",
            "nested": [{"api_key": "k-2"}, {"token_id": "kept"}],
            "empty_password": null
        });
        mask(&mut value);
        let text = value.to_string();
        for secret in ["k-123", "t-456", "p-789", "s-000", "eyJhbGci", "k-2"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(value["name"], "weather");
        assert_eq!(value["auth"]["kind"], "bearer");
        assert_eq!(value["nested"][1]["token_id"], "kept");
        assert!(value["empty_password"].is_null());
    }

    #[test]
    fn typed_text_is_bounded() {
        let long = "x".repeat(10_000);
        let entry = Entry::new("auth.sign_in", "user").detail(long.clone());
        let row = row(&long, None, &Origin::default(), "refused", entry);
        assert_eq!(row.actor.chars().count(), MAX_TEXT_CHARS + 1);
        assert!(row.detail.unwrap().ends_with('…'));
        assert_eq!(bounded("short", 10), "short");
    }

    #[test]
    fn a_large_snapshot_is_replaced_by_its_size() {
        let big = serde_json::json!({"description": "x".repeat(MAX_SNAPSHOT_BYTES + 1)});
        let kept = snapshot(&big).unwrap();
        assert!(kept["omitted"].as_str().unwrap().ends_with("bytes"));
    }
}
