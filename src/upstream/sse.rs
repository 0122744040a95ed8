//! Reading Server-Sent Events from an HTTP response body.

/// One event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `event:` (default `message`).
    pub name: String,
    /// The joined `data:` lines.
    pub data: String,
}

/// Incremental SSE parsing over a reqwest response.
pub struct EventReader {
    response: reqwest::Response,
    buffer: Vec<u8>,
    max_event_bytes: usize,
}

impl EventReader {
    /// Reads events from `response`; an event larger than `max_event_bytes` is an error.
    pub fn new(response: reqwest::Response, max_event_bytes: usize) -> Self {
        EventReader {
            response,
            buffer: Vec::new(),
            max_event_bytes,
        }
    }

    /// The next event with data, or `None` at the end of the stream.
    pub async fn next(&mut self) -> Result<Option<Event>, String> {
        loop {
            if let Some(event) = self.take() {
                return Ok(Some(event));
            }
            if self.buffer.len() > self.max_event_bytes {
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
                Some(chunk) => self.buffer.extend_from_slice(&chunk),
                None => return Ok(None),
            }
        }
    }

    /// Takes one complete event with data out of the buffer, skipping comments and empty ones.
    fn take(&mut self) -> Option<Event> {
        loop {
            let (end, separator) = find_boundary(&self.buffer)?;
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

/// The end of the first event block: a blank line (`\n\n` or `\r\n\r\n`).
fn find_boundary(buffer: &[u8]) -> Option<(usize, usize)> {
    let lf = buffer.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}
