//! Forwarding to the upstream MCP server that owns an item, with its notifications relayed to
//! the client under the client's own progress token, and its questions (sampling, elicitation,
//! roots) put to the client in the client's era:
//!
//! | client \ upstream | session era (asks mid-call)           | 2026-07-28 (`input_required`)        |
//! | ----------------- | ------------------------------------- | ------------------------------------ |
//! | session era       | relayed on the call's stream          | asked on the call's stream, retried  |
//! | 2026-07-28        | call parked, `input_required` to client | passed through both ways           |
//!
//! A question the client did not declare the capability for is answered with an error, and
//! the upstream decides what that means for its call.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::Object;
use crate::actors::upstream::{Forward, ForwardError};
use crate::catalog::Gateway;
use crate::mcp::context::Ctx;
use crate::mcp::error::McpError;
use crate::mcp::parked::{
    NotParked, Owner, ParkedCall, Question, RelayTarget, RunningCall, STATE_PREFIX,
};
use crate::protocol::{Era, LogLevel, meta};
use crate::upstream::{CallError, ClientRequest, Notifications};

/// The most `input_required` rounds the gateway answers for a session-era client.
const MAX_INPUT_ROUNDS: usize = 8;

/// The `resultType` of an interim multi round-trip result.
const INPUT_REQUIRED: &str = "input_required";

/// Forwards a request that cannot ask the client anything (`completion/complete`).
pub async fn forward(
    ctx: &Ctx,
    gateway_id: &str,
    method: &str,
    params: Object,
) -> Result<Object, McpError> {
    let gateway = gateway(ctx, gateway_id)?;
    let (notifications, relay) = relayed(ctx);
    let outcome = ctx
        .upstream
        .forward(call(
            ctx,
            &gateway,
            method,
            params,
            notifications,
            ctx.cancel.clone(),
        ))
        .await;
    relay.drained().await;
    outcome_of(ctx, outcome).map(clean)
}

/// Forwards `tools/call`, `prompts/get` or `resources/read` (`item` is the name or URI the
/// client used), answering the upstream's questions in the client's era. `client_params` are
/// the client's own params, for a 2026-07-28 retry's `inputResponses` and `requestState`.
pub async fn forward_interactive(
    ctx: &Ctx,
    gateway_id: &str,
    method: &str,
    item: &str,
    forwarded: Object,
    client_params: &Object,
) -> Result<Object, McpError> {
    let gateway = gateway(ctx, gateway_id)?;
    if ctx.era != Era::Modern {
        return ask_on_stream(ctx, &gateway, method, forwarded).await;
    }
    let owner = Owner {
        principal: ctx.principal.email.clone(),
        method: method.to_owned(),
        item: item.to_owned(),
    };
    let responses = match client_params.get("inputResponses") {
        None | Some(Value::Null) => None,
        Some(Value::Object(responses)) => Some(responses.clone()),
        Some(_) => {
            return Err(McpError::InvalidParams(
                "params.inputResponses must be an object".into(),
            ));
        }
    };
    let state = match client_params.get("requestState") {
        None | Some(Value::Null) => None,
        Some(Value::String(state)) => Some(state.as_str()),
        Some(_) => {
            return Err(McpError::InvalidParams(
                "params.requestState must be a string".into(),
            ));
        }
    };
    if let Some(state) = state.filter(|state| state.starts_with(STATE_PREFIX)) {
        let parked = ctx.parked.resume(state, &owner)?;
        let ParkedCall { call, question, .. } = parked;
        return match responses.and_then(|mut responses| responses.remove(&question.key)) {
            Some(answer) => {
                let _ = question.reply.send(json!({ "result": answer }));
                wait(ctx, owner, call).await
            }
            // The answer is missing: ask again (the spec's SHOULD).
            None => park(ctx, owner, call, question),
        };
    }
    // A fresh request, or a retry for a 2026-07-28 upstream: its inputResponses and
    // requestState are the upstream's business and pass through.
    let mut params = forwarded;
    if let Some(responses) = responses {
        params.insert("inputResponses".into(), Value::Object(responses));
    }
    if let Some(state) = state {
        params.insert("requestState".into(), json!(state));
    }
    let call = start(ctx, &gateway, method, params);
    wait(ctx, owner, call).await
}

fn gateway(ctx: &Ctx, gateway_id: &str) -> Result<Arc<Gateway>, McpError> {
    ctx.catalog.gateway(gateway_id).ok_or_else(|| {
        McpError::Upstream("the upstream this item belongs to is not available".into())
    })
}

