//! The bus over Redis pub/sub: one subscribing connection, one multiplexed connection that
//! publishes.

use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::{Link, RECONNECT_FIRST, next_delay};

/// How long connecting (or one command) may take before the connection counts as lost.
const IO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How often an idle connection is checked.
const PING_EVERY: std::time::Duration = std::time::Duration::from_secs(15);

/// Connects, relays, and connects again after any failure, until the outbox closes.
pub(super) async fn run(
    url: String,
    channel: String,
    link: Link,
    mut pending: mpsc::Receiver<String>,
) {
    let mut unsent = None;
    let mut delay = RECONNECT_FIRST;
    loop {
        match session(&url, &channel, &link, &mut pending, &mut unsent, &mut delay).await {
            Ok(()) => return,
            Err(error) => {
                link.disconnected();
                tracing::warn!(%error, retry_in = ?delay, "replica bus (Redis) lost; connecting again");
            }
        }
        tokio::time::sleep(delay).await;
        delay = next_delay(delay);
    }
}

async fn timed<T, E: std::fmt::Display>(
    what: &str,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(IO_TIMEOUT, work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(format!("{what}: {error}")),
        Err(_) => Err(format!("{what}: no answer in {IO_TIMEOUT:?}")),
    }
}

async fn session(
    url: &str,
    channel: &str,
    link: &Link,
    pending: &mut mpsc::Receiver<String>,
    unsent: &mut Option<String>,
    delay: &mut std::time::Duration,
) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|error| error.to_string())?;
    let mut subscriber = timed("connect", client.get_async_pubsub()).await?;
    timed("subscribe", subscriber.subscribe(channel)).await?;
    let mut publisher = timed("connect", client.get_multiplexed_async_connection()).await?;
    *delay = RECONNECT_FIRST;
    link.connected("redis");
    let mut messages = subscriber.on_message();
    let mut ping = tokio::time::interval(PING_EVERY);
    loop {
        if let Some(payload) = unsent.as_ref() {
            timed(
                "publish",
                redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(payload)
                    .query_async::<()>(&mut publisher),
            )
            .await?;
            *unsent = None;
        }
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else {
                    return Err("the subscription ended".into());
                };
                match message.get_payload::<String>() {
                    Ok(payload) => link.received(&payload),
                    Err(error) => tracing::warn!(%error, "unreadable replica event ignored"),
                }
            }
            next = pending.recv() => match next {
                Some(payload) => *unsent = Some(payload),
                None => return Ok(()),
            },
            _ = ping.tick() => {
                timed("ping", redis::cmd("PING").query_async::<String>(&mut publisher)).await?;
            }
        }
    }
}
