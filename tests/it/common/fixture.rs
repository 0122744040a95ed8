//! A small REST service on loopback that REST-backed tools call.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

/// The running fixture.
pub struct RestFixture {
    pub base: String,
    /// Calls to `/slow` in progress (a call stops counting when its connection is dropped).
    pub slow_in_flight: Arc<AtomicUsize>,
    handle: actix_web::dev::ServerHandle,
}

/// Counts a call while its handler future lives.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(gauge: &Arc<AtomicUsize>) -> Self {
        gauge.fetch_add(1, Ordering::SeqCst);
        InFlight(gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(serde::Deserialize)]
struct Units {
    units: Option<String>,
}

async fn weather(city: web::Path<String>, units: web::Query<Units>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "city": city.into_inner(),
        "temperature": 21,
        "units": units.into_inner().units.unwrap_or_else(|| "metric".into()),
    }))
}

async fn echo(body: web::Json<Value>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "received": body.into_inner() }))
}

async fn fail() -> HttpResponse {
    HttpResponse::InternalServerError().body("the fixture failed on purpose")
}

/// Streams a byte every 100 ms for 30 s. Streaming (rather than sleeping) lets this actix
/// server notice when the caller hangs up: the next write fails and the body, with the
/// in-flight count it holds, is dropped.
async fn slow(gauge: web::Data<Arc<AtomicUsize>>) -> HttpResponse {
    let counted = InFlight::enter(&gauge);
    let ticks = futures_util::stream::unfold((counted, 0u32), |(counted, tick)| async move {
        if tick == 300 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        Some((
            Ok::<_, actix_web::Error>(web::Bytes::from_static(b" ")),
            (counted, tick + 1),
        ))
    });
    HttpResponse::Ok()
        .content_type("text/plain")
        .streaming(ticks)
}

/// Answers after one second (the seed scenario's slow upstream tool).
async fn nap() -> HttpResponse {
    tokio::time::sleep(Duration::from_secs(1)).await;
    HttpResponse::Ok().json(json!({ "slept_ms": 1000 }))
}

/// Answers with the request's header names and the `Authorization` value it got, if any.
async fn headers(request: actix_web::HttpRequest) -> HttpResponse {
    let names: Vec<String> = request
        .headers()
        .keys()
        .map(|name| name.to_string())
        .collect();
    let authorization = request
        .headers()
        .get("authorization")
        .and_then(|value| value.to_str().ok());
    HttpResponse::Ok().json(json!({ "headers": names, "authorization": authorization }))
}

/// The W3C trace context the caller sent.
async fn traceparent(request: actix_web::HttpRequest) -> HttpResponse {
    let value = request
        .headers()
        .get("traceparent")
        .and_then(|value| value.to_str().ok());
    HttpResponse::Ok().json(json!({ "traceparent": value }))
}

async fn text() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain")
        .body("plain text answer")
}

/// A client ID metadata document served at its own URL (`/client/{kind}`): `good`, or one
/// that names another `client_id`, carries a secret, or registers a redirect off loopback.
async fn client_document(request: actix_web::HttpRequest, kind: web::Path<String>) -> HttpResponse {
    let own = format!("http://{}/client/{kind}", request.connection_info().host());
    let mut document = json!({
        "client_id": own,
        "client_name": "Doc client",
        "redirect_uris": ["http://127.0.0.1/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    });
    match kind.as_str() {
        "good" => {}
        "other-id" => document["client_id"] = json!("https://elsewhere.example/client"),
        "secret" => document["client_secret"] = json!("s3cret"),
        "evil-redirect" => document["redirect_uris"] = json!(["http://evil.example/cb"]),
        _ => return HttpResponse::NotFound().finish(),
    }
    HttpResponse::Ok().json(document)
}

impl RestFixture {
    /// Starts the fixture on 127.0.0.1 with an ephemeral port.
    pub async fn start() -> Self {
        let slow_in_flight = Arc::new(AtomicUsize::new(0));
        let gauge = web::Data::new(slow_in_flight.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(gauge.clone())
                .route("/weather/{city}", web::get().to(weather))
                .route("/echo", web::post().to(echo))
                .route("/fail", web::get().to(fail))
                .route("/slow", web::get().to(slow))
                .route("/text", web::get().to(text))
                .route("/nap", web::get().to(nap))
                .route("/headers", web::get().to(headers))
                .route("/traceparent", web::get().to(traceparent))
                .route("/client/{kind}", web::get().to(client_document))
        })
        .workers(2)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("bind the fixture");
        let base = format!("http://{}", server.addrs()[0]);
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        RestFixture {
            base,
            slow_in_flight,
            handle,
        }
    }

    /// Calls to `/slow` in progress.
    pub fn slow_calls(&self) -> usize {
        self.slow_in_flight.load(Ordering::SeqCst)
    }

    /// Stops it.
    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}
