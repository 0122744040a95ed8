//! The console's logs page (`admin.system`): recent log lines kept in memory, searched by
//! request id, level, upstream and text.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ConsoleUser;
use crate::auth::On;
use crate::http::AppState;
use crate::logs::{LogQuery, RING_CAPACITY, ring};

/// Lines a page shows.
const PAGE: usize = 200;

/// `?request_id=&level=&upstream=&q=`.
#[derive(Deserialize, Default)]
pub struct LogsQuery {
    #[serde(default)]
    request_id: String,
    #[serde(default)]
    level: String,
    #[serde(default)]
    upstream: String,
    #[serde(default)]
    q: String,
}

/// `GET /admin/logs`.
pub async fn page(
    state: web::Data<AppState>,
    user: ConsoleUser,
    query: web::Query<LogsQuery>,
) -> HttpResponse {
    let query = query.into_inner();
    let mut context = user.context("logs");
    context.insert(
        "filters",
        &json!({"request_id": query.request_id, "level": query.level,
                "upstream": query.upstream, "q": query.q}),
    );
    context.insert("levels", &["error", "warn", "info", "debug", "trace"]);
    context.insert("capacity", &RING_CAPACITY);
    if let Err(denied) = user.principal.authorize("admin.system", On::Platform) {
        context.insert(
            "error",
            &format!("The logs need the admin.system permission: {denied}."),
        );
        context.insert("lines", &Vec::<Value>::new());
        context.insert("total", &0);
        return state
            .console
            .page(StatusCode::FORBIDDEN, "logs.html", &context);
    }
    let text = |value: String| Some(value.trim().to_owned()).filter(|value| !value.is_empty());
    let search = LogQuery {
        request_id: text(query.request_id),
        level: text(query.level).and_then(|level| level.parse().ok()),
        upstream: text(query.upstream),
        text: text(query.q),
        limit: PAGE,
    };
    let lines: Vec<Value> = ring()
        .search(&search)
        .into_iter()
        .map(|entry| {
            json!({
                "at": entry.at.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string(),
                "level": entry.level,
                "target": entry.target,
                "message": entry.message,
                "fields": entry.fields,
                "request_id": entry.request_id.unwrap_or_default(),
                "upstream": entry.upstream.unwrap_or_default(),
            })
        })
        .collect();
    context.insert("lines", &lines);
    context.insert("total", &ring().total());
    state.console.page(StatusCode::OK, "logs.html", &context)
}
