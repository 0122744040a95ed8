//! A small REST service on loopback that REST-backed tools call.

use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

/// The running fixture.
pub struct RestFixture {
    pub base: String,
    handle: actix_web::dev::ServerHandle,
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

async fn slow() -> HttpResponse {
    tokio::time::sleep(Duration::from_secs(30)).await;
    HttpResponse::Ok().body("late")
}

async fn text() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain")
        .body("plain text answer")
}

impl RestFixture {
    /// Starts the fixture on 127.0.0.1 with an ephemeral port.
    pub async fn start() -> Self {
        let server = HttpServer::new(|| {
            App::new()
                .route("/weather/{city}", web::get().to(weather))
                .route("/echo", web::post().to(echo))
                .route("/fail", web::get().to(fail))
                .route("/slow", web::get().to(slow))
                .route("/text", web::get().to(text))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("bind the fixture");
        let base = format!("http://{}", server.addrs()[0]);
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        RestFixture { base, handle }
    }

    /// Stops it.
    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}
