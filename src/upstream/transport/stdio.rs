//! The stdio transport: the upstream is a local process; each JSON-RPC message is one line on
//! its stdin (to it) or stdout (from it). Like the legacy SSE transport, every message from it
//! arrives on one stream and is routed to the request it belongs to. The process is the
//! connection: it is started when the connection is made and stopped when the connection is
//! dropped or closed, or when nobody has called it for its idle time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};

use super::routes::{Reply, Routes};
use super::{ClientEnd, MAX_EVENT_BYTES, Notifications, OnChange, Pace, Transport};
use crate::protocol::{Era, RawObject};
use crate::upstream::CallError;
use crate::upstream::process::{Exit, ProcessHandle, Processes, Role, StdioCommand};

/// Messages waiting to be written to a process's stdin.
const OUTBOX: usize = 256;

/// A running stdio upstream.
pub struct Stdio {
    outbox: mpsc::Sender<Vec<u8>>,
    routes: Arc<Routes>,
    process: ProcessHandle,
    /// Set by each call (not by the gateway's pings): the idle stop looks at it.
    used: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Stdio {
    fn drop(&mut self) {
        self.process.stop();
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Stdio {
    /// Starts the process and the tasks that write its stdin and read its stdout.
    pub fn start(
        processes: &Arc<Processes>,
        command: &StdioCommand,
        role: Role,
    ) -> Result<Self, CallError> {
        let started = processes.spawn(command, role)?;
        let routes: Arc<Routes> = Arc::default();
        let (outbox, mut queued) = mpsc::channel::<Vec<u8>>(OUTBOX);
        let mut stdin = started.stdin;
        let writer = tokio::spawn(async move {
            while let Some(line) = queued.recv().await {
                if stdin.write_all(&line).await.is_err() || stdin.flush().await.is_err() {
                    break;
                }
            }
        });
        let reader = {
            let routes = routes.clone();
            let replies = outbox.clone();
            let reply: Reply = Arc::new(move |answer: Value| {
                let replies = replies.clone();
                Box::pin(async move { send(&replies, &answer).await })
            });
            let mut lines = FramedRead::new(
                started.stdout,
                LinesCodec::new_with_max_length(MAX_EVENT_BYTES),
            );
            let exited = started.handle.exited();
            let label = command.label.clone();
            let process = started.handle.pid();
            tokio::spawn(async move {
                let mut pace = Pace::new();
                tokio::pin!(exited);
                loop {
                    let line = tokio::select! {
                        line = lines.next() => line,
                        _ = &mut exited => None,
                    };
                    match line {
                        Some(Ok(line)) => routes.deliver(line.as_bytes(), &mut pace, &reply),
                        Some(Err(LinesCodecError::MaxLineLengthExceeded)) => {
                            tracing::warn!(upstream = %label, pid = process, limit = MAX_EVENT_BYTES, "a stdio upstream wrote a message longer than the gateway reads; it is stopped");
                            break;
                        }
                        Some(Err(LinesCodecError::Io(error))) => {
                            tracing::debug!(upstream = %label, %error, "a stdio upstream's stdout failed");
                            break;
                        }
                        None => break,
                    }
                }
                // Every waiting request fails (its sender is dropped).
                routes.end();
            })
        };
        let used = Arc::new(AtomicBool::new(false));
        let mut tasks = vec![writer, reader];
        if let Some(idle) = command.stored.process.idle_stop_seconds {
            tasks.push(tokio::spawn(stop_when_idle(
                Duration::from_secs(idle.max(1)),
                used.clone(),
                routes.clone(),
                started.handle.stopper(),
            )));
        }
        Ok(Stdio {
            outbox,
            routes,
            process: started.handle,
            used,
            tasks,
        })
    }

    /// Why calls fail now that the process is gone.
    fn gone(&self) -> CallError {
        CallError::Transport(match self.process.exit() {
            Some(Exit::Died(how)) => format!("the upstream's process {how}"),
            Some(Exit::Stopped) => "the upstream's process was stopped".into(),
            None => "the upstream's process closed its output".into(),
        })
    }
}

/// Stops the process once a whole idle period passes with no call and none in flight.
async fn stop_when_idle(
    idle: Duration,
    used: Arc<AtomicBool>,
    routes: Arc<Routes>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut every = tokio::time::interval(idle);
    every.tick().await;
    loop {
        every.tick().await;
        if !used.swap(false, Ordering::AcqRel) && routes.idle() {
            tracing::info!(
                idle_seconds = idle.as_secs(),
                "a stdio upstream's process is idle; stopping it"
            );
            stop.cancel();
            return;
        }
    }
}

/// Writes one message (a line) to the process.
async fn send(outbox: &mpsc::Sender<Vec<u8>>, body: &Value) -> Result<(), CallError> {
    let mut line = serde_json::to_vec(body)
        .map_err(|error| CallError::Transport(format!("unwritable message: {error}")))?;
    line.push(b'\n');
    outbox.send(line).await.map_err(|_| {
        CallError::Transport("the upstream's process no longer reads its input".into())
    })
}

impl Transport for Stdio {
    fn request<'a>(
        &'a self,
        body: &'a Value,
        method: &'a str,
        relay: Notifications,
    ) -> BoxFuture<'a, Result<RawObject, CallError>> {
        Box::pin(async move {
            if self.process.exit().is_some() {
                return Err(self.gone());
            }
            if method != "ping" {
                self.used.store(true, Ordering::Release);
            }
            let (_routes, receiver) = self.routes.follow(body, relay);
            send(&self.outbox, body).await.map_err(|_| self.gone())?;
            match receiver.await {
                Ok(outcome) => outcome,
                Err(_) => {
                    // The output ends a moment before the exit is known: wait for it briefly,
                    // so the error says how the process ended.
                    let _ = tokio::time::timeout(Duration::from_millis(500), self.process.exited())
                        .await;
                    Err(self.gone())
                }
            }
        })
    }

    fn notify(&self, body: Value) -> BoxFuture<'_, Result<(), CallError>> {
        Box::pin(async move { send(&self.outbox, &body).await })
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
        self.process.stop();
        let exited = self.process.exited();
        Box::pin(async move {
            exited.await;
        })
    }

    fn ended(&self) -> Option<Exit> {
        self.process.exit()
    }

    fn exited(&self) -> Option<BoxFuture<'static, Exit>> {
        Some(Box::pin(self.process.exited()))
    }
}