/// The message to the UpstreamActor.
fn call(
    ctx: &Ctx,
    gateway: &Gateway,
    method: &str,
    params: Object,
    notifications: Notifications,
    cancel: CancellationToken,
) -> Forward {
    Forward {
        gateway_id: gateway.id.clone(),
        gateway_name: gateway.name.clone(),
        target: gateway.target.clone(),
        method: method.to_owned(),
        params,
        notifications,
        cancel,
        timeout: ctx.settings.tool_timeout,
    }
}

/// Notifications relayed to this request's stream; the upstream's questions relayed to a
/// session-era client that can be asked (otherwise declined).
fn relayed(ctx: &Ctx) -> (Notifications, Relay) {
    let target = RelayTarget::of(ctx);
    let wanted = target.progress_token.is_some() || target.log_level.is_some();
    let (sender, relay) = if target.notifier.is_some() && wanted {
        let (sender, relay) = spawn_relay(Arc::new(Mutex::new(target)));
        (Some(sender), relay)
    } else {
        (None, Relay(None))
    };
    let notifications = Notifications {
        notifications: sender,
        requests: questions_on_stream(ctx),
        capabilities: askable(ctx),
    };
    (notifications, relay)
}

/// The client's result for the upstream's answer, or the error it maps to.
fn outcome_of(ctx: &Ctx, outcome: Result<Object, ForwardError>) -> Result<Object, McpError> {
    match outcome {
        Ok(result) => Ok(result),
        Err(ForwardError::Call {
            error:
                CallError::Rpc {
                    code,
                    message,
                    data,
                },
            ..
        }) => Err(McpError::Relayed {
            code,
            message,
            data,
        }),
        Err(ForwardError::Call {
            error: CallError::Cancelled,
            ..
        }) => Err(McpError::InvalidRequest("the request was cancelled".into())),
        Err(error) => {
            ctx.log(LogLevel::Warning, error.to_string());
            Err(McpError::Upstream(error.to_string()))
        }
    }
}

fn is_input_required(result: &Object) -> bool {
    result.get("resultType").and_then(Value::as_str) == Some(INPUT_REQUIRED)
}

/// The capability a question needs.
fn capability_for(method: &str) -> Option<&'static str> {
    match method {
        "sampling/createMessage" => Some("sampling"),
        "elicitation/create" => Some("elicitation"),
        "roots/list" => Some("roots"),
        _ => None,
    }
}

/// The capabilities the gateway can serve for this client, declared to 2026-07-28 upstreams.
fn askable(ctx: &Ctx) -> Value {
    let declared: serde_json::Map<String, Value> = ["sampling", "elicitation", "roots"]
        .into_iter()
        .filter(|capability| ctx.may_ask(capability))
        .map(|capability| (capability.to_owned(), json!({})))
        .collect();
    Value::Object(declared)
}

/// An error answer to an upstream's question.
fn refusal(code: i64, message: impl Into<String>) -> Value {
    json!({ "error": { "code": code, "message": message.into() } })
}

// ---- session-era clients ----------------------------------------------------------------

/// A session-era client: the upstream's mid-call questions are relayed on the call's stream;
/// a 2026-07-28 upstream's `input_required` rounds are asked the same way and the request is
/// retried with the answers.
async fn ask_on_stream(
    ctx: &Ctx,
    gateway: &Gateway,
    method: &str,
    mut params: Object,
) -> Result<Object, McpError> {
    for _ in 0..MAX_INPUT_ROUNDS {
        let (notifications, relay) = relayed(ctx);
        let forward = call(
            ctx,
            gateway,
            method,
            params.clone(),
            notifications,
            ctx.cancel.clone(),
        );
        let outcome = ctx.upstream.forward(forward).await;
        relay.drained().await;
        let result = outcome_of(ctx, outcome)?;
        if !is_input_required(&result) {
            return Ok(clean(result));
        }
        let responses = answer_on_stream(ctx, gateway, &result).await?;
        params.insert("inputResponses".into(), Value::Object(responses));
        match result.get("requestState") {
            Some(state) => params.insert("requestState".into(), state.clone()),
            None => params.remove("requestState"),
        };
    }
    Err(McpError::Upstream(format!(
        "upstream {} still asked for input after {MAX_INPUT_ROUNDS} rounds",
        gateway.name
    )))
}

