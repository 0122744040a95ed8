//! The bus over PostgreSQL `LISTEN`/`NOTIFY`: one connection of its own (not from the pool: it
//! holds a session that listens, and never runs a unit of work), which also sends.

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use super::{CHANNEL, Link, RECONNECT_FIRST, next_delay};

/// How long connecting (or one statement) may take before the connection counts as lost.
const IO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How often an idle connection is checked.
const PING_EVERY: std::time::Duration = std::time::Duration::from_secs(15);

/// Connects, relays, and connects again after any failure, until the outbox closes.
pub(super) async fn run(url: String, link: Link, mut pending: mpsc::Receiver<String>) {
    let mut unsent = None;
    let mut delay = RECONNECT_FIRST;
    loop {
        match session(&url, &link, &mut pending, &mut unsent, &mut delay).await {
            Ok(()) => return,
            Err(error) => {
                link.disconnected();
                tracing::warn!(%error, retry_in = ?delay, "replica bus (PostgreSQL) lost; connecting again");
            }
        }
        tokio::time::sleep(delay).await;
        delay = next_delay(delay);
    }
}

async fn timed<T>(
    what: &str,
    work: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(IO_TIMEOUT, work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(format!("{what}: {error}")),
        Err(_) => Err(format!("{what}: no answer in {IO_TIMEOUT:?}")),
    }
}

/// Aborts the task driving the connection when the session ends.
struct Driver(tokio::task::JoinHandle<()>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn session(
    url: &str,
    link: &Link,
    pending: &mut mpsc::Receiver<String>,
    unsent: &mut Option<String>,
    delay: &mut std::time::Duration,
) -> Result<(), String> {
    let (client, mut connection) = timed(
        "connect",
        tokio_postgres::connect(url, tokio_postgres::NoTls),
    )
    .await?;
    // The connection is driven by a task of its own, so a statement this task awaits completes
    // while notifications keep arriving (unbounded: the driver must never wait on this task).
    let (notes, mut notifications) = mpsc::unbounded_channel();
    let _driver = Driver(tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(note)) => {
                    if notes.send(Ok(note.payload().to_owned())).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    let _ = notes.send(Err(error.to_string()));
                    return;
                }
            }
        }
        let _ = notes.send(Err("the connection closed".into()));
    }));
    timed("listen", client.batch_execute(&format!("LISTEN {CHANNEL}"))).await?;
    *delay = RECONNECT_FIRST;
    link.connected("postgres");
    let mut ping = tokio::time::interval(PING_EVERY);
    loop {
        if let Some(payload) = unsent.as_ref() {
            timed(
                "notify",
                client.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, payload]),
            )
            .await?;
            *unsent = None;
        }
        tokio::select! {
            note = notifications.recv() => match note {
                Some(Ok(payload)) => link.received(&payload),
                Some(Err(error)) => return Err(error),
                None => return Err("the connection closed".into()),
            },
            next = pending.recv() => match next {
                Some(payload) => *unsent = Some(payload),
                None => return Ok(()),
            },
            _ = ping.tick() => {
                timed("ping", client.batch_execute("SELECT 1")).await?;
            }
        }
    }
}
