//! How JSON-RPC messages travel between the gateway and one upstream: a [`Transport`] sends
//! requests and notifications and relays, while a request runs, what the upstream sends about it
//! (notifications, and questions for the client). [`streamable::StreamableHttp`] speaks the
//! Streamable HTTP transport of both eras, [`legacy_sse::LegacySse`] the old HTTP+SSE one. The
//! protocol above them (handshake, `_meta`, ids, paging) is [`super::Connection`]'s.

pub mod legacy_sse;
mod routes;
pub mod stdio;
pub mod streamable;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::CallError;
use crate::protocol::{Era, RawObject};

/// The largest single SSE event read from an upstream.
pub(super) const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// One way of carrying messages to an upstream and back.
pub trait Transport: Send + Sync {
    /// Sends a request (`body` has an `id`) and waits for its response: the result as the
    /// upstream wrote it, or the error it answered; what the upstream sends about the request
    /// meanwhile goes to `relay`.
    fn request<'a>(
        &'a self,
        body: &'a Value,
        method: &'a str,
        relay: Notifications,
    ) -> BoxFuture<'a, Result<RawObject, CallError>>;

    /// Sends a notification (no response is expected).
    fn notify(&self, body: Value) -> BoxFuture<'_, Result<(), CallError>>;

    /// Adopts what the handshake negotiated (the version every later message carries).
    fn negotiated(&self, era: Era);

    /// Follows the upstream's change notifications, calling `on_change` for each list change,
    /// until the transport is dropped. `listen_id` is the request id a 2026-07-28 upstream's
    /// `subscriptions/listen` stream is opened with. The future it returns ends once the stream
    /// is open (or will not be): a session-era upstream sends what it says outside a call's own
    /// stream there, so calls wait for it.
    fn watch(&self, on_change: OnChange, listen_id: i64) -> Opened;

    /// Ends the upstream session, if the transport has one (best effort).
    fn close(&self) -> BoxFuture<'_, ()>;

    /// Gives the session to one client: what the upstream sends that names no call of that
    /// client's in flight goes to `client`, instead of being declined or dropped.
    fn dedicate(&self, client: Arc<dyn ClientEnd>);

    /// How the transport ended, once it can carry no more requests (a stdio upstream's process
    /// exited); a connection that ended is made again before the next call.
    fn ended(&self) -> Option<crate::upstream::process::Exit> {
        None
    }

    /// For a transport that is a process of the gateway's: ends when the process has exited,
    /// telling how.
    fn exited(&self) -> Option<BoxFuture<'static, crate::upstream::process::Exit>> {
        None
    }
}

/// The one client an upstream session is dedicated to.
pub trait ClientEnd: Send + Sync {
    /// A notification for the client's own stream (a log message, a resource update).
    fn notify(&self, message: Value);
    /// A question for the client (sampling, elicitation, roots); its answer, `{"result"}` or
    /// `{"error"}`.
    fn ask(&self, message: Value) -> BoxFuture<'static, Value>;
    /// The log level the client asked for, told to each upstream session it gets.
    fn log_level(&self) -> Option<crate::protocol::LogLevel>;
}

/// Where a notification that names no call goes: the call it can be attributed to, else the
/// client the session is dedicated to, else nowhere.
pub(super) fn notify_or_drop(
    route: Option<mpsc::Sender<Value>>,
    client: Option<Arc<dyn ClientEnd>>,
    message: Value,
) {
    match (route, client) {
        (Some(route), _) => {
            let _ = route.try_send(message);
        }
        (None, Some(client)) => client.notify(message),
        (None, None) => tracing::debug!(
            "a notification from the upstream names no call, and not exactly one is in flight: not relayed"
        ),
    }
}

/// Ends once a transport's notification stream is open, or will not be.
pub type Opened = BoxFuture<'static, ()>;

/// Called when the upstream says one of its lists changed.
pub type OnChange = Arc<dyn Fn() + Send + Sync>;

/// A request the upstream sent us during a call, and where its response goes.
pub type ClientRequest = (Value, oneshot::Sender<Value>);

