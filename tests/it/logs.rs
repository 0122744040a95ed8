//! Logs an operator can use, against the real server: every line logged while a request is
//! handled carries its request id (the span around the handler), and the console's logs page
//! finds them by request id, level, upstream and text; only platform admins see it.

#![allow(
    clippy::disallowed_methods,
    reason = "tests are the gateway's clients, with clients of their own"
)]

use crate::common;

use common::{Backend, TestDb, TestServer, create_user, empty_upstream, gateway_body};
use reqwest::StatusCode;

use crate::console::{admin_page, browser_like, sign_in};

async fn lines_carry_their_request(backend: Backend) {
    let db = TestDb::new(backend).await;
    // Tests log warnings to stderr and keep info lines in the ring (LOG_RING_LEVEL, set for
    // every test server: the first of a process installs the logging, whichever test it is).
    let server = TestServer::start(&db, &[]).await;
    let (_upstream_db, upstream) = empty_upstream().await;
    // Registering an upstream logs inside the request ("upstream registered"), which names
    // neither the request nor carries its id itself.
    let registered = server
        .client
        .post(format!("{}/gateways", server.base))
        .bearer_auth(&server.admin_token)
        .header("x-request-id", "logs-test-register-1")
        .json(&gateway_body("logged-upstream", &upstream, false))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), StatusCode::CREATED);

    let page = admin_page(&server, "/admin/logs?request_id=logs-test-register-1").await;
    assert!(page.contains("<h1>Logs</h1>"), "{page}");
    assert!(
        page.contains("upstream registered"),
        "the line inside the request: {page}"
    );
    assert!(page.contains("logged-upstream"), "{page}");
    assert!(
        page.contains("http.path=/gateways"),
        "the request's own line: {page}"
    );
    assert!(!page.contains("/admin/logs?request_id=logs-test-register-2"));
    // By upstream, level and text.
    let page = admin_page(&server, "/admin/logs?upstream=logged-upstream").await;
    assert!(page.contains("upstream registered"), "{page}");
    let page = admin_page(
        &server,
        "/admin/logs?request_id=logs-test-register-1&level=warn",
    )
    .await;
    assert!(
        page.contains("No lines match this search"),
        "info lines are left out: {page}"
    );
    let page = admin_page(&server, "/admin/logs?q=UPSTREAM+REGISTERED").await;
    assert!(page.contains("upstream registered"), "{page}");
    // The audit entry links its request's log lines.
    let audit = admin_page(&server, "/admin/audit?action=gateways.create").await;
    assert!(
        audit.contains("/admin/logs?request_id=logs-test-register-1"),
        "{audit}"
    );

    // Not for developers.
    create_user(&server, "dev@example.com", "developer").await;
    let client = browser_like();
    sign_in(&server, &client, "dev@example.com", common::USER_PASSWORD).await;
    let refused = client
        .get(format!("{}/admin/logs", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(
        !refused
            .text()
            .await
            .unwrap()
            .contains("upstream registered")
    );
    server.stop().await;
    upstream.stop().await;
}

both_backends!(lines_carry_their_request);
