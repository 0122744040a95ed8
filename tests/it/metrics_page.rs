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
    assert!(weather.contains(" ms</td>"), "latency shown: {weather}");
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
    // The same over REST, with quantiles in milliseconds.
    let history = server
        .admin(Method::GET, "/metrics/calls?range=24h", None)
        .await;
    let history = history.expect(StatusCode::OK).clone();
    assert_eq!(history["step_seconds"], 900, "{history}");
    assert_eq!(history["points"].as_array().map(Vec::len), Some(96));
    let weather = history["tools"]
        .as_array()
        .and_then(|tools| tools.iter().find(|tool| tool["key"] == "get_weather"))
        .cloned()
        .unwrap_or_else(|| panic!("{history}"));
    assert_eq!(weather["calls"], 2);
    assert!(
        weather["p50_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "{weather}"
    );
    assert_eq!(history["servers"][0]["name"], "Metrics desk", "{history}");
    let unknown = server
        .admin(Method::GET, "/metrics/calls?range=forever", None)
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{}", unknown.body);
    assert!(
        unknown
            .body
            .to_string()
            .contains("expected one of `1h`, `6h`, `24h`, `7d`"),
        "{}",
        unknown.body
    );

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
    let refused = server
        .send(
            Method::GET,
            "/metrics/calls",
            Some(&common::token("dev@example.com", false)),
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);

    // The history survives a restart: a new process reads what the first one stored.
    server.stop().await;
    let server = TestServer::start(&db, &[]).await;
    let page = admin_page(&server, "/admin/metrics?range=7d").await;
    assert!(
        page.contains("3 calls, 1 failed.") && page.contains(">get_weather</td>"),
        "{page}"
    );
    assert!(page.contains("Calls per hour"), "{page}");
    let browser = crate::console::admin_browser(&server).await;
    let unknown = browser
        .get(format!("{}/admin/metrics?range=forever", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    assert!(
        unknown
            .text()
            .await
            .unwrap()
            .contains("choose 1h, 6h, 24h or 7d")
    );
    // A call after the restart adds to what was read, not replacing it.
    let client = McpClient::new(&server, &format!("/servers/{desk}/mcp"));
    let reply = client
        .modern(
            "tools/call",
            json!({"name": "get_weather", "arguments": {"city": "Oslo"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let history = server
        .admin(Method::GET, "/metrics/calls?range=1h", None)
        .await;
    let history = history.expect(StatusCode::OK).clone();
    let calls: u64 = history["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|point| point["calls"].as_u64().unwrap())
        .sum();
    assert_eq!(calls, 4, "{history}");
    server.stop().await;
    fixture.stop().await;
}

both_backends!(calls_are_counted_per_tool_and_server);
