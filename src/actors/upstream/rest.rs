//! REST tool calls: one HTTP request with the tool's headers, its response read up to a bound,
//! at most one redirect followed under the egress policy.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{MAX_REDIRECTS, MAX_RESPONSE_BYTES, UpstreamError};
use crate::upstream::describe;

/// Call an HTTP endpoint.
pub struct CallHttp {
    /// GET, POST, PUT, PATCH or DELETE.
    pub method: String,
    /// The full URL.
    pub url: String,
    /// Headers to send.
    pub headers: BTreeMap<String, String>,
    /// Query parameters to add.
    pub query: Vec<(String, String)>,
    /// A JSON body.
    pub body: Option<Value>,
    /// How long the whole call may take.
    pub timeout: Duration,
    /// Cancelled when the client that asked goes away.
    pub cancel: CancellationToken,
}

/// An upstream's answer.
#[derive(Debug, Clone)]
pub struct HttpReply {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

/// Carries out a REST call within its timeout, or until the caller goes away.
pub(super) async fn call(
    client: crate::egress::HttpClient,
    call: CallHttp,
) -> Result<HttpReply, UpstreamError> {
    let cancel = call.cancel.clone();
    let timeout = call.timeout;
    tokio::select! {
        _ = cancel.cancelled() => Err(UpstreamError::Cancelled),
        outcome = tokio::time::timeout(timeout, traced(client, call)) => {
            outcome.unwrap_or(Err(UpstreamError::Timeout(timeout)))
        }
    }
}

/// Where a redirect points, resolved against the URL that answered it.
fn redirect_target(
    from: &url::Url,
    status: reqwest::StatusCode,
    location: Option<&reqwest::header::HeaderValue>,
) -> Result<url::Url, UpstreamError> {
    let location = location
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| {
            UpstreamError::Unreachable(format!("HTTP {status} redirect without a Location"))
        })?;
    from.join(location)
        .map_err(|error| UpstreamError::Unreachable(format!("bad redirect {location:?}: {error}")))
}

/// [`send`] in a client span (while traces are exported), whose context goes upstream in
/// `traceparent`.
async fn traced(
    client: crate::egress::HttpClient,
    call: CallHttp,
) -> Result<HttpReply, UpstreamError> {
    let span = crate::otel_span!(
        "upstream",
        otel.name = %call.method,
        otel.kind = "client",
        http.request.method = %call.method,
        url.full = %call.url,
    );
    tracing::Instrument::instrument(send(client, call), span).await
}

/// Sends a REST tool call. A redirect is followed once at most: its destination must pass the
/// egress policy like any other, and the tool's configured headers (credentials, under
/// whatever name) are sent only to the origin they were configured for.
async fn send(
    client: crate::egress::HttpClient,
    call: CallHttp,
) -> Result<HttpReply, UpstreamError> {
    let mut method = reqwest::Method::from_bytes(call.method.as_bytes())
        .map_err(|_| UpstreamError::InvalidRequest(format!("bad method {}", call.method)))?;
    let origin = url::Url::parse(&call.url)
        .map_err(|error| UpstreamError::InvalidRequest(format!("bad URL: {error}")))?;
    let mut url = origin.clone();
    let mut body = call.body.clone();
    let mut hops = 0;
    let mut response = loop {
        let mut request = client
            .request(method.clone(), url.as_str())
            .map_err(|denied| UpstreamError::Refused(denied.to_string()))?;
        if crate::egress::same_origin(&origin, &url) {
            for (name, value) in &call.headers {
                request = request.header(name, value);
            }
        }
        if !call.query.is_empty() && hops == 0 {
            request = request.query(&call.query);
        }
        if let Some(body) = &body {
            request = request.json(body);
        }
        let request = crate::telemetry::inject(request);
        let response = request.send().await.map_err(|error| {
            if error.is_builder() {
                UpstreamError::InvalidRequest(error.to_string())
            } else {
                UpstreamError::Unreachable(describe(&error))
            }
        })?;
        let status = response.status();
        if !status.is_redirection() || status == reqwest::StatusCode::NOT_MODIFIED {
            break response;
        }
        if hops == MAX_REDIRECTS {
            return Err(UpstreamError::Unreachable(format!(
                "the endpoint redirected more than {MAX_REDIRECTS} time(s)"
            )));
        }
        hops += 1;
        url = redirect_target(
            &url,
            status,
            response.headers().get(reqwest::header::LOCATION),
        )?;
        // 303 (and, as browsers do, 301/302 after a POST) continue as a GET without a body.
        if status == reqwest::StatusCode::SEE_OTHER
            || (matches!(status.as_u16(), 301 | 302) && method == reqwest::Method::POST)
        {
            method = reqwest::Method::GET;
            body = None;
        }
    };
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| UpstreamError::Unreachable(describe(&error)))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(UpstreamError::TooLarge(MAX_RESPONSE_BYTES));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(HttpReply {
        status,
        content_type,
        body,
    })
}
