//! One log line per request: method, path (without the query string, which may carry
//! secrets), status, duration and a request id echoed in `X-Request-Id`; every line logged
//! while the request is handled carries the id too (a span around the handler).

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;

/// The request's id, in the request's extensions for the handlers (the audit trail records it).
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The middleware function (`middleware::from_fn(log_requests)`).
pub async fn log_requests(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|value| {
            !value.is_empty()
                && value.len() <= 64
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    actix_web::HttpMessage::extensions_mut(&request).insert(RequestId(request_id.clone()));
    let method = request.method().clone();
    let path = request.path().to_owned();
    // Every line logged while the request is handled carries its id.
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        otel.name = tracing::field::Empty,
        otel.kind = tracing::field::Empty,
        http.request.method = tracing::field::Empty,
        url.path = tracing::field::Empty,
    );
    if crate::telemetry::enabled() {
        span.record("otel.name", format!("{method} {path}"));
        span.record("otel.kind", "server");
        span.record("http.request.method", method.as_str());
        span.record("url.path", path.as_str());
        crate::telemetry::accept(&span, request.headers());
    }
    let outcome = tracing::Instrument::instrument(next.call(request), span).await;
    let status = match &outcome {
        Ok(response) => response.status().as_u16(),
        Err(error) => error.as_response_error().status_code().as_u16(),
    };
    tracing::info!(
        http.method = %method,
        http.path = %path,
        http.status = status,
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        request_id = %request_id,
        "request"
    );
    let mut response = outcome?;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(response)
}
