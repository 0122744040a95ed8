//! The console's metrics page (`admin.system`): calls per minute over the last hour as a chart
//! with axes, and per tool, per virtual server and per upstream: calls, error rate, latency
//! p50/p95/p99, the last call and the last error. The numbers are the MetricsActor's, kept in
//! memory since the process started (so they survive a reload of the page).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use super::ConsoleUser;
use crate::actors::metrics::{MINUTES_KEPT, Slot, ToolStats};
use crate::auth::On;
use crate::http::AppState;

/// The chart's drawing area, in SVG units.
const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 160.0;

/// `GET /admin/metrics`.
pub async fn page(state: web::Data<AppState>, user: ConsoleUser) -> HttpResponse {
    let mut context = user.context("metrics");
    if let Err(denied) = user.principal.authorize("admin.system", On::Platform) {
        context.insert(
            "error",
            &format!("The metrics need the admin.system permission: {denied}."),
        );
        context.insert("chart", &Value::Null);
        context.insert("tables", &Vec::<Value>::new());
        return state
            .console
            .page(StatusCode::FORBIDDEN, "metrics.html", &context);
    }
    let snapshot = state.services.metrics.snapshot().await;
    let catalog = state.catalog.current();
    let now = chrono::Utc::now();
    context.insert(
        "chart",
        &chart(
            &snapshot
                .minutes
                .window(now.timestamp().div_euclid(60), MINUTES_KEPT),
        ),
    );
    let tools: Vec<Value> = snapshot
        .tools
        .iter()
        .map(|(name, stats)| row(name, stats))
        .collect();
    let gateways = catalog.gateways();
    let upstreams: Vec<Value> = snapshot
        .upstreams
        .iter()
        .map(|(id, stats)| {
            let name = gateways
                .iter()
                .find(|gateway| &gateway.id == id)
                .map_or(id.as_str(), |gateway| gateway.name.as_str());
            row(name, &stats.calls)
        })
        .collect();
    let servers: Vec<Value> = snapshot
        .servers
        .iter()
        .map(|(id, stats)| {
            let name = catalog
                .server(id)
                .map_or(id.as_str(), |server| server.name.as_str());
            row(name, &stats.calls)
        })
        .collect();
    context.insert(
        "tables",
        &json!([
            {"id": "tools", "title": "Per tool", "rows": tools},
            {"id": "servers", "title": "Per virtual server", "rows": servers},
            {"id": "upstreams", "title": "Per upstream", "rows": upstreams},
        ]),
    );
    state.console.page(StatusCode::OK, "metrics.html", &context)
}

/// One table row: calls, error rate, latency quantiles, the last call and the last error.
fn row(name: &str, stats: &ToolStats) -> Value {
    let total = stats.successes + stats.failures;
    let ms = |q: f64| match stats.quantile(q) {
        None => "–".to_owned(),
        Some(bound) if bound.is_infinite() => "> 30 s".to_owned(),
        Some(bound) => format!("≤ {} ms", bound * 1000.0),
    };
    let at = |at: &chrono::NaiveDateTime| at.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    json!({
        "name": name,
        "calls": total,
        "failures": stats.failures,
        "error_rate": if total == 0 { "–".to_owned() } else {
            format!("{:.1} %", stats.failures as f64 * 100.0 / total as f64)
        },
        "p50": ms(0.5),
        "p95": ms(0.95),
        "p99": ms(0.99),
        "last_call": stats.last_call_at.as_ref().map(at).unwrap_or_else(|| "–".into()),
        "last_error": stats.last_error.as_ref().map(|(when, why)| format!("{why} ({})", at(when))),
    })
}

/// The last hour as bars (calls, and the failed part of them) with the axes' labels.
fn chart(minutes: &[Slot]) -> Value {
    let top = minutes
        .iter()
        .map(|slot| slot.calls)
        .max()
        .unwrap_or(0)
        .max(1);
    let width = WIDTH / minutes.len().max(1) as f64;
    let height = |count: u64| count as f64 / top as f64 * HEIGHT;
    let bars: Vec<Value> = minutes
        .iter()
        .enumerate()
        .map(|(index, slot)| {
            let x = index as f64 * width;
            let label = chrono::DateTime::from_timestamp(slot.index * 60, 0)
                .map(|at| at.format("%H:%M").to_string())
                .unwrap_or_default();
            json!({
                "x": format!("{x:.1}"),
                "width": format!("{:.1}", (width - 1.0).max(0.5)),
                "y": format!("{:.1}", HEIGHT - height(slot.calls)),
                "height": format!("{:.1}", height(slot.calls)),
                "failed_y": format!("{:.1}", HEIGHT - height(slot.failures)),
                "failed_height": format!("{:.1}", height(slot.failures)),
                "title": format!("{label} UTC: {} calls, {} failed", slot.calls, slot.failures),
            })
        })
        .collect();
    let time = |slot: Option<&Slot>| {
        slot.and_then(|slot| chrono::DateTime::from_timestamp(slot.index * 60, 0))
            .map(|at| at.format("%H:%M").to_string())
            .unwrap_or_default()
    };
    json!({
        "bars": bars,
        "top": top,
        "middle": top as f64 / 2.0,
        "start": time(minutes.first()),
        "half": time(minutes.get(minutes.len() / 2)),
        "end": time(minutes.last()),
        "total": minutes.iter().map(|slot| slot.calls).sum::<u64>(),
        "failed": minutes.iter().map(|slot| slot.failures).sum::<u64>(),
    })
}
