//! The SSE parser the gateway runs on an upstream's streams: any bytes, cut into chunks
//! anywhere, give events or nothing, never a panic; what waits is never more than was sent.
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
        // (Invalid UTF-8 is replaced, so an event's text may be longer than its bytes.)
        while events.take().is_some() {}
    }
    assert!(events.pending() <= stream.len());
});
