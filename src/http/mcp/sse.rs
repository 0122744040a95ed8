//! A Server-Sent Events response body fed by a channel, with keep-alive comments and an action
//! run when the client goes away (the body is dropped). A request's response stream also
//! drives the request's own work ([`SseBody::driving`]): no task is spawned for it, the work
//! runs when the body is polled, and dropping the body (the client went away) drops the work.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::web::Bytes;
use futures_util::Stream;
use serde_json::Value;
use tokio::sync::mpsc;

/// How often an idle long-lived stream (`subscriptions/listen`, a session stream) sends a
/// comment, so intermediaries keep it open and a vanished client is noticed.
pub const LONG_LIVED_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How often a request's response stream sends a comment while the request runs. actix-web
/// notices a client that went away only when a write fails, and closing a response stream
/// cancels its request (2026-07-28), so this bounds how long abandoned work runs.
pub const REQUEST_KEEP_ALIVE: Duration = Duration::from_secs(1);

/// One SSE event.
#[derive(Debug, Clone)]
pub enum SseEvent {
    /// A JSON-RPC message (`event: message`).
    Message(Value),
    /// A JSON-RPC message already encoded (`event: message`); its line breaks, which JSON
    /// allows only between tokens, end `data` lines.
    Encoded(String),
    /// The legacy transport's `endpoint` event with the URL to POST messages to.
    Endpoint(String),
    /// Any other named event with JSON data (the console's live figures).
    Named(&'static str, Value),
}

impl SseEvent {
    fn encode(&self) -> Bytes {
        match self {
            SseEvent::Message(message) => {
                Bytes::from(format!("event: message\ndata: {message}\n\n"))
            }
            SseEvent::Encoded(message) => {
                let mut event = String::with_capacity(message.len() + 24);
                event.push_str("event: message\n");
                let bytes = message.as_bytes();
                let mut start = 0;
                // Line breaks are rare (a pretty-printed upstream result): found with a
                // vectorised search, not char by char.
                for end in memchr::memchr2_iter(b'\n', b'\r', bytes) {
                    event.push_str("data: ");
                    event.push_str(&message[start..end]);
                    event.push('\n');
                    start = end + 1;
                }
                event.push_str("data: ");
                event.push_str(&message[start..]);
                event.push_str("\n\n");
                Bytes::from(event)
            }
            SseEvent::Endpoint(url) => Bytes::from(format!("event: endpoint\ndata: {url}\n\n")),
            SseEvent::Named(name, data) => Bytes::from(format!("event: {name}\ndata: {data}\n\n")),
        }
    }
}

impl From<Value> for SseEvent {
    fn from(message: Value) -> Self {
        SseEvent::Message(message)
    }
}

/// Runs when the stream's body is dropped (the client disconnected or the stream ended).
pub type OnClose = Box<dyn FnOnce() + 'static>;

/// Work a response stream drives: its outcome is the stream's last event (none: no event).
pub type Work = Pin<Box<dyn Future<Output = Option<SseEvent>> + 'static>>;

/// The body stream.
pub struct SseBody<T> {
    receiver: mpsc::Receiver<T>,
    keep_alive: tokio::time::Interval,
    on_close: Option<OnClose>,
    /// The stream's place in its principal's quota, given back when the body is dropped.
    _permit: Option<crate::quota::Permit>,
    stage: Stage,
}

/// Where a body is.
enum Stage {
    /// Events until every sender is dropped.
    Relaying,
    /// Events while `work` runs, then its outcome.
    Driving(Work),
    /// The work ended: the events it sent, then its outcome, then the end.
    Finishing(Option<SseEvent>),
}

impl<T> SseBody<T> {
    /// A body that ends when every sender is dropped, with a comment every `keep_alive`.
    pub fn new(
        receiver: mpsc::Receiver<T>,
        on_close: Option<OnClose>,
        keep_alive: Duration,
    ) -> Self {
        let mut keep_alive = tokio::time::interval(keep_alive);
        keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        keep_alive.reset();
        SseBody {
            receiver,
            keep_alive,
            on_close,
            _permit: None,
            stage: Stage::Relaying,
        }
    }

    /// A body that runs `work` as it is polled: the events `work` sends to `receiver`'s
    /// channel, then its outcome, then the end.
    pub fn driving(
        receiver: mpsc::Receiver<T>,
        work: Work,
        on_close: Option<OnClose>,
        keep_alive: Duration,
    ) -> Self {
        let mut body = Self::new(receiver, on_close, keep_alive);
        body.stage = Stage::Driving(work);
        body
    }

