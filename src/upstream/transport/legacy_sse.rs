//! The legacy HTTP+SSE transport (protocol 2024-11-05): one long GET stream carries every
//! message from the upstream; the first event (`endpoint`) names where to POST. Responses,
//! questions and notifications are routed from the stream to the request they belong to.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::Value;

use super::routes::{Reply, Routes};
use super::{
    ClientEnd, MAX_EVENT_BYTES, Notifications, OnChange, Pace, Transport, describe, post_json,
};
use crate::protocol::{Era, RawObject};
use crate::upstream::sse::EventReader;
use crate::upstream::{CallError, Target};

/// An open HTTP+SSE link: where to POST, and the requests waiting for a response on the stream.
pub struct LegacySse {
    poster: Poster,
    routes: Arc<Routes>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for LegacySse {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Where messages to the upstream are POSTed (the `endpoint` event's URL).
#[derive(Clone)]
struct Poster {
    http: crate::egress::HttpClient,
    url: url::Url,
    headers: std::collections::BTreeMap<String, String>,
}

impl Poster {
    async fn post(&self, body: &Value) -> Result<reqwest::Response, CallError> {
        post_json(&self.http, &self.url, &self.headers, &[], body).await
    }
}

impl LegacySse {
    /// Opens the stream and waits for its `endpoint` event, which must name the registered
    /// origin (the upstream's credentials go nowhere else).
    pub async fn open(http: crate::egress::HttpClient, target: Target) -> Result<Self, CallError> {
        let mut request = http.get(&target.url)?.header("accept", "text/event-stream");
        for (name, value) in &target.headers {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| CallError::Transport(describe(&e)))?;
        if !response.status().is_success() {
            return Err(CallError::Transport(format!(
                "the SSE endpoint answered HTTP {}",
                response.status()
            )));
        }
        let mut events = EventReader::new(response, MAX_EVENT_BYTES);
        let endpoint = loop {
            match events.next().await.map_err(CallError::Transport)? {
                Some(event) if event.name == "endpoint" => break event.data,
                Some(_) => continue,
                None => {
                    return Err(CallError::Transport(
                        "the SSE stream ended before its endpoint event".into(),
                    ));
                }
            }
        };
        let base = url::Url::parse(&target.url)
            .map_err(|e| CallError::Transport(format!("bad upstream URL: {e}")))?;
        let post_url = base
            .join(endpoint.trim())
            .map_err(|e| CallError::Transport(format!("bad endpoint event {endpoint:?}: {e}")))?;
        if !crate::egress::same_origin(&base, &post_url) {
            return Err(CallError::Transport(format!(
                "the SSE endpoint event points to another origin ({post_url}); only the \
                 registered origin {} is used",
                base.origin().ascii_serialization()
            )));
        }
        let poster = Poster {
            http,
            url: post_url,
            headers: target.headers,
        };
        let routes: Arc<Routes> = Arc::default();
        let reader = {
            let routes = routes.clone();
            let replier = poster.clone();
            let reply: Reply = Arc::new(move |answer: Value| {
                let poster = replier.clone();
                Box::pin(async move { poster.post(&answer).await.map(|_| ()) })
            });
            tokio::spawn(async move {
                let mut pace = Pace::new();
                while let Ok(Some(event)) = events.next().await {
                    routes.deliver(event.data.as_bytes(), &mut pace, &reply);
                }
                // The stream ended: every waiting request fails (its sender is dropped).
                routes.end();
            })
        };
        Ok(LegacySse {
            poster,
            routes,
            reader,
        })
    }
}

impl Transport for LegacySse {
    fn request<'a>(
        &'a self,
        body: &'a Value,
        _method: &'a str,
        relay: Notifications,
    ) -> BoxFuture<'a, Result<RawObject, CallError>> {
        Box::pin(async move {
            // The routes are removed whatever happens (an error, a timeout, a cancelled caller).
            let (_routes, receiver) = self.routes.follow(body, relay);
            self.poster.post(body).await?;
            receiver
                .await
                .map_err(|_| CallError::Transport("the upstream's SSE stream ended".into()))?
        })
    }

    fn notify(&self, body: Value) -> BoxFuture<'_, Result<(), CallError>> {
        Box::pin(async move { self.poster.post(&body).await.map(|_| ()) })
    }

    fn negotiated(&self, _era: Era) {}

    fn watch(&self, on_change: OnChange, _listen_id: i64) -> super::Opened {
        self.routes.watch(on_change);
        // Its one stream is open already.
        Box::pin(async {})
    }

    fn dedicate(&self, client: Arc<dyn ClientEnd>) {
        self.routes.dedicate(client);
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        // The session ends with the stream, when the link is dropped.
        Box::pin(async {})
    }
}
