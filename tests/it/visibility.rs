//! Visibility over the real server, on SQLite and PostgreSQL: public, team and private items
//! as seen by an admin, their owner, a member of their team, an outsider and a viewer — on REST
//! lists and reads, writes, MCP lists and calls, and virtual servers. What is not visible is
//! "not found"; what is visible but not allowed is 403 (REST) or -32003 (MCP).

use crate::common;

use common::fixture::RestFixture;
use common::mcp::McpClient;
use common::{Backend, TestDb, TestServer, create_user};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn names(items: &Value) -> Vec<String> {
    let mut names: Vec<String> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

async fn rest_tools(server: &TestServer, token: &str) -> Vec<String> {
    let listed = server.send(Method::GET, "/tools", Some(token), None).await;
    names(&listed.expect(StatusCode::OK)["items"])
}

async fn mcp_tools(
    server: &TestServer,
    path: &str,
    token: &str,
) -> Result<Vec<String>, StatusCode> {
    let mut client = McpClient::new(server, path);
    client.token = token.to_owned();
    let listed = client.modern("tools/list", json!({})).await;
    if listed.status != StatusCode::OK {
        return Err(listed.status);
    }
    Ok(names(&listed.body["result"]["tools"]))
}

async fn who_sees_what(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[]).await;
    let fixture = RestFixture::start().await;
    let alice = create_user(&server, "alice@example.com", "developer").await;
    let bob = create_user(&server, "bob@example.com", "developer").await;
    let carol = create_user(&server, "carol@example.com", "developer").await;
    let vic = create_user(&server, "vic@example.com", "viewer").await;
    let admin = server.admin_token.clone();

    let team = server
        .send(
            Method::POST,
            "/teams",
            Some(&alice),
            Some(json!({"name": "Forecasting"})),
        )
        .await;
    let team_id = team.expect(StatusCode::CREATED)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .send(
            Method::POST,
            &format!("/teams/{team_id}/members"),
            Some(&alice),
            Some(json!({"email": "bob@example.com"})),
        )
        .await
        .expect(StatusCode::OK);

    let mut ids = Vec::new();
    for (name, visibility) in [
        ("public_tool", "public"),
        ("team_tool", "team"),
        ("private_tool", "private"),
    ] {
        let mut body = json!({"name": name, "url": format!("{}/weather/{{city}}", fixture.base),
                              "request_type": "GET", "visibility": visibility});
        if visibility == "team" {
            body["team_id"] = json!(team_id);
        }
        let created = server
            .send(Method::POST, "/tools", Some(&alice), Some(body))
            .await;
        ids.push(
            created.expect(StatusCode::CREATED)["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let outsider_in_team = server
        .send(
            Method::POST,
            "/tools",
            Some(&carol),
            Some(
                json!({"name": "sneaky", "url": "https://x.example", "request_type": "GET",
                        "visibility": "team", "team_id": team_id}),
            ),
        )
        .await;
    assert_eq!(outsider_in_team.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(outsider_in_team.body["field"], "team_id");

    let everything = ["private_tool", "public_tool", "team_tool"];
    assert_eq!(rest_tools(&server, &admin).await, everything);
    assert_eq!(rest_tools(&server, &alice).await, everything);
    assert_eq!(
        rest_tools(&server, &bob).await,
        ["public_tool", "team_tool"]
    );
    assert_eq!(rest_tools(&server, &carol).await, ["public_tool"]);
    assert_eq!(rest_tools(&server, &vic).await, ["public_tool"]);

    // Reads and writes of what you cannot see are "not found"; of what you may not change, 403.
    let private = format!("/tools/{}", ids[2]);
    let team_item = format!("/tools/{}", ids[1]);
    for (method, path, token) in [
        (Method::GET, &private, &bob),
        (Method::DELETE, &private, &bob),
        (Method::GET, &team_item, &carol),
        (Method::PUT, &team_item, &carol),
        (Method::POST, &format!("{team_item}/toggle"), &carol),
    ] {
        let body = (method == Method::PUT).then(|| json!({"description": "mine now"}));
        let reply = server.send(method.clone(), path, Some(token), body).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {path}");
    }
    server
        .send(Method::GET, &team_item, Some(&bob), None)
        .await
        .expect(StatusCode::OK);
    let viewer_delete = server
        .send(
            Method::DELETE,
            &format!("/tools/{}", ids[0]),
            Some(&vic),
            None,
        )
        .await;
    assert_eq!(viewer_delete.status, StatusCode::FORBIDDEN);

    // MCP lists show the same; calls to what is not visible are unknown tools.
    assert_eq!(
        mcp_tools(&server, "/mcp", &alice).await.unwrap(),
        everything
    );
    assert_eq!(
        mcp_tools(&server, "/mcp", &bob).await.unwrap(),
        ["public_tool", "team_tool"]
    );
    assert_eq!(
        mcp_tools(&server, "/mcp", &carol).await.unwrap(),
        ["public_tool"]
    );
    assert_eq!(
        mcp_tools(&server, "/mcp", &vic).await,
        Err(StatusCode::FORBIDDEN),
        "a viewer's roles do not grant servers.use"
    );
    let mut as_carol = McpClient::new(&server, "/mcp");
    as_carol.token = carol.clone();
    let hidden = as_carol
        .modern(
            "tools/call",
            json!({"name": "team_tool", "arguments": {"city": "Oslo"}}),
        )
        .await;
    assert_eq!(hidden.body["error"]["code"], -32602, "{}", hidden.body);
    assert!(
        hidden.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown tool")
    );
    let mut as_bob = McpClient::new(&server, "/mcp");
    as_bob.token = bob.clone();
    let allowed = as_bob
        .modern(
            "tools/call",
            json!({"name": "team_tool", "arguments": {"city": "Oslo"}}),
        )
        .await;
    assert_eq!(allowed.body["result"]["isError"], false, "{}", allowed.body);

    // A team virtual server is not found for outsiders; a public one shows each caller only
    // the members they may see.
    let members = json!(ids);
    let team_server = server
        .send(
            Method::POST,
            "/servers",
            Some(&alice),
            Some(json!({"name": "Team desk", "tool_ids": members, "visibility": "team", "team_id": team_id})),
        )
        .await;
    let team_server = team_server.expect(StatusCode::CREATED)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let public_server = server
        .send(
            Method::POST,
            "/servers",
            Some(&alice),
            Some(json!({"name": "Front desk", "tool_ids": members})),
        )
        .await;
    let public_server = public_server.expect(StatusCode::CREATED)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let team_path = format!("/servers/{team_server}/mcp");
    let public_path = format!("/servers/{public_server}/mcp");
    assert_eq!(
        mcp_tools(&server, &team_path, &bob).await.unwrap(),
        ["public_tool", "team_tool"]
    );
    assert_eq!(
        mcp_tools(&server, &team_path, &carol).await,
        Err(StatusCode::NOT_FOUND)
    );
    assert_eq!(
        mcp_tools(&server, &public_path, &carol).await.unwrap(),
        ["public_tool"]
    );
    let servers = server
        .send(Method::GET, "/servers", Some(&carol), None)
        .await;
    assert_eq!(
        names(&servers.expect(StatusCode::OK)["items"]),
        ["Front desk"]
    );

    // Seeing another user's public item is not owning it: carol may not change alice's tool.
    let public_item = format!("/tools/{}", ids[0]);
    let not_hers = server
        .send(
            Method::PUT,
            &public_item,
            Some(&carol),
            Some(json!({"description": "mine now"})),
        )
        .await;
    assert_eq!(not_hers.status, StatusCode::FORBIDDEN);
    assert!(
        not_hers.body["message"]
            .as_str()
            .unwrap()
            .contains("only its owner"),
        "{}",
        not_hers.body
    );
    let deleted = server
        .send(Method::DELETE, &public_item, Some(&carol), None)
        .await;
    assert_eq!(deleted.status, StatusCode::FORBIDDEN);

    // Moving an item to a team: only into one of yours.
    let carols = server
        .send(
            Method::POST,
            "/tools",
            Some(&carol),
            Some(json!({"name": "carols_tool", "url": "https://x.example", "request_type": "GET"})),
        )
        .await;
    let carols = format!(
        "/tools/{}",
        carols.expect(StatusCode::CREATED)["id"].as_str().unwrap()
    );
    let into_foreign_team = server
        .send(
            Method::PUT,
            &carols,
            Some(&carol),
            Some(json!({"team_id": team_id, "visibility": "team"})),
        )
        .await;
    assert_eq!(into_foreign_team.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(into_foreign_team.body["field"], "team_id");
    server
        .send(Method::DELETE, &carols, Some(&carol), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let moved = server
        .send(
            Method::PUT,
            &public_item,
            Some(&alice),
            Some(json!({"team_id": team_id, "visibility": "team"})),
        )
        .await;
    assert_eq!(moved.expect(StatusCode::OK)["team_id"], team_id.as_str());
    assert_eq!(rest_tools(&server, &carol).await, Vec::<String>::new());
    assert_eq!(
        rest_tools(&server, &bob).await,
        ["public_tool", "team_tool"]
    );
    server.stop().await;
    fixture.stop().await;
}

both_backends!(who_sees_what);
