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
//!
//! A call runs on the task of the client request that made it, with no task or channel of its
//! own for what that request cannot receive; only a call parked for a 2026-07-28 client's retry
//! moves to a task of its own, when the upstream asks its first question.

use std::future::Future;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use self::relay::{NOTE_QUEUE, channel_if, lock, next, pass_on, spawn_relay};
use super::Object;
use crate::actors::upstream::{Forward, ForwardError};
use crate::catalog::Gateway;
use crate::mcp::context::Ctx;
use crate::mcp::error::McpError;
use crate::mcp::parked::{
    NotParked, Owner, ParkedCall, Question, RelayTarget, RunningCall, STATE_PREFIX,
};
use crate::mcp::session::{capability_for, refusal};
use crate::protocol::{Era, LogLevel, RawObject, Reply, meta};

mod relay;
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
    let outcome = forward_here(ctx, &gateway, method, params).await;
    outcome_of(ctx, outcome).map(|result| clean(result).into_object())
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
) -> Result<Reply, McpError> {
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
            // A question the upstream withdrew while parked (notifications/cancelled) gets no
            // answer and is not asked again: the retry waits for what the upstream does next.
            _ if question.reply.is_closed() => wait(ctx, owner, call).await,
            Some(answer) => {
                let _ = question.reply.send(json!({ "result": answer }));
                wait(ctx, owner, call).await
            }
            // The answer is missing: ask again (the spec's SHOULD).
            None => park(ctx, owner, call, question).await,
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
    drive(ctx, owner, &gateway, method, params).await
}

fn gateway(ctx: &Ctx, gateway_id: &str) -> Result<Arc<Gateway>, McpError> {
    ctx.catalog.gateway(gateway_id).ok_or_else(|| {
        McpError::Upstream("the upstream this item belongs to is not available".into())
    })
}

/// The message to the UpstreamActor. The client's log level goes with the request, as
/// 2026-07-28 has it (`_meta`): a 2026-07-28 upstream sends log messages only at or above it
/// (a session-era upstream reads its session's level instead, set on affine sessions).
fn call(
    ctx: &Ctx,
    gateway: &Gateway,
    method: &str,
    mut params: Object,
    notifications: Notifications,
    cancel: CancellationToken,
) -> Forward {
    if let Some(level) = ctx.log_level {
        let meta_object = params.entry("_meta").or_insert_with(|| json!({}));
        if let Some(meta_object) = meta_object.as_object_mut() {
            meta_object.insert(
                crate::protocol::meta::LOG_LEVEL.into(),
                json!(level.as_str()),
            );
        }
    }
    Forward {
        gateway_id: gateway.id.clone(),
        gateway_name: gateway.name.clone(),
        target: gateway.target.clone(),
        method: method.to_owned(),
        params,
        notifications,
        cancel,
        timeout: ctx.settings.tool_timeout,
        // A session-era client that can be asked, or keeps state upstream, has its own.
        affinity: ctx.session.as_ref().and_then(|session| session.affinity()),
        user: Some(ctx.principal.email.clone()),
    }
}

/// Forwards on this request's own task: the upstream's notifications are passed on to this
/// request's stream (when it asked for them) and a session-era upstream's questions put to a
/// session-era client that can be asked (otherwise declined), as they arrive. No task and no
/// channel is made for what this request cannot receive.
async fn forward_here(
    ctx: &Ctx,
    gateway: &Gateway,
    method: &str,
    params: Object,
) -> Result<RawObject, ForwardError> {
    let target = RelayTarget::of(ctx);
    let wanted = target.notifier.is_some()
        && (target.progress_token.is_some() || target.log_level.is_some());
    let (note_sender, mut notes) = channel_if::<Value>(wanted, NOTE_QUEUE);
    let askable_client = ctx.session.is_some() && ctx.notifier.is_some();
    let (question_sender, mut questions) = channel_if::<ClientRequest>(askable_client, 16);
    let notifications = Notifications {
        notifications: note_sender,
        requests: question_sender,
        capabilities: askable(ctx),
    };
    let forward = call(
        ctx,
        gateway,
        method,
        params,
        notifications,
        ctx.cancel.clone(),
    );
    let upstream = ctx.upstream.forward(forward);
    tokio::pin!(upstream);
    // Questions are answered while the upstream's stream goes on being read (it may withdraw
    // one there).
    let mut asking = FuturesUnordered::new();
    loop {
        tokio::select! {
            biased;
            Some(message) = next(&mut notes) => pass_on(&target, message).await,
            Some((request, mut reply)) = next(&mut questions) => {
                asking.push(async move {
                    tokio::select! {
                        answer = ask_session_client(ctx, &request) => {
                            let _ = reply.send(answer);
                        }
                        // The upstream withdrew it: dropping the asking tells the client.
                        _ = reply.closed() => {}
                    }
                });
            }
            Some(()) = asking.next(), if !asking.is_empty() => {}
            outcome = &mut upstream => {
                // What the upstream sent before its result goes first.
                if let Some(notes) = &mut notes {
                    while let Ok(message) = notes.try_recv() {
                        pass_on(&target, message).await;
                    }
                }
                return outcome;
            }
        }
    }
}