/// Where a forwarded request's notifications (progress, logs) and the upstream's own requests
/// (sampling, elicitation, roots) go while it runs.
#[derive(Clone, Default)]
pub struct Notifications {
    /// Notifications about the request.
    pub notifications: Option<mpsc::Sender<Value>>,
    /// Requests from the upstream, to relay to the client; without it they are declined.
    pub requests: Option<mpsc::Sender<ClientRequest>>,
    /// What the client can be asked (`sampling`, `elicitation`, `roots`): declared to a
    /// 2026-07-28 upstream as the request's client capabilities.
    pub capabilities: Value,
}

impl Notifications {
    /// Nothing is relayed.
    pub fn none() -> Self {
        Notifications::default()
    }
}

/// The upstream's questions being answered on one stream, by the upstream's request id: a
/// `notifications/cancelled` naming one withdraws it (its answering stops; dropping it tells
/// the client, see `Session::request_client`, and no answer is sent).
#[derive(Clone, Default)]
pub(super) struct Withdrawals(Arc<Mutex<HashMap<String, CancellationToken>>>);

impl Withdrawals {
    /// Follows the question `id` until the returned guard is dropped.
    pub(super) fn watch(&self, id: &Value) -> Withdrawal {
        let token = CancellationToken::new();
        let key = id.to_string();
        lock(&self.0).insert(key.clone(), token.clone());
        Withdrawal {
            token,
            key,
            withdrawals: self.clone(),
        }
    }

    /// Withdraws the question `message` cancels, if it is the upstream's
    /// `notifications/cancelled` for one being answered; whether it was.
    pub(super) fn withdraw(&self, message: &Value) -> bool {
        if message.get("method").and_then(Value::as_str) != Some("notifications/cancelled") {
            return false;
        }
        let Some(id) = message.pointer("/params/requestId") else {
            return false;
        };
        match lock(&self.0).remove(&id.to_string()) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }
}

/// One question followed for withdrawal.
pub(super) struct Withdrawal {
    token: CancellationToken,
    key: String,
    withdrawals: Withdrawals,
}

impl Withdrawal {
    /// `answering`'s answer, or `None` when the upstream withdrew the question first.
    pub(super) async fn answer(self, answering: impl Future<Output = Value>) -> Option<Value> {
        tokio::select! {
            answer = answering => Some(answer),
            _ = self.token.cancelled() => None,
        }
    }
}

impl Drop for Withdrawal {
    fn drop(&mut self) {
        lock(&self.withdrawals.0).remove(&self.key);
    }
}

/// Notifications one upstream stream may relay per second, after a burst of
/// [`NOTIFICATION_BURST`]: a flood of log messages or list changes is dropped past it, so it
/// costs the gateway (and the client) no more than this, whatever the upstream sends.
const NOTIFICATIONS_PER_SECOND: f64 = 100.0;
const NOTIFICATION_BURST: f64 = 500.0;

/// The pace of one stream's notifications (a token bucket).
pub(super) struct Pace {
    tokens: f64,
    last: std::time::Instant,
    dropped: u64,
}

impl Pace {
    pub(super) fn new() -> Self {
        Pace {
            tokens: NOTIFICATION_BURST,
            last: std::time::Instant::now(),
            dropped: 0,
        }
    }

    /// Whether one more notification may be relayed now (the first one dropped is logged).
    pub(super) fn allow(&mut self) -> bool {
        let now = std::time::Instant::now();
        let earned = now.duration_since(self.last).as_secs_f64() * NOTIFICATIONS_PER_SECOND;
        self.tokens = (self.tokens + earned).min(NOTIFICATION_BURST);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return true;
        }
        if self.dropped == 0 {
            tracing::warn!(
                per_second = NOTIFICATIONS_PER_SECOND,
                "an upstream sends notifications faster than they are relayed; the excess is dropped"
            );
        }
        self.dropped += 1;
        false
    }
}

/// Whether a notification says a (subscribed) resource changed.
pub(super) fn is_resource_update(message: &Value) -> bool {
    message.get("method").and_then(Value::as_str) == Some("notifications/resources/updated")
}

/// Whether a notification announces a change of the upstream's lists or resources.
pub(super) fn is_change(message: &Value) -> bool {
    matches!(
        message.get("method").and_then(Value::as_str),
        Some(
            "notifications/tools/list_changed"
                | "notifications/prompts/list_changed"
                | "notifications/resources/list_changed"
        )
    )
}