/// Puts every question of an `input_required` result to the session-era client.
async fn answer_on_stream(
    ctx: &Ctx,
    gateway: &Gateway,
    result: &Object,
) -> Result<Object, McpError> {
    let mut responses = Object::new();
    let Some(Value::Object(requests)) = result.get("inputRequests") else {
        return Ok(responses);
    };
    for (key, request) in requests {
        let method = request["method"].as_str().unwrap_or_default();
        let (Some(session), Some(stream)) = (&ctx.session, &ctx.notifier) else {
            return Err(McpError::Upstream(format!(
                "upstream {} needs {method}, which cannot be asked of a client on this transport",
                gateway.name
            )));
        };
        if !capability_for(method).is_some_and(|capability| ctx.may_ask(capability)) {
            return Err(McpError::Upstream(format!(
                "upstream {} needs {method}, which this client did not declare",
                gateway.name
            )));
        }
        let params = request.get("params").cloned().unwrap_or(Value::Null);
        let answer = session
            .request_client(method, params, stream, ctx.settings.tool_timeout)
            .await
            .map_err(|cause| McpError::Upstream(format!("{method}: {cause}")))?;
        match (answer.get("result"), answer.get("error")) {
            (Some(answer), _) => {
                responses.insert(key.clone(), answer.clone());
            }
            (None, error) => {
                let message = error
                    .and_then(|error| error["message"].as_str())
                    .unwrap_or("no answer");
                return Err(McpError::Upstream(format!(
                    "the client did not answer {method}: {message}"
                )));
            }
        }
    }
    Ok(responses)
}

/// A channel for a session-era upstream's mid-call questions, relayed to a session-era client
/// on this request's stream when it declared the capability; otherwise declined.
fn questions_on_stream(ctx: &Ctx) -> Option<mpsc::Sender<ClientRequest>> {
    let session = ctx.session.clone()?;
    let stream = ctx.notifier.clone()?;
    let timeout = ctx.settings.tool_timeout;
    let (sender, mut receiver) = mpsc::channel::<ClientRequest>(16);
    actix_web::rt::spawn(async move {
        while let Some((request, reply)) = receiver.recv().await {
            let method = request["method"].as_str().unwrap_or_default().to_owned();
            let supported = capability_for(&method)
                .is_some_and(|capability| session.client_supports(capability));
            let answer = if supported {
                let params = request.get("params").cloned().unwrap_or(Value::Null);
                session
                    .request_client(&method, params, &stream, timeout)
                    .await
                    .unwrap_or_else(|cause| refusal(-32603, cause))
            } else {
                refusal(-32601, format!("the client does not support {method}"))
            };
            let _ = reply.send(answer);
        }
    });
    Some(sender)
}

// ---- 2026-07-28 clients -----------------------------------------------------------------

/// Starts the upstream call in the background, so that it can outlive this client request
/// when the upstream asks a question (the call is then parked for the client's retry).
fn start(ctx: &Ctx, gateway: &Gateway, method: &str, params: Object) -> RunningCall {
    let relay = Arc::new(Mutex::new(RelayTarget::default()));
    let (questions, questions_received) = mpsc::channel(16);
    let (relay_sender, relayed) = spawn_relay(relay.clone());
    let notifications = Notifications {
        notifications: Some(relay_sender),
        requests: Some(questions),
        capabilities: askable(ctx),
    };
    let cancel = CancellationToken::new();
    let forward = call(ctx, gateway, method, params, notifications, cancel.clone());
    let (done, outcome) = oneshot::channel();
    let upstream = ctx.upstream.clone();
    actix_web::rt::spawn(async move {
        let outcome = upstream.forward(forward).await;
        relayed.drained().await;
        let _ = done.send(outcome);
    });
    RunningCall {
        outcome,
        questions: questions_received,
        cancel,
        relay,
        asked: 0,
    }
}

enum Event {
    Done(Result<Object, ForwardError>),
    Question(ClientRequest),
    Cancelled,
}

/// Waits for the running call on behalf of this client request: its result, or the next
/// question (the call is parked and the client gets `input_required`).
async fn wait(ctx: &Ctx, owner: Owner, mut call: RunningCall) -> Result<Object, McpError> {
    *lock(&call.relay) = RelayTarget::of(ctx);
    loop {
        let event = tokio::select! {
            outcome = &mut call.outcome => Event::Done(outcome.unwrap_or_else(|_| Err(ForwardError::Call {
                name: "?".into(),
                error: CallError::Transport("the upstream call ended without an outcome".into()),
            }))),
            Some(question) = call.questions.recv() => Event::Question(question),
            _ = ctx.cancel.cancelled() => Event::Cancelled,
        };
        match event {
            Event::Done(outcome) => {
                *lock(&call.relay) = RelayTarget::default();
                return outcome_of(ctx, outcome).map(clean);
            }
            Event::Cancelled => {
                call.cancel.cancel();
                return Err(McpError::InvalidRequest("the request was cancelled".into()));
            }
            Event::Question((request, reply)) => {
                let method = request["method"].as_str().unwrap_or_default().to_owned();
                if !capability_for(&method).is_some_and(|capability| ctx.may_ask(capability)) {
                    let _ = reply.send(refusal(
                        -32601,
                        format!("the client does not support {method}"),
                    ));
                    continue;
                }
                call.asked += 1;
                let question = Question {
                    key: format!("q{}", call.asked),
                    request: json!({
                        "method": method,
                        "params": request.get("params").cloned().unwrap_or_else(|| json!({})),
                    }),
                    reply,
                };
                return park(ctx, owner, call, question);
            }
        }
    }
}

