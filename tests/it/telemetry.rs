//! OpenTelemetry: the gateway binary, started with `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at an
//! OTLP/HTTP receiver the test runs (decoding with the `opentelemetry-proto` types), exports
//! the spans of one `tools/call`: the request (child of the client's `traceparent`), the MCP
//! method named by the semantic conventions, the authorization, the catalog lookup and the
//! upstream call — whose context is the `traceparent` the upstream received.

#![allow(
    clippy::disallowed_methods,
    reason = "tests are the gateway's clients, with clients of their own"
)]

use crate::common;

use std::sync::Mutex;
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use common::fixture::RestFixture;
use common::{Backend, TestDb};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use serde_json::{Value, json};

/// A span as the receiver decoded it.
#[derive(Clone, Debug)]
struct Received {
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    kind: i32,
    attributes: Vec<(String, String)>,
}

impl Received {
    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

async fn receive(body: web::Bytes, spans: web::Data<Mutex<Vec<Received>>>) -> HttpResponse {
    let Ok(request) = ExportTraceServiceRequest::decode(body.as_ref()) else {
        return HttpResponse::BadRequest().finish();
    };
    let mut spans = spans.lock().unwrap();
    for resource in request.resource_spans {
        for scope in resource.scope_spans {
            for span in scope.spans {
                let attributes = span
                    .attributes
                    .iter()
                    .map(|pair| {
                        let value = match pair.value.as_ref().and_then(|value| value.value.clone())
                        {
                            Some(AnyValue::StringValue(text)) => text,
                            Some(AnyValue::IntValue(number)) => number.to_string(),
                            Some(AnyValue::BoolValue(flag)) => flag.to_string(),
                            other => format!("{other:?}"),
                        };
                        (pair.key.clone(), value)
                    })
                    .collect();
                spans.push(Received {
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    kind: span.kind,
                    attributes,
                });
            }
        }
    }
    HttpResponse::Ok()
        .content_type("application/x-protobuf")
        .finish()
}

async fn spans_of_one_tool_call(_backend: Backend) {
    let spans = web::Data::new(Mutex::new(Vec::<Received>::new()));
    let collected = spans.clone();
    let receiver = HttpServer::new(move || {
        App::new()
            .app_data(collected.clone())
            .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
            .route("/v1/traces", web::post().to(receive))
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let endpoint = format!("http://{}", receiver.addrs()[0]);
    let receiver = receiver.run();
    let receiver_handle = receiver.handle();
    actix_rt::spawn(receiver);
    let fixture = RestFixture::start().await;

    let db = TestDb::new(Backend::Sqlite).await;
    let workdir = tempfile::tempdir().unwrap();
    let (child, base, printed) = crate::cli::serve_with(
        &db.url(),
        workdir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            // The REST service the tool calls is on loopback.
            ("SSRF_ALLOW_LOCALHOST", "true"),
        ],
    )
    .await;
    let password = printed
        .lines()
        .find_map(|line| line.trim().strip_prefix("password: "))
        .expect("the first start prints the admin password")
        .to_owned();
    let http = reqwest::Client::new();
    let login: Value = http
        .post(format!("{base}/auth/login"))
        .json(&json!({"email": "admin@example.com", "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"]
        .as_str()
        .expect("signed in")
        .to_owned();
    let created = http
        .post(format!("{base}/tools"))
        .bearer_auth(&token)
        .json(&json!({"name": "trace_seen", "url": format!("{}/traceparent", fixture.base), "request_type": "GET"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);

    // The client's trace: the gateway's spans join it.
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let client_span = &uuid::Uuid::new_v4().simple().to_string()[..16];
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "trace_seen", "arguments": {},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {},
                  "io.modelcontextprotocol/clientInfo": {"name": "otel-test", "version": "1"}}}});
    let answer = http
        .post(format!("{base}/mcp"))
        .bearer_auth(&token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "trace_seen")
        .header("traceparent", format!("00-{trace_id}-{client_span}-01"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // A JSON body, or a stream whose data line is the answer.
    let answer: Value = serde_json::from_str(
        answer
            .lines()
            .find_map(|line| line.strip_prefix("data: "))
            .unwrap_or(&answer),
    )
    .unwrap_or_else(|error| panic!("{error}: {answer}"));
    let upstream_saw = answer["result"]["structuredContent"]["traceparent"]
        .as_str()
        .unwrap_or_else(|| panic!("the upstream received a traceparent: {answer}"))
        .to_owned();
    let parts: Vec<&str> = upstream_saw.split('-').collect();
    assert_eq!(parts.len(), 4, "{upstream_saw}");
    assert_eq!(
        parts[1], trace_id,
        "the upstream call continues the client's trace"
    );
    let upstream_parent = parts[2].to_owned();

    let found = common::eventually("the spans of the call", Duration::from_secs(20), || {
        let spans = spans.clone();
        let upstream_parent = upstream_parent.clone();
        let trace_id = trace_id.clone();
        async move {
            let spans = spans.lock().unwrap();
            let ours: Vec<Received> = spans
                .iter()
                .filter(|span| span.trace_id == trace_id)
                .cloned()
                .collect();
            let complete = ours.iter().any(|span| span.span_id == upstream_parent)
                && ours.iter().any(|span| span.name == "tools/call trace_seen")
                && ours.iter().any(|span| span.name == "POST /mcp");
            complete.then_some(ours)
        }
    })
    .await;
    let named = |name: &str| {
        found
            .iter()
            .find(|span| span.name == name)
            .unwrap_or_else(|| panic!("a span {name:?} in {found:#?}"))
            .clone()
    };
    let request = named("POST /mcp");
    assert_eq!(
        request.parent_span_id, client_span,
        "the request is a child of the client's span"
    );
    assert_eq!(request.kind, 2, "server kind");
    let mcp = named("tools/call trace_seen");
    assert_eq!(mcp.parent_span_id, request.span_id);
    assert_eq!(mcp.attribute("mcp.method.name"), Some("tools/call"));
    assert_eq!(mcp.attribute("gen_ai.tool.name"), Some("trace_seen"));
    assert_eq!(mcp.attribute("gen_ai.operation.name"), Some("execute_tool"));
    assert_eq!(mcp.attribute("jsonrpc.request.id"), Some("7"));
    assert_eq!(
        mcp.attribute("mcp.session.id"),
        None,
        "a stateless request has no session"
    );
    let authorize = named("authorize");
    assert_eq!(authorize.parent_span_id, request.span_id);
    let lookup = named("catalog lookup");
    assert_eq!(lookup.parent_span_id, mcp.span_id);
    let upstream = found
        .iter()
        .find(|span| span.span_id == upstream_parent)
        .unwrap();
    assert_eq!(upstream.name, "GET");
    assert_eq!(upstream.kind, 3, "client kind");
    assert_eq!(upstream.parent_span_id, mcp.span_id);
    assert!(
        upstream
            .attribute("url.full")
            .unwrap()
            .ends_with("/traceparent")
    );
    // No span carries a credential.
    let everything = format!("{found:?}");
    assert!(!everything.contains(&token) && !everything.contains(&password));

    // A client that puts its context in the request's `_meta` (no header): the MCP span is its
    // child.
    let meta_trace = uuid::Uuid::new_v4().simple().to_string();
    let meta_span = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    let mut body = body.clone();
    body["id"] = json!("meta-call");
    body["params"]["_meta"]["traceparent"] = json!(format!("00-{meta_trace}-{meta_span}-01"));
    let answered = http
        .post(format!("{base}/mcp"))
        .bearer_auth(&token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "trace_seen")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(answered.status(), reqwest::StatusCode::OK);
    let in_meta_trace = common::eventually(
        "the span of the _meta call",
        Duration::from_secs(20),
        || {
            let spans = spans.clone();
            let meta_trace = meta_trace.clone();
            async move {
                let spans = spans.lock().unwrap();
                spans
                    .iter()
                    .find(|span| {
                        span.trace_id == meta_trace && span.name == "tools/call trace_seen"
                    })
                    .cloned()
            }
        },
    )
    .await;
    assert_eq!(in_meta_trace.parent_span_id, meta_span);
    assert_eq!(
        in_meta_trace.attribute("jsonrpc.request.id"),
        Some("meta-call")
    );

    crate::cli::stop(child).await;
    receiver_handle.stop(true).await;
    fixture.stop().await;
}

once_on_sqlite!(spans_of_one_tool_call);
