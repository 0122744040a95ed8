//! Passing an upstream's notifications about a call on to the client request that waits on
//! it: on that request's own task while the call runs there, on a task of the call's own once
//! it is parked (the waiting request changes between rounds).

use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::mcp::context::Ctx;
use crate::mcp::parked::RelayTarget;
use crate::protocol::LogLevel;

/// How many of an upstream's notifications about one call may wait to be passed on.
pub(super) const NOTE_QUEUE: usize = 64;

/// A channel, when it is needed.
pub(super) fn channel_if<T>(
    needed: bool,
    capacity: usize,
) -> (Option<mpsc::Sender<T>>, Option<mpsc::Receiver<T>>) {
    if needed {
        let (sender, receiver) = mpsc::channel(capacity);
        (Some(sender), Some(receiver))
    } else {
        (None, None)
    }
}

/// The next message of an optional channel (never, without one).
pub(super) async fn next<T>(receiver: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match receiver {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RelayTarget {
    /// This request's stream, progress token and log level.
    pub(super) fn of(ctx: &Ctx) -> Self {
        RelayTarget {
            notifier: ctx.notifier.clone(),
            progress_token: ctx.progress_token.clone(),
            log_level: ctx.log_level,
        }
    }
}

/// The end of a relay task: every notification the upstream sent before its result has been
/// passed on (the result must not overtake them).
pub(super) struct Relay(oneshot::Receiver<()>);

impl Relay {
    /// Waits until the relay has passed on everything (bounded: a relay whose sender is still
    /// held elsewhere is not waited for long).
    pub(super) async fn drained(self) {
        let _ = tokio::time::timeout(RELAY_DRAIN, self.0).await;
    }
}

/// The longest wait for a relay to pass on the notifications sent before a result.
const RELAY_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// The stream `message` goes to for `target`, rewritten for it (the client's progress token),
/// or `None` when the request did not ask for it.
fn relayable<'a>(target: &'a RelayTarget, message: &mut Value) -> Option<&'a mpsc::Sender<Value>> {
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
    if pass { target.notifier.as_ref() } else { None }
}

/// Passes an upstream notification on to the request `target` names, if it asked for it.
pub(super) async fn pass_on(target: &RelayTarget, mut message: Value) {
    if let Some(notifier) = relayable(target, &mut message) {
        let _ = notifier.send(message).await;
    }
}

/// Relays a running call's notifications, on a task of its own, to whichever request `target`
/// names at the time.
pub(super) fn spawn_relay(
    mut receiver: mpsc::Receiver<Value>,
    target: Arc<Mutex<RelayTarget>>,
) -> Relay {
    let (finished, done) = oneshot::channel::<()>();
    actix_web::rt::spawn(async move {
        // Dropped when the loop ends: the receiver then knows everything was passed on.
        let _finished = finished;
        while let Some(mut message) = receiver.recv().await {
            let notifier = relayable(&lock(&target), &mut message).cloned();
            if let Some(notifier) = notifier {
                let _ = notifier.send(message).await;
            }
        }
    });
    Relay(done)
}
