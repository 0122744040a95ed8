//! Logging: the process's subscriber (text or JSON lines on stderr, colour only on a
//! terminal; every line inside a request carries its `request_id`), and a bounded in-memory
//! ring of recent events that the console's logs page searches by request id, level, upstream
//! and text.
//!
//! The ring keeps the newest [`RING_CAPACITY`] events the level filter lets through; an event
//! costs one short mutex hold to store. Nothing in it is persisted.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

use crate::config::{LogFormat, LogSettings};

/// Events kept.
pub const RING_CAPACITY: usize = 5_000;

/// One event, as the ring keeps it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LogEntry {
    /// Its position in the process's sequence of events.
    pub seq: u64,
    /// When, UTC.
    pub at: chrono::DateTime<chrono::Utc>,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    pub level: &'static str,
    /// The module that logged it.
    pub target: String,
    /// The message.
    pub message: String,
    /// The other fields, `name=value` separated by spaces.
    pub fields: String,
    /// The request it happened in, if any.
    pub request_id: Option<String>,
    /// The upstream it is about (a `gateway`, `gateway.id` or `gateway.name` field), if any.
    pub upstream: Option<String>,
}

/// What a search of the ring keeps.
#[derive(Clone, Debug, Default)]
pub struct LogQuery {
    /// Events of this request only.
    pub request_id: Option<String>,
    /// Events at this level or more severe.
    pub level: Option<tracing::Level>,
    /// Events about this upstream (its id or name).
    pub upstream: Option<String>,
    /// Events whose message or fields contain this text (case-insensitive).
    pub text: Option<String>,
    /// At most this many, newest first.
    pub limit: usize,
}

/// The ring of recent events.
pub struct LogRing {
    entries: Mutex<VecDeque<LogEntry>>,
    capacity: usize,
    next: std::sync::atomic::AtomicU64,
}

impl LogRing {
    fn new(capacity: usize) -> Self {
        LogRing {
            entries: Mutex::new(VecDeque::with_capacity(capacity.min(1024))),
            capacity,
            next: std::sync::atomic::AtomicU64::new(1),
        }
    }

    fn push(&self, mut entry: LogEntry) {
        entry.seq = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= self.capacity {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// The newest events matching `query`, newest first.
    pub fn search(&self, query: &LogQuery) -> Vec<LogEntry> {
        let text = query.text.as_ref().map(|text| text.to_lowercase());
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        entries
            .iter()
            .rev()
            .filter(|entry| {
                query
                    .request_id
                    .as_ref()
                    .is_none_or(|id| entry.request_id.as_ref() == Some(id))
                    && query.level.is_none_or(|level| {
                        entry
                            .level
                            .parse::<tracing::Level>()
                            .is_ok_and(|own| own <= level)
                    })
                    && query
                        .upstream
                        .as_ref()
                        .is_none_or(|upstream| entry.upstream.as_ref() == Some(upstream))
                    && text.as_ref().is_none_or(|text| {
                        entry.message.to_lowercase().contains(text)
                            || entry.fields.to_lowercase().contains(text)
                    })
            })
            .take(query.limit)
            .cloned()
            .collect()
    }

    /// Events stored since the process started.
    pub fn total(&self) -> u64 {
        self.next.load(std::sync::atomic::Ordering::Relaxed) - 1
    }
}

/// The process's ring.
pub fn ring() -> &'static LogRing {
    static RING: OnceLock<LogRing> = OnceLock::new();
    RING.get_or_init(|| LogRing::new(RING_CAPACITY))
}

/// Installs the process's subscriber: `settings.level` filters the lines that go to stderr as
/// text or JSON (colour only on a terminal); `settings.ring_level` (by default the same)
/// what [`ring`] keeps. A second call (a
/// test process starting several servers) leaves the first subscriber in place.
pub fn install(settings: &LogSettings) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let lines = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let lines = match settings.format {
        LogFormat::Json => lines.json().flatten_event(true).boxed(),
        LogFormat::Text => lines.boxed(),
    };
    // The ring keeps what LOG_RING_LEVEL asks for, LOG_LEVEL's by default: an event no layer
    // wants costs nothing (the per-request line at `warn`, say).
    let kept = settings
        .ring_level
        .as_deref()
        .and_then(|level| tracing_subscriber::EnvFilter::try_new(level).ok())
        .unwrap_or_else(|| {
            tracing_subscriber::EnvFilter::try_new(&settings.level)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
        });
    let _ = tracing_subscriber::registry()
        .with(crate::telemetry::layer())
        .with(lines.with_filter(filter))
        .with(RingLayer.with_filter(kept))
        .try_init();
}

