//! Reading Server-Sent Events from an HTTP response body.

/// One event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `event:` (default `message`).
    pub name: String,
    /// The joined `data:` lines.
    pub data: String,
}

/// Incremental SSE parsing of bytes as they arrive (the part fuzzed on its own).
#[derive(Debug, Default)]
pub struct EventBuffer {
    buffer: Vec<u8>,
    /// Where the next search for a blank line starts (everything before has none).
    scanned: usize,
}

impl EventBuffer {
    /// Appends bytes read from the stream.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    /// How many bytes wait for the end of their event.
    pub fn pending(&self) -> usize {
        self.buffer.len()
    }

    /// Takes one complete event with data out of the buffer, skipping comments and empty ones.
    pub fn take(&mut self) -> Option<Event> {
        loop {
            let Some((end, separator)) = find_boundary(&self.buffer, self.scanned) else {
                // A boundary may straddle the next chunk: look again from 3 bytes back.
                self.scanned = self.buffer.len().saturating_sub(3);
                return None;
            };
            self.scanned = 0;
            let block: Vec<u8> = self.buffer.drain(..end + separator).collect();
            let text = String::from_utf8_lossy(&block[..end]);
            let mut name = String::from("message");
            let mut data: Vec<&str> = Vec::new();
            for line in text.lines() {
                if let Some(value) = line.strip_prefix("data:") {
                    data.push(value.strip_prefix(' ').unwrap_or(value));
                } else if let Some(value) = line.strip_prefix("event:") {
                    name = value.trim().to_owned();
                }
            }
            if !data.is_empty() {
                return Some(Event {
                    name,
                    data: data.join("\n"),
                });
            }
        }
    }
}

/// Incremental SSE parsing over a reqwest response.
pub struct EventReader {
    response: reqwest::Response,
    events: EventBuffer,
    max_event_bytes: usize,
}

impl EventReader {
    /// Reads events from `response`; an event larger than `max_event_bytes` is an error.
    pub fn new(response: reqwest::Response, max_event_bytes: usize) -> Self {
        EventReader {
            response,
            events: EventBuffer::default(),
            max_event_bytes,
        }
    }

    /// The next event with data, or `None` at the end of the stream.
    pub async fn next(&mut self) -> Result<Option<Event>, String> {
        loop {
            if let Some(event) = self.events.take() {
                return Ok(Some(event));
            }
            if self.events.pending() > self.max_event_bytes {
                return Err(format!(
                    "an SSE event is larger than {} bytes",
                    self.max_event_bytes
                ));
            }
            match self
                .response
                .chunk()
                .await
                .map_err(|error| error.to_string())?
            {
                Some(chunk) => self.events.push(&chunk),
                None => return Ok(None),
            }
        }
    }
}

/// The end of the first event block at or after `from`: a blank line (`\n\n` or `\r\n\r\n`).
fn find_boundary(buffer: &[u8], from: usize) -> Option<(usize, usize)> {
    let start = from.min(buffer.len());
    let lf = buffer[start..]
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| (start + i, 2));
    let crlf = buffer[start..]
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (start + i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere_are_read_whole() {
        let stream = b"event: endpoint\r\ndata: /message?x=1\r\n\r\n: comment\n\ndata: {\"a\":1}\ndata: 2\n\n";
        for split in 0..stream.len() {
            let mut events = EventBuffer::default();
            let mut seen = Vec::new();
            for chunk in [&stream[..split], &stream[split..]] {
                events.push(chunk);
                while let Some(event) = events.take() {
                    seen.push(event);
                }
            }
            assert_eq!(
                seen,
                vec![
                    Event {
                        name: "endpoint".into(),
                        data: "/message?x=1".into()
                    },
                    Event {
                        name: "message".into(),
                        data: "{\"a\":1}\n2".into()
                    },
                ],
                "split at {split}"
            );
            assert_eq!(events.pending(), 0);
        }
    }
}
