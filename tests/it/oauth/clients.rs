//! The official SDKs' OAuth clients against the built-in authorization server, unattended: the
//! Python SDK's `OAuthClientProvider` (1.x and 2.x) and the TypeScript SDK's auth provider each
//! start with no token, discover, register, send the "browser" (played by their driver script:
//! sign-in, consent, the redirect captured) through `/authorize`, exchange the code and then
//! list and call tools on the virtual server — on SQLite and PostgreSQL.

use crate::common;

use std::process::Command;

use common::Backend;
use common::sdk::{deps_dir, interop_dir, run_json};
use common::world::World;
use serde_json::Value;

/// Runs one SDK's OAuth driver against `url`, signing in as the test admin.
async fn connect(sdk: &str, url: &str) -> Value {
    let deps = deps_dir();
    let mut command = match sdk {
        "python-1" | "python-2" => {
            let venv = if sdk == "python-1" { "mcp1" } else { "mcp2" };
            let mut command = Command::new(format!("{deps}/{venv}/bin/python"));
            command.arg(format!("{}/oauth_client.py", interop_dir()));
            command
        }
        "typescript" => {
            let mut command = Command::new("node");
            command.arg(format!("{deps}/node/oauth.mjs"));
            command
        }
        other => panic!("unknown sdk {other}"),
    };
    command.args([
        url,
        "admin@example.com",
        "admin-password-for-tests",
        "get_weather",
        r#"{"city": "Paris"}"#,
    ]);
    let outcome = run_json(command, &format!("{sdk}'s OAuth client")).await;
    eprintln!("{sdk}: {outcome}");
    outcome
}

async fn official_oauth_clients(backend: Backend) {
    let world = World::new(backend).await;
    let url = format!("{}{}", world.server.base, world.server_path());
    for sdk in ["python-1", "python-2", "typescript"] {
        let outcome = connect(sdk, &url).await;
        // The browser went through the gateway's authorization endpoint once...
        let authorize = outcome["authorize"].as_str().unwrap_or_default();
        assert!(
            authorize.starts_with(&format!("{}/admin/oauth/authorize?", world.server.base)),
            "{sdk}: {outcome}"
        );
        assert!(
            authorize.contains("code_challenge_method=S256"),
            "{sdk}: {outcome}"
        );
        assert_eq!(outcome["redirects"], 1, "{sdk}: {outcome}");
        // ...the client registered and holds a refreshable bearer token...
        assert!(outcome["client_id"].is_string(), "{sdk}: {outcome}");
        assert!(
            outcome["token_type"]
                .as_str()
                .is_some_and(|kind| kind.eq_ignore_ascii_case("bearer")),
            "{sdk}: {outcome}"
        );
        assert_eq!(outcome["refresh"], true, "{sdk}: {outcome}");
        // ...and used it: the virtual server's tools listed, one called.
        let tools: Vec<&str> = outcome["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("{sdk}: {outcome}"))
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(tools.contains(&"get_weather"), "{sdk}: {outcome}");
        assert_eq!(outcome["is_error"], false, "{sdk}: {outcome}");
        assert!(
            outcome["text"][0]
                .as_str()
                .is_some_and(|text| text.contains("Paris")),
            "{sdk}: {outcome}"
        );
    }
    // Each is a connected app of the admin's, on the account page.
    let browser = crate::console::admin_browser(&world.server).await;
    let account = browser
        .get(format!("{}/admin/account", world.server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for app in ["Python SDK 1", "Python SDK 2", "TypeScript SDK"] {
        assert!(account.contains(app), "{app} on the account page");
    }
    world.stop().await;
}

both_backends!(official_oauth_clients);
