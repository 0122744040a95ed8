//! The console's audit page: the trail, newest first, searched by actor, action, target and
//! outcome, each entry with what changed (before → after, secrets masked).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use super::ConsoleUser;
use crate::http::AppState;
use crate::service::audit::{self, AuditQuery, AuditView};

/// Entries per page.
const PAGE: u32 = 50;

/// `GET /admin/audit`.
pub async fn page(
    state: web::Data<AppState>,
    user: ConsoleUser,
    query: web::Query<AuditQuery>,
) -> HttpResponse {
    let mut query = query.into_inner();
    query.limit = Some(PAGE);
    let filters = json!({
        "actor": query.actor.clone().unwrap_or_default(),
        "action": query.action.clone().unwrap_or_default(),
        "target": query.target.clone().unwrap_or_default(),
        "outcome": query.outcome.clone().unwrap_or_default(),
    });
    let mut context = user.context("audit");
    context.insert("filters", &filters);
    let status = match audit::search(&state.services, &user.principal, query).await {
        Ok(page) => {
            let entries: Vec<Value> = page.entries.into_iter().map(entry).collect();
            context.insert("entries", &entries);
            let next = page.next_cursor.map(|cursor| {
                let mut url = url::form_urlencoded::Serializer::new(String::new());
                for key in ["actor", "action", "target", "outcome"] {
                    if let Some(value) = filters[key].as_str().filter(|value| !value.is_empty()) {
                        url.append_pair(key, value);
                    }
                }
                url.append_pair("cursor", &cursor);
                format!("/admin/audit?{}", url.finish())
            });
            context.insert("next", &next);
            StatusCode::OK
        }
        Err(error) => {
            use actix_web::ResponseError;
            context.insert("entries", &Vec::<Value>::new());
            context.insert("next", &Value::Null);
            context.insert("error", &error.to_string());
            error.status_code()
        }
    };
    state.console.page(status, "audit.html", &context)
}

/// One entry as the page shows it: the fields that changed, each before → after.
fn entry(view: AuditView) -> Value {
    let changes = changes(view.before.as_ref(), view.after.as_ref());
    json!({
        "at": view.at,
        "actor": view.actor,
        "action": view.action,
        "kind": view.target_kind,
        "target": view.target_name.or(view.target_id).unwrap_or_default(),
        "outcome": view.outcome,
        "detail": view.detail.unwrap_or_default(),
        "client_ip": view.client_ip.unwrap_or_default(),
        "request_id": view.request_id.unwrap_or_default(),
        "changes": changes,
    })
}

/// The top-level fields that differ between two snapshots (all of one when the other is
/// absent), rendered as short JSON; `updated_at` is left out (the entry's time says when).
fn changes(before: Option<&Value>, after: Option<&Value>) -> Vec<Value> {
    let empty = serde_json::Map::new();
    let fields = |value: Option<&Value>| value.and_then(Value::as_object).unwrap_or(&empty).clone();
    let (before, after) = (fields(before), fields(after));
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|key| key.as_str() != "updated_at" && before.get(*key) != after.get(*key))
        .map(|key| {
            json!({
                "field": key,
                "before": before.get(key).map(short).unwrap_or_default(),
                "after": after.get(key).map(short).unwrap_or_default(),
            })
        })
        .collect()
}

/// A value as compact JSON, cut at 200 characters.
fn short(value: &Value) -> String {
    let text = match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_name_the_fields_that_differ() {
        let before = json!({"name": "a", "enabled": true, "tags": []});
        let after = json!({"name": "a", "enabled": false, "tags": [], "url": "http://x"});
        let changed = changes(Some(&before), Some(&after));
        let fields: Vec<&str> = changed
            .iter()
            .map(|c| c["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, ["enabled", "url"]);
        assert_eq!(changed[0]["before"], "true");
        assert_eq!(changed[1]["before"], "");
        assert_eq!(changes(None, Some(&json!({"a": 1}))).len(), 1);
        assert!(short(&json!("x".repeat(300))).ends_with('…'));
    }
}
