//! OpenTelemetry traces over OTLP/HTTP (protobuf), off unless `OTEL_EXPORTER_OTLP_ENDPOINT` is
//! set. Spans follow the MCP semantic conventions: the request (server kind, its parent taken
//! from the client's W3C `traceparent`), `tools/call <name>` and the other MCP methods with
//! `mcp.method.name`, `jsonrpc.request.id` and `gen_ai.tool.name`, the authorization decision,
//! the catalog lookup, and each upstream call (client kind), whose context is sent upstream in
//! `traceparent`. With tracing off, none of these spans is even created.
//!
//! The exporter sends to the collector the operator configured, from its own thread with its
//! own connection (like the database), not through the egress policy that governs upstreams.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;

static ENABLED: AtomicBool = AtomicBool::new(false);
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Whether traces are exported (spans beyond the request's are created only then).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The tracing layer that exports spans, if `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the
/// standard `OTEL_*` variables apply: `OTEL_SERVICE_NAME`, `OTEL_EXPORTER_OTLP_HEADERS`, …).
pub fn layer<S>() -> Option<impl tracing_subscriber::Layer<S>>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok()?;
    let endpoint = endpoint.trim().trim_end_matches('/');
    if endpoint.is_empty() {
        return None;
    }
    use opentelemetry_otlp::WithExportConfig;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(format!("{endpoint}/v1/traces"))
        .build();
    let exporter = match exporter {
        Ok(exporter) => exporter,
        Err(error) => {
            eprintln!("OTEL_EXPORTER_OTLP_ENDPOINT is set, but the exporter failed: {error}");
            return None;
        }
    };
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "mcpgate".into());
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service)
                .build(),
        )
        .build();
    let tracer = provider.tracer("mcpgate");
    let _ = PROVIDER.set(provider);
    ENABLED.store(true, Ordering::Relaxed);
    Some(
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
    )
}

use tracing_subscriber::Layer as _;

/// Sends the spans still buffered (at a graceful stop).
pub fn flush() {
    if let Some(provider) = PROVIDER.get() {
        let _ = provider.force_flush();
    }
}

/// Makes `span` a child of the client's `traceparent`, if it sent one.
pub fn accept(span: &tracing::Span, headers: &actix_web::http::header::HeaderMap) {
    if !enabled() || !headers.contains_key("traceparent") {
        return;
    }
    struct Headers<'a>(&'a actix_web::http::header::HeaderMap);
    impl Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|value| value.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(|name| name.as_str()).collect()
        }
    }
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    let _ = span.set_parent(parent);
}

/// Makes the `traceparent` (and `tracestate`) an MCP request carries in its `_meta` the parent
/// of `span`.
pub fn accept_meta(span: &tracing::Span, meta: &serde_json::Value) {
    if !enabled() || meta.get("traceparent").is_none() {
        return;
    }
    struct Meta<'a>(&'a serde_json::Value);
    impl Extractor for Meta<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(serde_json::Value::as_str)
        }
        fn keys(&self) -> Vec<&str> {
            self.0
                .as_object()
                .map(|object| object.keys().map(String::as_str).collect())
                .unwrap_or_default()
        }
    }
    let parent = TraceContextPropagator::new().extract(&Meta(meta));
    let _ = span.set_parent(parent);
}

/// Adds the current span's `traceparent` to an outgoing request.
pub fn inject(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    if !enabled() {
        return request;
    }
    struct Headers(Vec<(String, String)>);
    impl Injector for Headers {
        fn set(&mut self, key: &str, value: String) {
            self.0.push((key.to_owned(), value));
        }
    }
    let mut headers = Headers(Vec::new());
    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut headers);
    headers
        .0
        .into_iter()
        .fold(request, |request, (name, value)| {
            request.header(name, value)
        })
}

/// A span created only while traces are exported (else a disabled one, which costs nothing).
#[macro_export]
macro_rules! otel_span {
    ($($field:tt)*) => {
        if $crate::telemetry::enabled() {
            tracing::info_span!($($field)*)
        } else {
            tracing::Span::none()
        }
    };
}
