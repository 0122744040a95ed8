//! The JSON-RPC request parser every MCP endpoint runs on a client's body: any bytes give a
//! request or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(incoming) = mcpgate::mcp::jsonrpc::parse(data) {
        let _ = incoming.method();
    }
});