/// The layer that stores events in the ring.
pub struct RingLayer;

/// The request id a span carries, kept in its extensions.
struct SpanRequest(String);

impl<S> Layer<S> for RingLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attributes: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let mut fields = Fields::default();
        attributes.record(&mut fields);
        if let (Some(request_id), Some(span)) = (fields.request_id, ctx.span(id)) {
            span.extensions_mut().insert(SpanRequest(request_id));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let request_id = fields.request_id.or_else(|| {
            ctx.event_scope(event)?.find_map(|span| {
                span.extensions()
                    .get::<SpanRequest>()
                    .map(|request| request.0.clone())
            })
        });
        let metadata = event.metadata();
        ring().push(LogEntry {
            seq: 0,
            at: chrono::Utc::now(),
            level: metadata.level().as_str(),
            target: metadata.target().to_owned(),
            message: fields.message,
            fields: fields.rest,
            request_id,
            upstream: fields.upstream,
        });
    }
}

/// An event's or span's fields, as the ring keeps them.
#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
    request_id: Option<String>,
    upstream: Option<String>,
}

impl Fields {
    fn keep(&mut self, field: &Field, value: String) {
        match field.name() {
            "message" => self.message = value,
            "request_id" => self.request_id = Some(value),
            name => {
                if matches!(name, "gateway" | "gateway.id" | "gateway.name" | "upstream")
                    && self.upstream.is_none()
                {
                    self.upstream = Some(value.clone());
                }
                if !self.rest.is_empty() {
                    self.rest.push(' ');
                }
                let _ = write!(self.rest, "{name}={value}");
            }
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.keep(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.keep(field, format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(
        level: &'static str,
        message: &str,
        request: Option<&str>,
        upstream: Option<&str>,
    ) -> LogEntry {
        LogEntry {
            seq: 0,
            at: chrono::Utc::now(),
            level,
            target: "mcpgate::test".into(),
            message: message.into(),
            fields: "status=200".into(),
            request_id: request.map(str::to_owned),
            upstream: upstream.map(str::to_owned),
        }
    }

    #[test]
    fn the_ring_is_bounded_and_searched_newest_first() {
        let ring = LogRing::new(3);
        ring.push(entry("INFO", "first", Some("r1"), None));
        ring.push(entry("WARN", "second", Some("r2"), Some("g1")));
        ring.push(entry("DEBUG", "third", Some("r1"), None));
        ring.push(entry("ERROR", "fourth", None, Some("g1")));
        let all = ring.search(&LogQuery {
            limit: 10,
            ..LogQuery::default()
        });
        let messages: Vec<&str> = all.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages, ["fourth", "third", "second"], "the oldest went");
        assert_eq!(ring.total(), 4);
        let by_request = ring.search(&LogQuery {
            request_id: Some("r1".into()),
            limit: 10,
            ..LogQuery::default()
        });
        assert_eq!(by_request.len(), 1);
        let warnings = ring.search(&LogQuery {
            level: Some(tracing::Level::WARN),
            limit: 10,
            ..LogQuery::default()
        });
        assert_eq!(warnings.len(), 2, "WARN and ERROR");
        let upstream = ring.search(&LogQuery {
            upstream: Some("g1".into()),
            text: Some("FOUR".into()),
            limit: 10,
            ..LogQuery::default()
        });
        assert_eq!(upstream.len(), 1);
        assert_eq!(
            ring.search(&LogQuery {
                limit: 1,
                ..LogQuery::default()
            })
            .len(),
            1
        );
    }
}
