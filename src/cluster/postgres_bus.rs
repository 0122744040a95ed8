//! The bus over PostgreSQL `LISTEN`/`NOTIFY`: one connection of its own (not from the pool: it
//! holds a session that listens, and never runs a unit of work), which also sends.

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use super::{CHANNEL, Link, MAX_EVENT_BYTES, RECONNECT_FIRST, next_delay};

/// The mark of one part of an event too large for one notification:
/// `#<message>/<index>/<count>/<text>`.
const PART: char = '#';

/// Events being put together from their parts, at most.
const MAX_PARTIAL: usize = 256;

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
    let (notes, mut notifications) = mpsc::unbounded_channel::<Result<(i32, String), String>>();
    let _driver = Driver(tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(note)) => {
                    if notes
                        .send(Ok((note.process_id(), note.payload().to_owned())))
                        .is_err()
                    {
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
    let mut partial = Partial::default();
    let mut sent: u64 = 0;
    loop {
        if let Some(payload) = unsent.as_ref() {
            sent += 1;
            for part in parts(payload, sent) {
                timed(
                    "notify",
                    client.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &part]),
                )
                .await?;
            }
            *unsent = None;
        }
        tokio::select! {
            note = notifications.recv() => match note {
                Some(Ok((sender, payload))) => {
                    if let Some(whole) = partial.take(sender, payload) {
                        link.received(&whole);
                    }
                }
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

/// An event as notifications: itself when it fits, else numbered parts (cut between
/// characters), sent in order on one connection and so received in order.
fn parts(payload: &str, message: u64) -> Vec<String> {
    if payload.len() <= MAX_EVENT_BYTES && !payload.starts_with(PART) {
        return vec![payload.to_owned()];
    }
    let mut pieces = Vec::new();
    let mut rest = payload;
    while !rest.is_empty() {
        let mut end = rest.len().min(MAX_EVENT_BYTES);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        pieces.push(&rest[..end]);
        rest = &rest[end..];
    }
    let count = pieces.len();
    pieces
        .into_iter()
        .enumerate()
        .map(|(index, piece)| format!("{PART}{message}/{index}/{count}/{piece}"))
        .collect()
}

/// Parts received, by sending backend and message.
#[derive(Default)]
struct Partial {
    pending: std::collections::HashMap<(i32, u64), Vec<String>>,
}

impl Partial {
    /// The whole event once its last part arrives (a whole notification at once).
    fn take(&mut self, sender: i32, payload: String) -> Option<String> {
        let Some(rest) = payload.strip_prefix(PART) else {
            return Some(payload);
        };
        let mut fields = rest.splitn(4, '/');
        let (Some(message), Some(index), Some(count), Some(text)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return None;
        };
        let (Ok(message), Ok(index), Ok(count)) = (
            message.parse::<u64>(),
            index.parse::<usize>(),
            count.parse::<usize>(),
        ) else {
            return None;
        };
        // No event is larger than the bus carries (checked again, with the MAC, once whole).
        if count > super::MAX_BUS_BYTES / MAX_EVENT_BYTES + 1 || index >= count {
            return None;
        }
        if self.pending.len() >= MAX_PARTIAL {
            tracing::warn!("too many replica events in parts at once; dropping them");
            self.pending.clear();
        }
        let pieces = self.pending.entry((sender, message)).or_default();
        if pieces.len() != index {
            // A part was lost (the connection was made again): the event is.
            self.pending.remove(&(sender, message));
            return None;
        }
        pieces.push(text.to_owned());
        if pieces.len() < count {
            return None;
        }
        self.pending
            .remove(&(sender, message))
            .map(|pieces| pieces.concat())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_event_goes_in_parts_and_comes_back_whole() {
        let small = "{\"from\":\"a\"}";
        assert_eq!(parts(small, 1), vec![small.to_owned()]);
        let large = format!("{{\"text\":\"{}\"}}", "é".repeat(9000));
        let sent = parts(&large, 7);
        assert_eq!(sent.len(), 3);
        assert!(sent.iter().all(|part| part.len() <= MAX_EVENT_BYTES + 20));
        let mut partial = Partial::default();
        let mut whole = None;
        for part in sent {
            assert!(whole.is_none());
            whole = partial.take(42, part);
        }
        assert_eq!(whole.as_deref(), Some(large.as_str()));
        assert_eq!(partial.take(1, small.to_owned()).as_deref(), Some(small));
        assert!(partial.pending.is_empty());
    }
}
