//! A round-robin HTTP balancer in front of gateway replicas: every request goes to the next
//! replica in turn (no stickiness, as `docker/nginx.conf`), a replica that refuses the
//! connection is skipped for the next, and each replica's share is counted.
//!
//! Request and response bodies are passed whole (tool calls, not long-lived streams): this is
//! the load test's balancer, not a general proxy.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// Headers that belong to one connection, not to the request or response.
const HOP_BY_HOP: [&str; 5] = [
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
];

struct State {
    backends: Vec<String>,
    http: reqwest::Client,
    next: AtomicUsize,
    served: Vec<AtomicU64>,
    failovers: AtomicU64,
}

/// The running balancer.
pub struct Balancer {
    address: SocketAddr,
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

impl Balancer {
    /// Listens on a free loopback port in front of `backends` (base URLs), forwarding with
    /// `http`.
    pub async fn start(backends: Vec<String>, http: reqwest::Client) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("cannot bind the balancer")?;
        let address = listener.local_addr()?;
        let state = Arc::new(State {
            served: backends.iter().map(|_| AtomicU64::new(0)).collect(),
            backends,
            http,
            next: AtomicUsize::new(0),
            failovers: AtomicU64::new(0),
        });
        let server = tokio::spawn(serve(listener, state.clone()));
        Ok(Balancer {
            address,
            state,
            server,
        })
    }

    /// Its base URL.
    pub fn base(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Requests each replica answered so far, in the order given.
    pub fn served(&self) -> Vec<u64> {
        self.state
            .served
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .collect()
    }

    /// Requests sent on to the next replica because one refused the connection.
    pub fn failovers(&self) -> u64 {
        self.state.failovers.load(Ordering::Relaxed)
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| forward(state.clone(), request));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

fn answer(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response
}

/// Sends `request` to the next replica (skipping those that refuse the connection).
async fn forward(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(|body| body.to_bytes()) else {
        return Ok(answer(StatusCode::BAD_REQUEST, "unreadable body".into()));
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |path| path.as_str())
        .to_owned();
    let count = state.backends.len();
    let first = state.next.fetch_add(1, Ordering::Relaxed);
    for attempt in 0..count {
        let index = (first + attempt) % count;
        let mut outgoing = state
            .http
            .request(
                parts.method.clone(),
                format!("{}{path}", state.backends[index]),
            )
            .body(body.clone());
        for (name, value) in &parts.headers {
            if !HOP_BY_HOP.contains(&name.as_str()) {
                outgoing = outgoing.header(name, value);
            }
        }
        match outgoing.send().await {
            Ok(reply) => {
                state.served[index].fetch_add(1, Ordering::Relaxed);
                let status = reply.status();
                let headers = reply.headers().clone();
                let Ok(bytes) = reply.bytes().await else {
                    return Ok(answer(StatusCode::BAD_GATEWAY, "broken reply".into()));
                };
                let mut response = Response::new(Full::new(bytes));
                *response.status_mut() = status;
                for (name, value) in &headers {
                    if !HOP_BY_HOP.contains(&name.as_str()) {
                        response.headers_mut().append(name, value.clone());
                    }
                }
                return Ok(response);
            }
            Err(error) if error.is_connect() => {
                state.failovers.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                return Ok(answer(StatusCode::BAD_GATEWAY, error.to_string()));
            }
        }
    }
    Ok(answer(
        StatusCode::SERVICE_UNAVAILABLE,
        "no replica answers".into(),
    ))
}
