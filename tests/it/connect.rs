//! The connect panel of a virtual server, against the real server: full URLs, a token for this
//! server made in place (shown once, for that server only), and configurations that work as
//! pasted — the curl command is run by bash, the JSON configurations are parsed and their URL
//! and headers used for a real MCP request.

#![allow(
    clippy::disallowed_methods,
    reason = "tests are the gateway's clients, with clients of their own"
)]

use crate::common;

use common::fixture::RestFixture;
use common::mcp::McpClient;
use common::{Backend, TestDb, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::console::{field, page};

/// Text as it was before the templates escaped it into HTML.
fn unescaped(html: &str) -> String {
    html.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&#x2F;", "/")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The text of the configuration `id` on the page.
fn config(html: &str, id: &str) -> String {
    let marker = format!("id=\"client-{id}\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {id} in {html}"));
    let text = &html[start..];
    let open = text.find('>').unwrap() + 1;
    let close = text.find("</textarea>").unwrap();
    unescaped(&text[open..close])
}

/// The value of the read-only input `id`.
fn input(html: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\" readonly value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {id} in {html}"))
        + marker.len();
    unescaped(html[start..].split('"').next().unwrap())
}

/// `tools/list` (2026-07-28) at `url` with `headers`; the tool names, or the status.
async fn list_tools(
    server: &TestServer,
    url: &str,
    headers: &serde_json::Map<String, Value>,
) -> Result<Vec<String>, u16> {
    let body = McpClient::new(server, "/mcp").modern_body("tools/list", json!({}));
    let mut request = reqwest::Client::new().post(url).json(&body);
    for (name, value) in McpClient::modern_headers(&body) {
        request = request.header(name, value);
    }
    request = request.header("accept", "application/json, text/event-stream");
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str().unwrap());
    }
    let response = request.send().await.unwrap();
    if response.status() != StatusCode::OK {
        return Err(response.status().as_u16());
    }
    let answer: Value = response.json().await.unwrap();
    Ok(answer["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"))
        .iter()
        .map(|tool| tool["name"].as_str().unwrap().to_owned())
        .collect())
}

async fn configurations_work_as_pasted(backend: Backend) {
    crate::console::setup();
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[]).await;
    let fixture = RestFixture::start().await;
    let tool = server
        .admin(
            Method::POST,
            "/tools",
            Some(json!({"name": "get_weather", "url": format!("{}/weather/{{city}}", fixture.base), "request_type": "GET",
                        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}})),
        )
        .await;
    let tool_id = tool.expect(StatusCode::CREATED)["id"].clone();
    let desk = server
        .admin(
            Method::POST,
            "/servers",
            Some(json!({"name": "Desk tools", "tool_ids": [tool_id]})),
        )
        .await;
    let id = desk.expect(StatusCode::CREATED)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = server
        .admin(Method::POST, "/servers", Some(json!({"name": "Other"})))
        .await;
    let other = other.expect(StatusCode::CREATED)["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let client = crate::console::admin_browser(&server).await;
    let list = page(&client, &server, "/admin/servers").await;
    assert!(
        list.contains(&format!("/admin/servers/{id}/connect")),
        "{list}"
    );
    let html = page(&client, &server, &format!("/admin/servers/{id}/connect")).await;
    let mcp = format!("{}/servers/{id}/mcp", server.base);
    assert_eq!(input(&html, "url-mcp"), mcp);
    assert_eq!(
        input(&html, "url-sse"),
        format!("{}/servers/{id}/sse", server.base)
    );
    assert!(config(&html, "vscode").contains("YOUR_TOKEN"));

    // A token for this server, made in place and shown once.
    let csrf = field(&html, "csrf");
    let made = client
        .post(format!("{}/admin/servers/{id}/connect", server.base))
        .form(&[
            ("csrf", csrf.as_str()),
            ("name", "desk laptop"),
            ("expires_in_days", "7"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), StatusCode::CREATED);
    let html = made.text().await.unwrap();
    let token = input(&html, "server-token");
    assert!(token.len() > 20, "{html}");

    // VS Code and Cursor: their URL and headers make a working request.
    let vscode: Value = serde_json::from_str(&config(&html, "vscode")).expect("VS Code JSON");
    let entry = &vscode["servers"]["mcpgate-desk-tools"];
    assert_eq!(entry["type"], "http");
    assert_eq!(entry["url"], mcp.as_str());
    let tools = list_tools(&server, &mcp, entry["headers"].as_object().unwrap()).await;
    assert_eq!(tools, Ok(vec!["get_weather".to_owned()]));
    let cursor: Value = serde_json::from_str(&config(&html, "cursor")).expect("Cursor JSON");
    let entry = &cursor["mcpServers"]["mcpgate-desk-tools"];
    assert_eq!(
        list_tools(
            &server,
            entry["url"].as_str().unwrap(),
            entry["headers"].as_object().unwrap()
        )
        .await,
        Ok(vec!["get_weather".to_owned()])
    );
    let desktop: Value =
        serde_json::from_str(&config(&html, "claude-desktop")).expect("Claude Desktop JSON");
    let entry = &desktop["mcpServers"]["mcpgate-desk-tools"];
    assert_eq!(entry["args"][2], mcp.as_str());
    assert_eq!(entry["env"]["MCPGATE_AUTH"], format!("Bearer {token}"));
    for id in ["claude-code", "inspector"] {
        let text = config(&html, id);
        assert!(text.contains(&mcp) && text.contains(&token), "{id}: {text}");
    }

    // curl, run as pasted.
    let curl = config(&html, "curl");
    let output = tokio::process::Command::new("bash")
        .args(["-c", &curl])
        .output()
        .await
        .expect("bash runs");
    assert!(
        output.status.success(),
        "{curl}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: Value =
        serde_json::from_slice(&output.stdout).expect("curl prints the JSON answer");
    assert_eq!(
        answer["result"]["tools"][0]["name"], "get_weather",
        "{answer}"
    );

    // The token is this server's only.
    let bearer = serde_json::Map::from_iter([(
        "authorization".to_owned(),
        json!(format!("Bearer {token}")),
    )]);
    let elsewhere = list_tools(
        &server,
        &format!("{}/servers/{other}/mcp", server.base),
        &bearer,
    )
    .await;
    // (Elsewhere the server is as if it did not exist, as for any server-restricted token.)
    assert_eq!(elsewhere, Err(404));
    let everything = list_tools(&server, &format!("{}/mcp", server.base), &bearer).await;
    assert_eq!(everything, Err(404));
    let reply = server.send(Method::GET, "/tools", Some(&token), None).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    // Shown once: the page again has no token.
    let again = page(&client, &server, &format!("/admin/servers/{id}/connect")).await;
    assert!(!again.contains(&token));
    // A server one may not see is not found.
    let missing = client
        .get(format!("{}/admin/servers/nope/connect", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    server.stop().await;
    fixture.stop().await;
}

both_backends!(configurations_work_as_pasted);
