//! The console's metrics page against the real server, on SQLite and PostgreSQL: after calls
//! through a virtual server (some failing), the per-tool and per-server tables show calls,
//! error rates, latency and the last error, the chart of the last hour has its axes, the same
//! figures come back on a reload, and only platform admins see it.

#![allow(
    clippy::disallowed_methods,
    reason = "tests are the gateway's clients, with clients of their own"
)]

use crate::common;

use common::fixture::RestFixture;
use common::mcp::McpClient;
use common::{Backend, TestDb, TestServer, create_user};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::console::{admin_page, browser_like, sign_in};

async fn calls_are_counted_per_tool_and_server(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[]).await;
    let fixture = RestFixture::start().await;
    let mut ids = Vec::new();
    for (name, url) in [
        ("get_weather", format!("{}/weather/{{city}}", fixture.base)),
        // Nothing listens on the discard port: every call fails.
        ("broken_tool", "http://127.0.0.1:9/nothing".to_owned()),
    ] {
        let tool = server
            .admin(
                Method::POST,
                "/tools",
                Some(json!({"name": name, "url": url, "request_type": "GET",
                            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}})),
            )
            .await;
        ids.push(tool.expect(StatusCode::CREATED)["id"].clone());
    }
    let desk = server
        .admin(
            Method::POST,
            "/servers",
            Some(json!({"name": "Metrics desk", "tool_ids": ids})),
        )
        .await;
    let desk = desk.expect(StatusCode::CREATED)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let client = McpClient::new(&server, &format!("/servers/{desk}/mcp"));
    for tool in ["get_weather", "get_weather", "broken_tool"] {
        let reply = client
            .modern(
                "tools/call",
                json!({"name": tool, "arguments": {"city": "Oslo"}}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }

    let page = admin_page(&server, "/admin/metrics").await;
    let row = |name: &str| -> String {
        let start = page
            .find(&format!(">{name}</td>"))
            .unwrap_or_else(|| panic!("{name}: {page}"));
        page[start..start + page[start..].find("</tr>").unwrap()].to_owned()
    };
    let weather = row("get_weather");
    assert!(
        weather.contains(">2</td>") && weather.contains("0.0 %"),
        "{weather}"
    );
    assert!(weather.contains("≤ "), "latency shown: {weather}");
    let broken = row("broken_tool");
    assert!(
        broken.contains(">1</td>") && broken.contains("100.0 %"),
        "{broken}"
    );
    let desk_row = row("Metrics desk");
    assert!(
        desk_row.contains(">3</td>") && desk_row.contains("33.3 %"),
        "{desk_row}"
    );
    assert!(
        page.contains("3 calls, 1 failed."),
        "the chart's total: {page}"
    );
    assert!(page.contains(" UTC</text>") && page.contains(r#"text-anchor="end">0</text>"#));
    // Kept in memory: a reload shows the same.
    let again = admin_page(&server, "/admin/metrics").await;
    assert!(again.contains("3 calls, 1 failed."));

    create_user(&server, "dev@example.com", "developer").await;
    let browser = browser_like();
    sign_in(&server, &browser, "dev@example.com", common::USER_PASSWORD).await;
    let refused = browser
        .get(format!("{}/admin/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(!refused.text().await.unwrap().contains("broken_tool"));
    server.stop().await;
    fixture.stop().await;
}

both_backends!(calls_are_counted_per_tool_and_server);
