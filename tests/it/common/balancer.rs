//! A round-robin HTTP load balancer with no stickiness, as a test's stand-in for the one in
//! front of a deployment: every request goes to the next replica in turn, whatever connection
//! it came on; responses (event streams too) are passed through as they arrive. A replica that
//! refuses the connection is skipped.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

/// Hop-by-hop headers (and those the next hop sets itself), not passed on.
const NOT_FORWARDED: &[&str] = &[
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
];

struct Backends {
    bases: Vec<String>,
    next: AtomicUsize,
    served: Vec<AtomicUsize>,
    client: reqwest::Client,
}

/// The running balancer.
pub struct Balancer {
    /// Its address (`http://127.0.0.1:<port>`).
    pub base: String,
    backends: Arc<Backends>,
    server: actix_web::dev::ServerHandle,
}

impl Balancer {
    /// Balances over the replicas at `bases`.
    pub async fn start(bases: Vec<String>) -> Self {
        let backends = Arc::new(Backends {
            served: bases.iter().map(|_| AtomicUsize::new(0)).collect(),
            bases,
            next: AtomicUsize::new(0),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
        });
        let data = web::Data::from(backends.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
                .default_service(web::to(forward))
        })
        .workers(2)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("bind the balancer");
        let base = format!("http://{}", server.addrs()[0]);
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Balancer {
            base,
            backends,
            server: handle,
        }
    }

    /// How many requests each replica has been sent.
    pub fn shares(&self) -> Vec<usize> {
        self.backends
            .served
            .iter()
            .map(|count| count.load(Ordering::SeqCst))
            .collect()
    }

    /// Stops it (its streams end).
    pub async fn stop(self) {
        self.server.stop(false).await;
    }
}

async fn forward(
    request: HttpRequest,
    body: web::Bytes,
    backends: web::Data<Backends>,
) -> HttpResponse {
    let count = backends.bases.len();
    let method =
        reqwest::Method::from_bytes(request.method().as_str().as_bytes()).expect("an HTTP method");
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |path| path.as_str());
    for _ in 0..count {
        let index = backends.next.fetch_add(1, Ordering::SeqCst) % count;
        let mut outbound = backends
            .client
            .request(method.clone(), format!("{}{path}", backends.bases[index]))
            .body(body.clone());
        for (name, value) in request.headers() {
            if !NOT_FORWARDED.contains(&name.as_str()) {
                outbound = outbound.header(name.as_str(), value.as_bytes());
            }
        }
        let response = match outbound.send().await {
            Ok(response) => response,
            // That replica is gone: the next one.
            Err(error) if error.is_connect() => continue,
            Err(error) => return HttpResponse::BadGateway().body(error.to_string()),
        };
        backends.served[index].fetch_add(1, Ordering::SeqCst);
        let status =
            actix_web::http::StatusCode::from_u16(response.status().as_u16()).expect("a status");
        let mut reply = HttpResponse::build(status);
        for (name, value) in response.headers() {
            if !NOT_FORWARDED.contains(&name.as_str()) {
                reply.append_header((name.as_str(), value.as_bytes()));
            }
        }
        return reply.streaming(response.bytes_stream());
    }
    HttpResponse::BadGateway().body("no replica answers")
}
