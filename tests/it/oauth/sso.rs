//! Console single sign-on through an external provider (`oidc-provider` on loopback) on a
//! gateway whose password sign-in is switched off: a person in headless Chromium
//! (`tests/e2e/sso.mjs`) signs in
//! through the provider's pages and lands on the dashboard with a new account (just in
//! time); an existing account (the admin) signs in the same way, played by a cookie-keeping
//! client; a callback with another state, or with no sign-in started, is refused with the
//! reason; passwords are refused on the console and the REST API.

use crate::common;

use std::process::Command;

use common::sdk::{free_port, run_json};
use common::{Backend, TestDb, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::idp::{CONSOLE_CLIENT, start_idp, through_provider};

/// Starts a console sign-in through the provider (back to the account page); answers where
/// the browser is sent.
async fn start_sign_in(server: &TestServer, browser: &reqwest::Client) -> String {
    let start = browser
        .get(format!(
            "{}/admin/sso/0?next=%2Fadmin%2Faccount",
            server.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    start.headers()["location"].to_str().unwrap().to_owned()
}

async fn console_single_sign_on(backend: Backend) {
    let db = TestDb::new(backend).await;
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let providers = json!([{
        "issuer": issuer,
        "name": "Test IdP",
        "client_id": CONSOLE_CLIENT,
        "client_secret": "test-app-secret-0123456789",
        "provision": true,
        "allow_admins": true,
    }]);
    let server = TestServer::start(
        &db,
        &[
            ("OIDC_ISSUERS", &providers.to_string()),
            ("PASSWORD_SIGN_IN", "false"),
            // The provider starts after the gateway's first fetch failed: no waiting for retry.
            ("OIDC_JWKS_MIN_REFRESH_SECONDS", "0.1"),
        ],
    )
    .await;
    let callback = format!("{}/admin/sso/callback", server.base);
    let keys = tempfile::tempdir().unwrap();
    let _idp = start_idp(port, keys.path(), "k1", &json!({}), Some(&callback));

    // Passwords are switched off: the page offers the provider only; both sign-ins refuse.
    let browser = crate::console::browser_like();
    let page = browser
        .get(format!("{}/admin/login", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Sign in with Test IdP"), "{page}");
    assert!(
        !page.contains("name=\"password\""),
        "no password form: {page}"
    );
    let refused = server
        .send(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": "admin@example.com", "password": "admin-password-for-tests"})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(
        refused.body.to_string().contains("switched off"),
        "{}",
        refused.body
    );

    // A person in Chromium: a new account, made at the first sign-in.
    crate::console::setup();
    let mut command = Command::new("node");
    command
        .arg(format!(
            "{}/tests/e2e/.deps/sso.mjs",
            env!("CARGO_MANIFEST_DIR")
        ))
        .args([
            format!("{}/admin/login", server.base),
            "sso@idp.example".to_owned(),
        ]);
    let outcome = run_json(command, "Chromium signing in").await;
    assert_eq!(
        outcome["url"],
        format!("{}/admin", server.base),
        "{outcome}"
    );
    assert_eq!(outcome["signed_in_as"], true, "{outcome}");
    let account = server
        .admin(Method::GET, "/users/sso@idp.example", None)
        .await;
    assert_eq!(account.status, StatusCode::OK, "{}", account.body);

    // An existing account, step by step: to the provider with state, nonce and PKCE...
    let authorize = start_sign_in(&server, &browser).await;
    assert!(
        authorize.starts_with(&format!("{issuer}/auth?")),
        "{authorize}"
    );
    for part in [
        "state=",
        "nonce=",
        "code_challenge_method=S256",
        "client_id=mcpgate-console",
    ] {
        assert!(authorize.contains(part), "{part}: {authorize}");
    }
    let back = through_provider(&browser, &authorize, "admin@example.com", &callback).await;
    // ...a callback whose state is not the sign-in's is refused (and ends the sign-in)...
    let forged = back.replace("state=", "state=x");
    let refused = browser.get(&forged).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("state does not match")
    );
    let again = browser.get(&back).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST, "the sign-in ended");
    assert!(again.text().await.unwrap().contains("not started here"));

    // ...so start again, and this time come back as sent.
    let authorize = start_sign_in(&server, &browser).await;
    let back = through_provider(&browser, &authorize, "admin@example.com", &callback).await;
    let signed = browser.get(&back).send().await.unwrap();
    assert_eq!(signed.status(), StatusCode::OK);
    let page = signed.text().await.unwrap();
    assert!(page.contains("url=/admin/account"), "{page}");
    let account = browser
        .get(format!("{}/admin/account", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(account.status(), StatusCode::OK);
    assert!(account.text().await.unwrap().contains("admin@example.com"));
    let users = browser
        .get(format!("{}/admin/users", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        users.status(),
        StatusCode::OK,
        "the admin's own account, with its roles"
    );
    server.stop().await;
}

both_backends!(console_single_sign_on);
