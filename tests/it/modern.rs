//! The project's own 2026-07-28 scenario set through the gateway: the official Python SDK 2.x
//! client (`tests/interop/modern_scenarios.py`) against the gateway's `/mcp`, federating a
//! 2026-07-28 upstream on the same SDK (`tests/interop/mrtr_server.py`): discovery, cache hints
//! the SDK's cache honours, the header checks, `subscriptions/listen` following the upstream's
//! list change, a multi round-trip (input_required) call answered by the SDK's callback, and
//! the per-request log level with progress.

use crate::common;

use std::process::Command;

use common::sdk::{deps_dir, interop_dir, run_json, start_mrtr_server};
use common::{Backend, TestDb, TestServer, token};
use serde_json::{Value, json};

/// Runs every scenario once; what each observed, by name.
async fn run_scenarios(gateway: &TestServer) -> Value {
    let mut command = Command::new(format!("{}/mcp2/bin/python", deps_dir()));
    command
        .arg(format!("{}/modern_scenarios.py", interop_dir()))
        .arg(format!("{}/mcp", gateway.base))
        .arg(token("admin@example.com", true));
    let outcome = run_json(command, "modern_scenarios.py").await;
    eprintln!("{}", serde_json::to_string_pretty(&outcome).unwrap());
    outcome
}

async fn the_modern_scenarios_pass_through_the_gateway(backend: Backend) {
    let db = TestDb::new(backend).await;
    let gateway = TestServer::start(&db, &[("SSRF_ALLOW_LOCALHOST", "true")]).await;
    let upstream = start_mrtr_server().await;
    common::register_gateway(&gateway, "Asker", &upstream.url).await;
    let seen = run_scenarios(&gateway).await;
    for (name, scenario) in seen.as_object().expect("scenarios by name") {
        assert!(scenario.get("error").is_none(), "{name} raised: {scenario}");
    }

    // server/discover, answered by the gateway for everything it federates.
    assert_eq!(
        seen["discover"],
        json!({"protocol": "2026-07-28", "server": "mcpgate", "tools": true, "resources": true, "prompts": true})
    );
    // The gateway's cache hints (MCP_CACHE_TTL_MS, private: what is listed depends on who
    // asks) are honoured by the SDK's cache.
    assert_eq!(
        seen["cache_hints"],
        json!({"ttl_ms": 10000, "cache_scope": "private", "second_list_served_from_cache": true,
               "bypass_went_to_the_gateway": true, "same_tools": true})
    );
    // The SDK's headers are accepted; each one that disagrees with the body, or is missing, is
    // refused with 400 and -32020 (a wrong protocol version: -32022).
    let headers = &seen["headers"];
    assert_eq!(
        headers["sent"],
        json!([{"mcp-method": "tools/call", "mcp-name": "asker-grow",
                "mcp-protocol-version": "2026-07-28", "mcp-session-id": null}]),
        "{headers}"
    );
    for case in ["method_mismatch", "name_mismatch", "name_missing"] {
        assert_eq!(
            headers["refusals"][case],
            json!({"status": 400, "code": -32020}),
            "{case}: {headers}"
        );
    }
    assert_eq!(headers["refusals"]["version_mismatch"]["status"], 400);
    // The upstream's list change reaches the gateway's listeners, and the new tool is served.
    assert_eq!(
        seen["listen"],
        json!({"honored": true, "event": "ToolsListChanged", "new_tool_listed": true})
    );
    // input_required passes through; the SDK answers it and retries once.
    assert_eq!(
        seen["mrtr"],
        json!({"asked": ["Confirm deploy?"], "text": ["deploy accept by octocat (state confirm:deploy)"],
               "is_error": false, "round_trips": 2})
    );
    // The request's own log level decides which of the upstream's log messages come back.
    assert_eq!(
        seen["log_level"],
        json!({"at_warning": ["warning", "error"], "progress": [1.0, 2.0, 3.0],
               "at_error": ["error"], "unasked": []})
    );
    gateway.stop().await;
}

once_on_sqlite!(the_modern_scenarios_pass_through_the_gateway);
