//! `GET /metrics`: call metrics, the DbActor's pool and breaker, the upstream breakers and MCP
//! sessions in the OpenMetrics text format (which Prometheus scrapes), encoded by the
//! `prometheus-client` crate. Requires an admin token unless `METRICS_PUBLIC`.
//!
//! The numbers live in the actors that own them; a scrape takes one snapshot of each and hands
//! them to a [`Collector`], so nothing on the call path touches a metrics registry.

use std::fmt::Error as FmtError;

use actix_web::{HttpRequest, HttpResponse, get, web};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{Admin, Authenticated};
use crate::actors::db::PoolStats;
use crate::actors::metrics::{BUCKETS, HistoryView, MetricsSnapshot, ToolStats};
use crate::breaker::{BreakerSnapshot, BreakerState};
use crate::service::metrics::HistoryQuery;

/// The OpenMetrics text format's content type.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /metrics/calls`: the call history as the console's metrics page shows it.
#[utoipa::path(
    tag = "admin",
    operation_id = "call_history",
    summary = "Calls over a range (the chart) and per tool, virtual server and upstream over the last 24 hours: calls, failures, mean and p50/p95/p99 latency, the last call and error (admin.system)",
    params(HistoryQuery),
    responses(
        (status = 200, description = "the history; it survives a restart", body = HistoryView),
        (status = 400, description = "a query parameter is malformed (an unknown range)", body = ErrorBody),
        (status = 403, description = "your roles do not grant admin.system", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[get("/metrics/calls")]
pub async fn calls(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let view = crate::service::metrics::history(&state.services, &principal, query.range).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// `GET /metrics`.
#[utoipa::path(
    tag = "admin",
    operation_id = "metrics",
    summary = "Metrics in the OpenMetrics text format (admin token unless METRICS_PUBLIC)",
    responses(
        (status = 200, description = "application/openmetrics-text; version=1.0.0"),
        (status = 403, description = "not an admin", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[get("/metrics")]
pub async fn prometheus(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    if !state.settings.metrics_public {
        use actix_web::FromRequest;
        Admin::extract(&request).await?;
    }
    let scrape = Scrape {
        calls: state.metrics.snapshot().await,
        pool: state.db.stats().await.ok(),
        upstreams: state.upstream.breakers().await,
        up: crate::service::gateways::up(&state.services).await,
        password_verifications: state.auth.password_verifications(),
        streams: state.streams.total(),
        sessions: state.sessions.len(),
        parked: state.parked.len(),
    };
    let mut registry = Registry::with_prefix("mcpgate");
    registry.register_collector(Box::new(scrape));
    let mut body = String::new();
    prometheus_client::encoding::text::encode(&mut body, &registry).map_err(|error| {
        tracing::error!(%error, "encoding the metrics failed");
        ApiError::Internal
    })?;
    Ok(HttpResponse::Ok().content_type(CONTENT_TYPE).body(body))
}

/// One scrape's numbers, taken from their actors before encoding.
#[derive(Debug)]
struct Scrape {
    calls: MetricsSnapshot,
    pool: Option<PoolStats>,
    upstreams: Vec<(String, BreakerSnapshot)>,
    /// Every enabled upstream and whether it answers.
    up: Vec<(String, bool)>,
    password_verifications: u64,
    streams: usize,
    sessions: usize,
    parked: usize,
}

fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), FmtError> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: f64,
) -> Result<(), FmtError> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// One labelled histogram of call durations.
fn histogram(
    family: &mut prometheus_client::encoding::MetricEncoder<'_>,
    label: (&str, &str),
    stats: &ToolStats,
) -> Result<(), FmtError> {
    // Each bucket counts calls up to its bound; the last is everything.
    let mut cumulative = 0;
    let mut buckets: Vec<(f64, u64)> = BUCKETS
        .iter()
        .zip(stats.buckets)
        .map(|(bound, count)| {
            cumulative += count;
            (*bound, cumulative)
        })
        .collect();
    let total = stats.successes + stats.failures;
    buckets.push((f64::INFINITY, total));
    family
        .encode_family(&[label])?
        .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            stats.duration_sum,
            total,
            &buckets,
            None,
        )
}

fn state_value(state: BreakerState) -> i64 {
    match state {
        BreakerState::Closed => 0,
        BreakerState::HalfOpen => 1,
        BreakerState::Open => 2,
    }
}

impl Scrape {
    /// Calls through each upstream, by outcome, and their latency.
    fn upstream_calls(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), FmtError> {
        if self.calls.upstreams.is_empty() {
            return Ok(());
        }
        let mut family = encoder.encode_descriptor(
            "upstream_calls",
            "Tool calls through an upstream, by outcome.",
            None,
            MetricType::Counter,
        )?;
        for (gateway, stats) in &self.calls.upstreams {
            for (outcome, value) in [
                ("success", stats.calls.successes),
                ("failure", stats.calls.failures),
            ] {
                let labels = [("gateway", gateway.as_str()), ("outcome", outcome)];
                ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "upstream_call_duration_seconds",
            "Latency of tool calls through an upstream.",
            None,
            MetricType::Histogram,
        )?;
        for (gateway, stats) in &self.calls.upstreams {
            histogram(&mut family, ("gateway", gateway.as_str()), &stats.calls)?;
        }
        Ok(())
    }

    fn tool_calls(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), FmtError> {
        let mut family = encoder.encode_descriptor(
            "tool_calls",
            "Tool calls by tool and outcome.",
            None,
            MetricType::Counter,
        )?;
        for (tool, stats) in &self.calls.tools {
            for (outcome, value) in [("success", stats.successes), ("failure", stats.failures)] {
                let labels = [("tool", tool.as_str()), ("outcome", outcome)];
                ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "tool_call_duration_seconds",
            "Tool call latency.",
            None,
            MetricType::Histogram,
        )?;
        for (tool, stats) in &self.calls.tools {
            histogram(&mut family, ("tool", tool.as_str()), stats)?;
        }
        gauge(
            encoder,
            "call_records_buffered",
            "Call records waiting to be written.",
            self.calls.buffered as f64,
        )?;
        counter(
            encoder,
            "call_records_written",
            "Call records written to the database.",
            self.calls.written,
        )?;
        counter(
            encoder,
            "call_records_dropped",
            "Call records dropped (buffer full).",
            self.calls.dropped,
        )
    }

    fn pool(encoder: &mut DescriptorEncoder<'_>, pool: &PoolStats) -> Result<(), FmtError> {
        let mut family = encoder.encode_descriptor(
            "db_pool_connections",
            "Database connections by state.",
            None,
            MetricType::Gauge,
        )?;
        for (state, value) in [("in_use", pool.in_use), ("idle", pool.idle)] {
            ConstGauge::new(i64::from(value)).encode(family.encode_family(&[("state", state)])?)?;
        }
        gauge(
            encoder,
            "db_pool_max_size",
            "DB_POOL_SIZE.",
            f64::from(pool.max_size),
        )?;
        gauge(
            encoder,
            "db_pool_waiting",
            "Units waiting for a connection.",
            pool.waiting as f64,
        )?;
        let counters = [
            (
                "db_checkout_timeouts",
                "Checkouts that timed out.",
                pool.checkout_timeouts,
            ),
            (
                "db_retries",
                "Retries after transient failures.",
                pool.retries,
            ),
            ("db_units", "Units of work that succeeded.", pool.units_ok),
            (
                "db_unit_failures",
                "Units of work that failed.",
                pool.units_failed,
            ),
            (
                "db_deadlines_exceeded",
                "Units detached at their deadline.",
                pool.deadlines_exceeded,
            ),
        ];
        for (name, help, value) in counters {
            counter(encoder, name, help, value)?;
        }
        gauge(
            encoder,
            "db_longest_hold_seconds",
            "Longest hold of one connection.",
            pool.longest_hold_ms / 1000.0,
        )?;
        let breaker = &pool.breaker;
        gauge(
            encoder,
            "db_breaker_state",
            "Breaker: 0 closed, 1 half-open, 2 open.",
            state_value(breaker.state) as f64,
        )?;
        counter(
            encoder,
            "db_breaker_opened",
            "Times the breaker opened.",
            breaker.times_opened,
        )?;
        counter(
            encoder,
            "db_breaker_transitions",
            "Breaker state changes.",
            breaker.transitions,
        )
    }

    fn upstreams(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), FmtError> {
        if !self.up.is_empty() {
            let mut family = encoder.encode_descriptor(
                "upstream_up",
                "Whether an upstream answers its calls and health checks (1) or not (0).",
                None,
                MetricType::Gauge,
            )?;
            for (gateway, up) in &self.up {
                ConstGauge::new(i64::from(*up))
                    .encode(family.encode_family(&[("gateway", gateway.as_str())])?)?;
            }
        }
        self.upstream_calls(encoder)?;
        if self.upstreams.is_empty() {
            return Ok(());
        }
        let mut family = encoder.encode_descriptor(
            "upstream_consecutive_failures",
            "Transient failures in a row of calls to an upstream.",
            None,
            MetricType::Gauge,
        )?;
        for (gateway, snapshot) in &self.upstreams {
            ConstGauge::new(i64::from(snapshot.consecutive_failures))
                .encode(family.encode_family(&[("gateway", gateway.as_str())])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "upstream_breaker_state",
            "Upstream breaker: 0 closed, 1 half-open, 2 open.",
            None,
            MetricType::Gauge,
        )?;
        for (gateway, snapshot) in &self.upstreams {
            ConstGauge::new(state_value(snapshot.state))
                .encode(family.encode_family(&[("gateway", gateway.as_str())])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "upstream_breaker_opened",
            "Times an upstream breaker opened.",
            None,
            MetricType::Counter,
        )?;
        for (gateway, snapshot) in &self.upstreams {
            ConstCounter::new(snapshot.times_opened)
                .encode(family.encode_family(&[("gateway", gateway.as_str())])?)?;
        }
        Ok(())
    }
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), FmtError> {
        self.tool_calls(&mut encoder)?;
        if let Some(pool) = &self.pool {
            Self::pool(&mut encoder, pool)?;
        }
        self.upstreams(&mut encoder)?;
        counter(
            &mut encoder,
            "password_verifications",
            "Password verifications (argon2id) done by sign-ins.",
            self.password_verifications,
        )?;
        gauge(
            &mut encoder,
            "streams",
            "Long-lived streams held (listen, GET, legacy SSE, console events).",
            self.streams as f64,
        )?;
        gauge(
            &mut encoder,
            "mcp_sessions",
            "Live legacy MCP sessions.",
            self.sessions as f64,
        )?;
        gauge(
            &mut encoder,
            "mcp_parked_calls",
            "Upstream calls waiting for a 2026-07-28 client's inputResponses.",
            self.parked as f64,
        )
    }
}
