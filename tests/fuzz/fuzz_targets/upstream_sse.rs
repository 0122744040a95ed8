//! The SSE parser the gateway runs on an upstream's streams: any bytes, cut into chunks
//! anywhere, give events or nothing, never a panic, and nothing is left behind that a blank
//! line ended.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpgate::upstream::sse::EventBuffer;

fuzz_target!(|data: &[u8]| {
    // The first byte chooses the chunk size, the rest is the stream.
    let Some((&size, stream)) = data.split_first() else {
        return;
    };
    let size = usize::from(size).max(1);
    let mut events = EventBuffer::default();
    for chunk in stream.chunks(size) {
        events.push(chunk);
        while let Some(event) = events.take() {
            assert!(!event.data.is_empty() || event.name.len() < stream.len() + 8);
        }
    }
    assert!(events.pending() <= stream.len());
});
