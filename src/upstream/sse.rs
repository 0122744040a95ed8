//! Reading Server-Sent Events from an HTTP response body.

/// One event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `event:` (default `message`).
    pub name: String,
    /// The joined `data:` lines.
    pub data: String,
}

/// Incremental SSE parsing of bytes as they arrive, as the HTML Standard's event-stream
/// interpretation describes it: lines end with CRLF, LF or a lone CR (a CR at the end of one
/// chunk and a LF at the start of the next are one line end); a blank line dispatches the
/// event; `data:` lines join with LF; `event:` names it; comments (`:`) and unknown fields are
/// ignored; a field without a colon has an empty value; a leading BOM is skipped. Each byte is
/// looked at once (the part fuzzed on its own).
#[derive(Debug, Default)]
pub struct EventBuffer {
    /// The unfinished line.
    line: Vec<u8>,
    /// The last byte seen was a CR: a LF next ends nothing more.
    after_cr: bool,
    /// Whether the stream's first bytes have been looked at (for the BOM).
    started: bool,
    /// The event being assembled: its name, if given.
    name: Option<String>,
    /// Its data lines, each followed by LF (bytes: text is decoded once, at dispatch).
    data: Vec<u8>,
    /// Whether a `data` field was seen.
    has_data: bool,
    /// Complete events not yet taken.
    ready: std::collections::VecDeque<Event>,
}

impl EventBuffer {
    /// Appends bytes read from the stream.
    pub fn push(&mut self, mut chunk: &[u8]) {
        if !self.started && !chunk.is_empty() {
            let bom = [0xEF, 0xBB, 0xBF];
            let seen = (self.line.len() + chunk.len()).min(3);
            let mut head = self.line.clone();
            head.extend_from_slice(&chunk[..seen - self.line.len()]);
            if bom.starts_with(&head) && head.len() < 3 {
                // Too early to tell: keep the bytes until the BOM is whole or broken.
                self.line = head;
                return;
            }
            self.started = true;
            if head == bom {
                chunk = &chunk[3 - self.line.len()..];
                self.line.clear();
            }
        }
        for &byte in chunk {
            match byte {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = byte == b'\r';
                    let line = std::mem::take(&mut self.line);
                    self.line_ended(&line);
                    self.line = line;
                    self.line.clear();
                }
                _ => {
                    self.after_cr = false;
                    self.line.push(byte);
                }
            }
        }
    }

    fn line_ended(&mut self, line: &[u8]) {
        if line.is_empty() {
            if self.has_data {
                let mut data = std::mem::take(&mut self.data);
                data.pop(); // the LF after the last data line
                self.ready.push_back(Event {
                    name: self.name.take().unwrap_or_else(|| "message".to_owned()),
                    data: String::from_utf8_lossy(&data).into_owned(),
                });
            }
            self.name = None;
            self.data.clear();
            self.has_data = false;
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match field {
            b"data" => {
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
                self.has_data = true;
            }
            b"event" => self.name = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {}
        }
    }

    /// How many bytes wait for the end of their event.
    pub fn pending(&self) -> usize {
        self.line.len() + self.data.len()
    }

    /// Takes one complete event with data, if there is one.
    pub fn take(&mut self) -> Option<Event> {
        self.ready.pop_front()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `stream` cut at every pair of places, and byte by byte.
    fn read_every_way(stream: &[u8]) -> Vec<Vec<Event>> {
        let mut outcomes = Vec::new();
        let mut read = |chunks: &[&[u8]]| {
            let mut events = EventBuffer::default();
            let mut seen = Vec::new();
            for chunk in chunks {
                events.push(chunk);
                while let Some(event) = events.take() {
                    seen.push(event);
                }
            }
            outcomes.push(seen);
        };
        for first in 0..=stream.len() {
            for second in first..=stream.len() {
                read(&[&stream[..first], &stream[first..second], &stream[second..]]);
            }
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        read(&bytes);
        outcomes
    }

    fn event(name: &str, data: &str) -> Event {
        Event {
            name: name.into(),
            data: data.into(),
        }
    }

    #[test]
    fn every_line_ending_and_split_gives_the_same_events() {
        let expected = vec![
            event("endpoint", "/message?x=1"),
            event("message", "{\"a\":1}\n2"),
            event("message", ""),
        ];
        for newline in ["\n", "\r\n", "\r"] {
            let stream = [
                "event: endpoint",
                "data: /message?x=1",
                "",
                ": comment",
                "",
                "data:{\"a\":1}",
                "data: 2",
                "retry: 5",
                "",
                "event: skipped",
                "",
                "data",
                "",
                "data: unfinished",
            ]
            .join(newline);
            for (index, seen) in read_every_way(stream.as_bytes()).into_iter().enumerate() {
                assert_eq!(seen, expected, "{newline:?}, way {index}");
            }
        }
        // Mixed endings, including CRLF then LF as the blank line.
        for seen in read_every_way(b"data: a\r\n\ndata: b\n\r\ndata: c\r\r") {
            assert_eq!(
                seen,
                vec![
                    event("message", "a"),
                    event("message", "b"),
                    event("message", "c")
                ]
            );
        }
    }

    #[test]
    fn a_leading_bom_is_skipped_and_data_waits_until_its_blank_line() {
        for seen in read_every_way(b"\xEF\xBB\xBFdata: x\n\n") {
            assert_eq!(seen, vec![event("message", "x")]);
        }
        // A broken BOM is part of the first field's name, which is then unknown.
        for seen in read_every_way(b"\xEF\xBBdata: x\n\ndata: y\n\n") {
            assert_eq!(seen, vec![event("message", "y")]);
        }
        let mut events = EventBuffer::default();
        events.push(b"data: abc\ndata: de");
        assert!(events.take().is_none());
        assert_eq!(events.pending(), "abc\n".len() + "data: de".len());
        events.push(b"\n\n");
        assert_eq!(events.take(), Some(event("message", "abc\nde")));
        assert_eq!(events.pending(), 0);
    }

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