/// A message from the upstream, read once.
pub(super) enum Message {
    /// A response to one of the gateway's requests: its result as the upstream wrote it, or
    /// its error.
    Response {
        /// The request's id.
        id: Value,
        /// The result, or what went wrong.
        outcome: Result<RawObject, CallError>,
    },
    /// A request or a notification.
    Other(Value),
}

/// The members that tell a message's kind; the rest is skipped, not parsed.
#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(default, deserialize_with = "present")]
    id: Option<Value>,
    #[serde(default, borrow, deserialize_with = "present")]
    method: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    error: Option<&'a RawValue>,
}

/// A member that is there, even as `null` (absent members are `None` by `default`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

impl Message {
    /// Reads a JSON-RPC message (`None` when it is not JSON). A response's result is kept as
    /// the upstream's text: it is passed on, not rebuilt; requests and notifications are parsed.
    pub(super) fn read(text: &[u8]) -> Option<Message> {
        let envelope: Envelope = serde_json::from_slice(text).ok()?;
        let outcome = match (envelope.method, envelope.result, envelope.error) {
            (None, _, Some(error)) => Err(rpc_error(
                &serde_json::from_str(error.get()).unwrap_or(Value::Null),
            )),
            (None, Some(result), None) => RawObject::parse(result.get()).map_err(|_| {
                CallError::Transport("the upstream's response has no result object".into())
            }),
            _ => return serde_json::from_slice(text).ok().map(Message::Other),
        };
        Some(Message::Response {
            id: envelope.id.unwrap_or(Value::Null),
            outcome,
        })
    }
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Turns an `error` object into a [`CallError`].
fn rpc_error(error: &Value) -> CallError {
    CallError::Rpc {
        code: error.get("code").and_then(Value::as_i64).unwrap_or(-32603),
        message: error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("unknown error")
            .to_owned(),
        data: error.get("data").cloned(),
    }
}

/// Puts a question from the upstream to whoever handles this call's questions; returns their
/// answer (`{"result"}` or `{"error"}`).
pub(super) async fn ask(questions: &mpsc::Sender<ClientRequest>, message: Value) -> Value {
    let (sender, receiver) = oneshot::channel();
    if questions.send((message, sender)).await.is_err() {
        return json!({ "error": { "code": -32603, "message": "the call ended before the client could be asked" } });
    }
    receiver.await.unwrap_or_else(
        |_| json!({ "error": { "code": -32603, "message": "the client did not answer" } }),
    )
}

/// The most questions one upstream connection has answered at once, from a stream that names no
/// call (the legacy SSE stream, a session's GET stream): an upstream flooding its stream with
/// requests gets no more work out of the gateway than this.
const ANSWERING_AT_ONCE: usize = 16;

/// The answering of an upstream's stream-borne questions, a bounded number at a time.
#[derive(Clone)]
pub(super) struct Answering(Arc<tokio::sync::Semaphore>);

impl Default for Answering {
    fn default() -> Self {
        Answering(Arc::new(tokio::sync::Semaphore::new(ANSWERING_AT_ONCE)))
    }
}

impl Answering {
    /// Runs `answer` on a task of its own while fewer than [`ANSWERING_AT_ONCE`] run; past that
    /// the question is dropped unanswered (the upstream's own timeout ends it).
    pub(super) fn spawn(&self, answer: impl Future<Output = ()> + Send + 'static) {
        match self.0.clone().try_acquire_owned() {
            Ok(permit) => {
                tokio::spawn(async move {
                    answer.await;
                    drop(permit);
                });
            }
            Err(_) => tracing::warn!(
                limit = ANSWERING_AT_ONCE,
                "an upstream asks more questions at once than are answered; one is dropped"
            ),
        }
    }
}

/// Where a stream-borne question from the upstream goes: the call it can be attributed to,
/// else the client the session is dedicated to; answered with an error saying why otherwise.
pub(super) async fn ask_or_decline(
    route: Option<mpsc::Sender<ClientRequest>>,
    client: Option<Arc<dyn ClientEnd>>,
    message: Value,
) -> Value {
    match (route, client) {
        (Some(route), _) => ask(&route, message).await,
        (None, Some(client)) => client.ask(message).await,
        (None, None) => json!({ "error": {
            "code": -32601,
            "message": "mcpgate cannot tell which client this request is for (none, or several calls, are in flight on the shared session)",
        }}),
    }
}

/// The JSON-RPC response to the upstream's request `id` carrying `answer`.
pub(super) fn answer_message(id: Value, answer: &Value) -> Value {
    let mut body = json!({ "jsonrpc": "2.0", "id": id });
    match (answer.get("result"), answer.get("error")) {
        (Some(result), _) => body["result"] = result.clone(),
        (None, Some(error)) => body["error"] = error.clone(),
        (None, None) => {
            body["error"] = json!({ "code": -32603, "message": "the client's answer was empty" })
        }
    }
    body
}

/// POSTs a JSON-RPC message with the upstream's headers and `extra`.
pub(super) async fn post_json(
    http: &crate::egress::HttpClient,
    url: &url::Url,
    headers: &std::collections::BTreeMap<String, String>,
    extra: &[(&str, String)],
    body: &Value,
) -> Result<reqwest::Response, CallError> {
    let mut request = http
        .request_to(reqwest::Method::POST, url)?
        .header("accept", "application/json, text/event-stream")
        .json(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    for (name, value) in extra {
        request = request.header(*name, value);
    }
    let span = crate::otel_span!(
        "upstream",
        otel.name = %format!("{} {}", body["method"].as_str().unwrap_or("POST"), url.host_str().unwrap_or_default()),
        otel.kind = "client",
        mcp.method.name = body["method"].as_str().unwrap_or_default(),
        url.full = %url,
    );
    let request = span.in_scope(|| crate::telemetry::inject(request));
    tracing::Instrument::instrument(request.send(), span)
        .await
        .map_err(|error| CallError::Transport(describe(&error)))
}

/// The innermost cause of a reqwest error ("connection refused" rather than "error sending
/// request").
pub(crate) fn describe(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message = cause.to_string();
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// An upstream flooding its stream with questions gets a bounded number answered at once;
    /// the rest are dropped, not queued.
    #[tokio::test]
    async fn answering_is_bounded() {
        let answering = Answering::default();
        let started = Arc::new(AtomicUsize::new(0));
        for _ in 0..ANSWERING_AT_ONCE + 5 {
            let started = started.clone();
            answering.spawn(async move {
                started.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<()>().await;
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(started.load(Ordering::SeqCst), ANSWERING_AT_ONCE);
    }

    /// A response's result is kept as the upstream wrote it; errors, requests and notifications
    /// are told apart by their members, whatever their order.
    #[test]
    fn messages_are_read_once_and_results_kept_as_text() {
        let read = |text: &str| Message::read(text.as_bytes());
        let Some(Message::Response { id, outcome }) = read(
            r#"{"result": {"content": [ {"text":"a"} ], "isError" :false},"id":7,"jsonrpc":"2.0"}"#,
        ) else {
            panic!("a response");
        };
        assert_eq!(id, json!(7));
        let result = outcome.unwrap();
        assert_eq!(result.get("content").unwrap().get(), r#"[ {"text":"a"} ]"#);
        let Some(Message::Response { id, outcome }) =
            read(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"bad"}}"#)
        else {
            panic!("an error response");
        };
        assert_eq!(id, Value::Null);
        assert!(matches!(outcome, Err(CallError::Rpc { code: -32700, .. })));
        assert!(matches!(
            read(r#"{"jsonrpc":"2.0","id":1,"result":[1]}"#),
            Some(Message::Response {
                outcome: Err(CallError::Transport(_)),
                ..
            })
        ));
        assert!(matches!(
            read(r#"{"jsonrpc":"2.0","id":1,"result":null}"#),
            Some(Message::Response {
                outcome: Err(CallError::Transport(_)),
                ..
            })
        ));
        let Some(Message::Other(request)) = read(
            r#"{"jsonrpc":"2.0","id":3,"method":"sampling/createMessage","params":{"result":1}}"#,
        ) else {
            panic!("a request");
        };
        assert_eq!(request["params"]["result"], 1);
        assert!(matches!(
            read(r#"{"jsonrpc":"2.0","method":"notifications/message"}"#),
            Some(Message::Other(_))
        ));
        assert!(read("{").is_none());
    }

    /// A question that cannot be attributed to a call is declined with the reason.
    #[tokio::test]
    async fn an_unattributable_question_is_declined() {
        let answer = ask_or_decline(None, None, json!({"method": "sampling/createMessage"})).await;
        assert_eq!(answer["error"]["code"], -32601);
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("cannot tell which client")
        );
    }
}