/// The client's result for the upstream's answer, or the error it maps to.
fn outcome_of(ctx: &Ctx, outcome: Result<RawObject, ForwardError>) -> Result<Reply, McpError> {
    match outcome {
        Ok(result) => Ok(Reply::Relayed(result)),
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

fn is_input_required(result: &Reply) -> bool {
    result.str_member("resultType") == Some(INPUT_REQUIRED)
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

// ---- session-era clients ----------------------------------------------------------------

/// A session-era client: the upstream's mid-call questions are relayed on the call's stream;
/// a 2026-07-28 upstream's `input_required` rounds are asked the same way and the request is
/// retried with the answers.
async fn ask_on_stream(
    ctx: &Ctx,
    gateway: &Gateway,
    method: &str,
    mut params: Object,
) -> Result<Reply, McpError> {
    for _ in 0..MAX_INPUT_ROUNDS {
        // A 2026-07-28 upstream may ask for another round: the params are needed again.
        let outcome = forward_here(ctx, gateway, method, params.clone()).await;
        let result = outcome_of(ctx, outcome)?;
        if !is_input_required(&result) {
            return Ok(clean(result));
        }
        let result = result.into_object();
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

/// Puts a session-era upstream's mid-call question to the session-era client on this
/// request's stream when it declared the capability; otherwise declines it.
async fn ask_session_client(ctx: &Ctx, request: &Value) -> Value {
    let (Some(session), Some(stream)) = (&ctx.session, &ctx.notifier) else {
        return refusal(-32601, "mcpgate has no client to ask during this request");
    };
    let method = request["method"].as_str().unwrap_or_default();
    let supported =
        capability_for(method).is_some_and(|capability| session.client_supports(capability));
    if !supported {
        return refusal(-32601, format!("the client does not support {method}"));
    }
    let params = request.get("params").cloned().unwrap_or(Value::Null);
    session
        .request_client(method, params, stream, ctx.settings.tool_timeout)
        .await
        .unwrap_or_else(|cause| refusal(-32603, cause))
}

// ---- 2026-07-28 clients -----------------------------------------------------------------

/// Runs a fresh upstream call on this request's own task, passing its notifications on as they
/// arrive. Only when the upstream asks a question is the call moved to a task of its own (it
/// must outlive this request: it is parked for the client's retry).
async fn drive(
    ctx: &Ctx,
    owner: Owner,
    gateway: &Gateway,
    method: &str,
    params: Object,
) -> Result<Reply, McpError> {
    let target = RelayTarget::of(ctx);
    let capabilities = askable(ctx);
    // Channels only for what can happen: a client that can be asked nothing has no question
    // channel, and its notifications one only when it asked for notifications (a call that
    // can be parked keeps one for the requests that will wait on it).
    let can_ask = capabilities
        .as_object()
        .is_some_and(|declared| !declared.is_empty());
    let wants_notes = can_ask
        || (target.notifier.is_some()
            && (target.progress_token.is_some() || target.log_level.is_some()));
    let (note_sender, mut notes) = channel_if::<Value>(wants_notes, NOTE_QUEUE);
    let (question_sender, mut questions) = channel_if::<ClientRequest>(can_ask, 16);
    let notifications = Notifications {
        notifications: note_sender,
        requests: question_sender,
        capabilities,
    };
    let cancel = CancellationToken::new();
    let forward = call(ctx, gateway, method, params, notifications, cancel.clone());
    let upstream = ctx.upstream.clone();
    let mut running: Running = Box::pin(async move { upstream.forward(forward).await });
    loop {
        tokio::select! {
            biased;
            Some(message) = next(&mut notes) => pass_on(&target, message).await,
            outcome = &mut running => {
                if let Some(notes) = &mut notes {
                    while let Ok(message) = notes.try_recv() {
                        pass_on(&target, message).await;
                    }
                }
                return outcome_of(ctx, outcome).map(clean);
            }
            Some((request, reply)) = next(&mut questions) => {
                let Some(question) = question_of(ctx, 0, request, reply) else {
                    continue;
                };
                // A question came on the channel made only with both (`can_ask`).
                let (Some(notes), Some(questions)) = (notes.take(), questions.take()) else {
                    continue;
                };
                // The call outlives this request from here: it runs on a task of its own,
                // its notifications relayed to whichever request waits on it.
                let relay = Arc::new(Mutex::new(RelayTarget::default()));
                let relayed = spawn_relay(notes, relay.clone());
                let (done, outcome) = oneshot::channel();
                actix_web::rt::spawn(async move {
                    let outcome = running.await;
                    relayed.drained().await;
                    let _ = done.send(outcome);
                });
                let call = RunningCall {
                    outcome,
                    questions,
                    cancel,
                    relay,
                    asked: 1,
                };
                return park(ctx, owner, call, question).await;
            }
            _ = ctx.cancel.cancelled() => {
                cancel.cancel();
                return Err(McpError::InvalidRequest("the request was cancelled".into()));
            }
        }
    }
}

/// An upstream call in progress.
type Running = std::pin::Pin<Box<dyn Future<Output = Result<RawObject, ForwardError>>>>;

/// The question to park a call on, numbered after the `asked` before it; `None` when this
/// client cannot be asked it (the upstream is told so and the call goes on).
fn question_of(
    ctx: &Ctx,
    asked: u32,
    request: Value,
    reply: oneshot::Sender<Value>,
) -> Option<Question> {
    let method = request["method"].as_str().unwrap_or_default().to_owned();
    if !capability_for(&method).is_some_and(|capability| ctx.may_ask(capability)) {
        let _ = reply.send(refusal(
            -32601,
            format!("the client does not support {method}"),
        ));
        return None;
    }
    Some(Question {
        key: format!("q{}", asked + 1),
        request: json!({
            "method": method,
            "params": request.get("params").cloned().unwrap_or_else(|| json!({})),
        }),
        reply,
    })
}

enum Event {
    Done(Result<RawObject, ForwardError>),
    Question(ClientRequest),
    Cancelled,
}

/// Waits for the running call on behalf of this client request: its result, or the next
/// question (the call is parked and the client gets `input_required`).
async fn wait(ctx: &Ctx, owner: Owner, mut call: RunningCall) -> Result<Reply, McpError> {
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
                let Some(question) = question_of(ctx, call.asked, request, reply) else {
                    continue;
                };
                call.asked += 1;
                return park(ctx, owner, call, question).await;
            }
        }
    }
}

/// Parks the call on `question` and answers the client with `input_required`.
async fn park(
    ctx: &Ctx,
    owner: Owner,
    call: RunningCall,
    question: Question,
) -> Result<Reply, McpError> {
    *lock(&call.relay) = RelayTarget::default();
    let mut input_requests = Object::new();
    input_requests.insert(question.key.clone(), question.request.clone());
    match ctx
        .parked
        .park(ParkedCall {
            owner,
            call,
            question,
        })
        .await
    {
        Ok(state) => {
            let mut result = Object::new();
            result.insert("resultType".into(), json!(INPUT_REQUIRED));
            result.insert("inputRequests".into(), Value::Object(input_requests));
            result.insert("requestState".into(), json!(state));
            Ok(Reply::Built(result))
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

/// Removes the upstream's modern-era fields; the gateway decorates for its client's era. An
/// `input_required` result keeps its `resultType` (only 2026-07-28 clients are shown one).
fn clean(mut result: Reply) -> Reply {
    if !is_input_required(&result) {
        result.remove("resultType");
    }
    result.remove("ttlMs");
    result.remove("cacheScope");
    result.edit_meta(|meta_object| {
        meta_object.remove(meta::SERVER_INFO);
    });
    result
}
