//! The console's metrics page (`admin.system`): calls over a chosen range (the last hour, 6
//! hours, day or week) as a chart with axes, and per tool, per virtual server and per upstream
//! over the last 24 hours: calls, error rate, latency p50/p95/p99 (within 1 %), the last call
//! and the last error. The history is the MetricsActor's, written to the database with each
//! batch and read back at start, so it survives a reload and a restart.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ConsoleUser;
use crate::actors::metrics::{Point, Range, Summary};
use crate::http::AppState;

/// The chart's drawing area, in SVG units.
const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 160.0;

/// The page's query.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    range: Option<String>,
}

/// `GET /admin/metrics?range=1h|6h|24h|7d`.
pub async fn page(
    state: web::Data<AppState>,
    user: ConsoleUser,
    query: web::Query<PageQuery>,
) -> HttpResponse {
    let mut context = user.context("metrics");
    let asked = query.range.as_deref().unwrap_or("1h");
    let range = Range::EVERY
        .into_iter()
        .find(|range| range.as_str() == asked);
    let ranges: Vec<Value> = Range::EVERY
        .iter()
        .map(|each| json!({"value": each.as_str(), "current": Some(*each) == range}))
        .collect();
    context.insert("ranges", &ranges);
    let Some(range) = range else {
        return empty(
            &state,
            context,
            StatusCode::BAD_REQUEST,
            format!("There is no range “{asked}”: choose 1h, 6h, 24h or 7d."),
        );
    };
    let view = match crate::service::metrics::history(&state.services, &user.principal, range).await
    {
        Ok(view) => view,
        Err(error) => {
            use actix_web::ResponseError;
            let status = error.status_code();
            return empty(
                &state,
                context,
                status,
                format!("The metrics need the admin.system permission: {error}."),
            );
        }
    };
    context.insert("chart", &chart(&view.points, view.step_seconds));
    let rows = |summaries: &[Summary]| summaries.iter().map(row).collect::<Vec<Value>>();
    context.insert(
        "tables",
        &json!([
            {"id": "tools", "title": "Per tool", "rows": rows(&view.tools)},
            {"id": "servers", "title": "Per virtual server", "rows": rows(&view.servers)},
            {"id": "upstreams", "title": "Per upstream", "rows": rows(&view.upstreams)},
        ]),
    );
    state.console.page(StatusCode::OK, "metrics.html", &context)
}

/// The page without figures, with `error`.
fn empty(
    state: &AppState,
    mut context: tera::Context,
    status: StatusCode,
    error: String,
) -> HttpResponse {
    context.insert("error", &error);
    context.insert("chart", &Value::Null);
    context.insert("tables", &Vec::<Value>::new());
    state.console.page(status, "metrics.html", &context)
}

/// A duration in milliseconds as people read it.
fn duration(ms: Option<f64>) -> String {
    match ms {
        None => "–".to_owned(),
        Some(ms) if ms >= 1000.0 => format!("{:.2} s", ms / 1000.0),
        Some(ms) if ms >= 10.0 => format!("{ms:.0} ms"),
        Some(ms) => format!("{ms:.1} ms"),
    }
}

/// One table row.
fn row(summary: &Summary) -> Value {
    json!({
        "name": summary.name,
        "calls": summary.calls,
        "failures": summary.failures,
        "error_rate": if summary.calls == 0 { "–".to_owned() } else {
            format!("{:.1} %", summary.failures as f64 * 100.0 / summary.calls as f64)
        },
        "p50": duration(summary.p50_ms),
        "p95": duration(summary.p95_ms),
        "p99": duration(summary.p99_ms),
        "last_call": summary.last_call_at,
        "last_error": summary.last_error,
        "last_error_at": summary.last_error_at,
    })
}

/// The range as bars (calls, and the failed part of them) with the axes' labels.
fn chart(points: &[Point], step_seconds: i64) -> Value {
    let top = points
        .iter()
        .map(|point| point.calls)
        .max()
        .unwrap_or(0)
        .max(1);
    let width = WIDTH / points.len().max(1) as f64;
    let height = |count: u64| count as f64 / top as f64 * HEIGHT;
    // Days are named on the week's axis; times otherwise.
    let label_format = if step_seconds >= 3600 {
        "%m-%d %H:%M"
    } else {
        "%H:%M"
    };
    let label = |point: Option<&Point>| {
        point
            .map(|point| point.start.format(label_format).to_string())
            .unwrap_or_default()
    };
    let per = match step_seconds {
        60 => "minute".to_owned(),
        3600 => "hour".to_owned(),
        seconds => format!("{} minutes", seconds / 60),
    };
    let bars: Vec<Value> = points
        .iter()
        .enumerate()
        .map(|(index, point)| {
            let x = index as f64 * width;
            json!({
                "x": format!("{x:.1}"),
                "width": format!("{:.1}", (width - 1.0).max(0.5)),
                "y": format!("{:.1}", HEIGHT - height(point.calls)),
                "height": format!("{:.1}", height(point.calls)),
                "failed_y": format!("{:.1}", HEIGHT - height(point.failures)),
                "failed_height": format!("{:.1}", height(point.failures)),
                "title": format!("{} UTC: {} calls, {} failed",
                    point.start.format("%Y-%m-%d %H:%M"), point.calls, point.failures),
            })
        })
        .collect();
    json!({
        "bars": bars,
        "per": per,
        "top": top,
        "middle": top as f64 / 2.0,
        "start": label(points.first()),
        "half": label(points.get(points.len() / 2)),
        "end": label(points.last()),
        "total": points.iter().map(|point| point.calls).sum::<u64>(),
        "failed": points.iter().map(|point| point.failures).sum::<u64>(),
    })
}