    /// The same body, holding `permit` for as long as it lives.
    pub fn holding(mut self, permit: crate::quota::Permit) -> Self {
        self._permit = Some(permit);
        self
    }
}

impl<T> Drop for SseBody<T> {
    fn drop(&mut self) {
        if let Some(on_close) = self.on_close.take() {
            on_close();
        }
    }
}

impl<T: Into<SseEvent> + Unpin> Stream for SseBody<T> {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let emit = |event: SseEvent| Poll::Ready(Some(Ok(event.encode())));
        match &mut this.stage {
            Stage::Relaying => match this.receiver.poll_recv(cx) {
                Poll::Ready(Some(event)) => {
                    this.keep_alive.reset();
                    emit(event.into())
                }
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => this.keep_alive_or_pending(cx),
            },
            Stage::Driving(work) => {
                // What the work sent so far goes before anything else.
                if let Poll::Ready(Some(event)) = this.receiver.poll_recv(cx) {
                    this.keep_alive.reset();
                    return emit(event.into());
                }
                match work.as_mut().poll(cx) {
                    Poll::Ready(outcome) => {
                        this.stage = Stage::Finishing(outcome);
                        Pin::new(this).poll_next(cx)
                    }
                    Poll::Pending => this.keep_alive_or_pending(cx),
                }
            }
            Stage::Finishing(outcome) => match this.receiver.try_recv() {
                Ok(event) => emit(event.into()),
                Err(_) => match outcome.take() {
                    Some(last) => emit(last),
                    None => Poll::Ready(None),
                },
            },
        }
    }
}

impl<T> SseBody<T> {
    fn keep_alive_or_pending(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, actix_web::Error>>> {
        match self.keep_alive.poll_tick(cx) {
            Poll::Ready(_) => Poll::Ready(Some(Ok(Bytes::from_static(b": keep-alive\n\n")))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A 200 `text/event-stream` response for a body that drives a request's work: when the work
/// ends within `within` with nothing sent before its last event, the whole stream as one body
/// with a length (one write for the gateway, one read for the client, instead of headers, the
/// event and the end of the stream each on their own); otherwise streamed, starting with what
/// it has produced so far. Holding the headers that long costs nothing a stream would give: a
/// client that went away is noticed at the first keep-alive, which comes no sooner.
pub async fn driven_response<T: Into<SseEvent> + Unpin + 'static>(
    mut body: SseBody<T>,
    within: Duration,
    extra_headers: &[(&str, String)],
) -> HttpResponse {
    use futures_util::{FutureExt, StreamExt};
    let deadline = tokio::time::Instant::now() + within;
    let mut produced: Vec<Bytes> = Vec::new();
    match tokio::time::timeout_at(deadline, body.next()).await {
        Ok(Some(Ok(event))) => produced.push(event),
        // Nothing to send (a cancelled request).
        Ok(None) => return builder(extra_headers).body(Bytes::new()),
        // Slow: stream, as the client sees the keep-alives and later events at once.
        Ok(Some(Err(_))) | Err(_) => return response(body, extra_headers),
    }
    loop {
        match body.next().now_or_never() {
            Some(Some(Ok(event))) => produced.push(event),
            Some(None) => return builder(extra_headers).body(produced.concat()),
            // More is coming: stream from here, what was produced first.
            Some(Some(Err(_))) | None => {
                let prefix = futures_util::stream::iter(produced.into_iter().map(Ok));
                return builder(extra_headers).streaming(prefix.chain(body));
            }
        }
    }
}

fn builder(extra_headers: &[(&str, String)]) -> actix_web::HttpResponseBuilder {
    let mut builder = HttpResponse::Ok();
    builder
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"));
    for (name, value) in extra_headers {
        builder.insert_header((*name, value.clone()));
    }
    builder
}

/// A 200 `text/event-stream` response streaming `body`.
pub fn response<T: Into<SseEvent> + Unpin + 'static>(
    body: SseBody<T>,
    extra_headers: &[(&str, String)],
) -> HttpResponse {
    builder(extra_headers).streaming(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An encoded message with line breaks (an upstream's pretty-printed result, passed on as
    /// it was written) becomes several `data` lines, which a client joins back into the same
    /// JSON.
    #[test]
    fn an_encoded_message_with_line_breaks_is_split_into_data_lines() {
        let event = SseEvent::Encoded("{\"a\":\r\n [1,\n2]}".into()).encode();
        assert_eq!(
            &event[..],
            b"event: message\ndata: {\"a\":\ndata: \ndata:  [1,\ndata: 2]}\n\n"
        );
        let single = SseEvent::Encoded("{}".into()).encode();
        assert_eq!(&single[..], b"event: message\ndata: {}\n\n");
    }
}
