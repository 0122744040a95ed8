//! `GET /metrics`: Prometheus text exposition of call metrics, the DbActor's pool and breaker,
//! the upstream breakers and MCP sessions. Requires an admin token unless `METRICS_PUBLIC`.

use std::fmt::Write;

use actix_web::{HttpRequest, HttpResponse, web};

use super::AppState;
use super::error::ApiError;
use super::extract::Admin;
use crate::actors::metrics::BUCKETS;
use crate::breaker::{BreakerSnapshot, BreakerState};

/// `GET /metrics`.
pub async fn prometheus(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    if !state.settings.metrics_public {
        use actix_web::FromRequest;
        Admin::extract(&request).await?;
    }
    let mut out = String::new();
    let metrics = state.metrics.snapshot().await;
    family(
        &mut out,
        "mcpgate_tool_calls_total",
        "counter",
        "Tool calls by tool and outcome.",
    );
    for (tool, stats) in &metrics.tools {
        let tool = escape(tool);
        let _ = writeln!(
            out,
            "mcpgate_tool_calls_total{{tool=\"{tool}\",outcome=\"success\"}} {}",
            stats.successes
        );
        let _ = writeln!(
            out,
            "mcpgate_tool_calls_total{{tool=\"{tool}\",outcome=\"failure\"}} {}",
            stats.failures
        );
    }
    family(
        &mut out,
        "mcpgate_tool_call_duration_seconds",
        "histogram",
        "Tool call latency.",
    );
    for (tool, stats) in &metrics.tools {
        let tool = escape(tool);
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(stats.buckets) {
            cumulative += count;
            let _ = writeln!(
                out,
                "mcpgate_tool_call_duration_seconds_bucket{{tool=\"{tool}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        let total = stats.successes + stats.failures;
        let _ = writeln!(
            out,
            "mcpgate_tool_call_duration_seconds_bucket{{tool=\"{tool}\",le=\"+Inf\"}} {total}"
        );
        let _ = writeln!(
            out,
            "mcpgate_tool_call_duration_seconds_sum{{tool=\"{tool}\"}} {}",
            stats.duration_sum
        );
        let _ = writeln!(
            out,
            "mcpgate_tool_call_duration_seconds_count{{tool=\"{tool}\"}} {total}"
        );
    }
    gauge(
        &mut out,
        "mcpgate_call_records_buffered",
        "Call records waiting to be written.",
        metrics.buffered as f64,
    );
    counter(
        &mut out,
        "mcpgate_call_records_written_total",
        "Call records written to the database.",
        metrics.written,
    );
    counter(
        &mut out,
        "mcpgate_call_records_dropped_total",
        "Call records dropped (buffer full).",
        metrics.dropped,
    );

    if let Ok(pool) = state.db.stats().await {
        family(
            &mut out,
            "mcpgate_db_pool_connections",
            "gauge",
            "Database connections by state.",
        );
        let _ = writeln!(
            out,
            "mcpgate_db_pool_connections{{state=\"in_use\"}} {}",
            pool.in_use
        );
        let _ = writeln!(
            out,
            "mcpgate_db_pool_connections{{state=\"idle\"}} {}",
            pool.idle
        );
        gauge(
            &mut out,
            "mcpgate_db_pool_max_size",
            "DB_POOL_SIZE.",
            f64::from(pool.max_size),
        );
        gauge(
            &mut out,
            "mcpgate_db_pool_waiting",
            "Units waiting for a connection.",
            pool.waiting as f64,
        );
        counter(
            &mut out,
            "mcpgate_db_checkout_timeouts_total",
            "Checkouts that timed out.",
            pool.checkout_timeouts,
        );
        counter(
            &mut out,
            "mcpgate_db_retries_total",
            "Retries after transient failures.",
            pool.retries,
        );
        counter(
            &mut out,
            "mcpgate_db_units_total",
            "Units of work that succeeded.",
            pool.units_ok,
        );
        counter(
            &mut out,
            "mcpgate_db_unit_failures_total",
            "Units of work that failed.",
            pool.units_failed,
        );
        counter(
            &mut out,
            "mcpgate_db_deadlines_exceeded_total",
            "Units detached at their deadline.",
            pool.deadlines_exceeded,
        );
        gauge(
            &mut out,
            "mcpgate_db_longest_hold_seconds",
            "Longest hold of one connection.",
            pool.longest_hold_ms / 1000.0,
        );
        breaker(&mut out, "mcpgate_db_breaker", "", &pool.breaker);
    }
    let upstreams = state.upstream.breakers().await;
    if !upstreams.is_empty() {
        family(
            &mut out,
            "mcpgate_upstream_breaker_state",
            "gauge",
            "Upstream breaker: 0 closed, 1 half-open, 2 open.",
        );
        family(
            &mut out,
            "mcpgate_upstream_breaker_opened_total",
            "counter",
            "Times an upstream breaker opened.",
        );
        for (gateway, snapshot) in &upstreams {
            let labels = format!("{{gateway=\"{}\"}}", escape(gateway));
            let _ = writeln!(
                out,
                "mcpgate_upstream_breaker_state{labels} {}",
                state_value(snapshot.state)
            );
            let _ = writeln!(
                out,
                "mcpgate_upstream_breaker_opened_total{labels} {}",
                snapshot.times_opened
            );
        }
    }
    counter(
        &mut out,
        "mcpgate_password_verifications_total",
        "Password verifications (argon2id) done by sign-ins.",
        state.auth.password_verifications(),
    );
    gauge(
        &mut out,
        "mcpgate_streams",
        "Long-lived streams held (listen, GET, legacy SSE, console events).",
        state.streams.total() as f64,
    );
    gauge(
        &mut out,
        "mcpgate_mcp_sessions",
        "Live legacy MCP sessions.",
        state.sessions.len() as f64,
    );
    gauge(
        &mut out,
        "mcpgate_mcp_parked_calls",
        "Upstream calls waiting for a 2026-07-28 client's inputResponses.",
        state.parked.len() as f64,
    );
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(out))
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: f64) {
    family(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    family(out, name, "counter", help);
    let _ = writeln!(out, "{name} {value}");
}

fn state_value(state: BreakerState) -> u8 {
    match state {
        BreakerState::Closed => 0,
        BreakerState::HalfOpen => 1,
        BreakerState::Open => 2,
    }
}

fn breaker(out: &mut String, prefix: &str, labels: &str, snapshot: &BreakerSnapshot) {
    gauge(
        out,
        &format!("{prefix}_state{labels}"),
        "Breaker: 0 closed, 1 half-open, 2 open.",
        f64::from(state_value(snapshot.state)),
    );
    counter(
        out,
        &format!("{prefix}_opened_total{labels}"),
        "Times the breaker opened.",
        snapshot.times_opened,
    );
    counter(
        out,
        &format!("{prefix}_transitions_total{labels}"),
        "Breaker state changes.",
        snapshot.transitions,
    );
}

/// Escapes a Prometheus label value.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