/// Parks the call on `question` and answers the client with `input_required`.
fn park(
    ctx: &Ctx,
    owner: Owner,
    call: RunningCall,
    question: Question,
) -> Result<Object, McpError> {
    *lock(&call.relay) = RelayTarget::default();
    let mut input_requests = Object::new();
    input_requests.insert(question.key.clone(), question.request.clone());
    match ctx.parked.park(ParkedCall {
        owner,
        call,
        question,
    }) {
        Ok(state) => {
            let mut result = Object::new();
            result.insert("resultType".into(), json!(INPUT_REQUIRED));
            result.insert("inputRequests".into(), Value::Object(input_requests));
            result.insert("requestState".into(), json!(state));
            Ok(result)
        }
        Err(refused) => {
            let NotParked { parked, exceeded } = *refused;
            // The upstream's question will not be answered.
            let _ = parked
                .question
                .reply
                .send(refusal(-32603, &exceeded.message));
            parked.call.cancel.cancel();
            Err(exceeded.into())
        }
    }
}

// ---- notifications ----------------------------------------------------------------------

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RelayTarget {
    /// This request's stream, progress token and log level.
    fn of(ctx: &Ctx) -> Self {
        RelayTarget {
            notifier: ctx.notifier.clone(),
            progress_token: ctx.progress_token.clone(),
            log_level: ctx.log_level,
        }
    }
}

/// A channel whose messages (the upstream's notifications about a call) are passed on to the
/// client request the target names, when it asked for them.
/// The end of a relay task: every notification the upstream sent before its result has been
/// passed on (the result must not overtake them).
struct Relay(Option<oneshot::Receiver<()>>);

impl Relay {
    /// Waits until the relay has passed on everything (bounded: a relay whose sender is still
    /// held elsewhere is not waited for long).
    async fn drained(self) {
        if let Some(done) = self.0 {
            let _ = tokio::time::timeout(RELAY_DRAIN, done).await;
        }
    }
}

/// The longest wait for a relay to pass on the notifications sent before a result.
const RELAY_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

fn spawn_relay(target: Arc<Mutex<RelayTarget>>) -> (mpsc::Sender<Value>, Relay) {
    let (sender, mut receiver) = mpsc::channel::<Value>(64);
    let (finished, done) = oneshot::channel::<()>();
    actix_web::rt::spawn(async move {
        // Dropped when the loop ends: the receiver then knows everything was passed on.
        let _finished = finished;
        while let Some(mut message) = receiver.recv().await {
            let notifier = {
                let target = lock(&target);
                let pass = match message.get("method").and_then(Value::as_str) {
                    Some("notifications/progress") => match &target.progress_token {
                        Some(token) => {
                            message["params"]["progressToken"] = token.clone();
                            true
                        }
                        None => false,
                    },
                    Some("notifications/message") => {
                        let level = message["params"]["level"]
                            .as_str()
                            .and_then(LogLevel::parse);
                        matches!((level, target.log_level), (Some(level), Some(threshold)) if level >= threshold)
                    }
                    _ => false,
                };
                pass.then(|| target.notifier.clone()).flatten()
            };
            if let Some(notifier) = notifier {
                let _ = notifier.send(message).await;
            }
        }
    });
    (sender, Relay(Some(done)))
}

/// Removes the upstream's modern-era fields; the gateway decorates for its client's era. An
/// `input_required` result keeps its `resultType` (only 2026-07-28 clients are shown one).
fn clean(mut result: Object) -> Object {
    if !is_input_required(&result) {
        result.remove("resultType");
    }
    result.remove("ttlMs");
    result.remove("cacheScope");
    if let Some(Value::Object(meta_object)) = result.get_mut("_meta") {
        meta_object.remove(meta::SERVER_INFO);
        if meta_object.is_empty() {
            result.remove("_meta");
        }
    }
    result
}
