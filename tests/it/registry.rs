//! The registry REST API over HTTP, on SQLite and PostgreSQL: every endpoint, happy paths and
//! each error class.

use crate::common;

use common::{Backend, TestDb, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn rest_tool(name: &str) -> Value {
    json!({
        "name": name,
        "description": "Gets the weather",
        "url": "https://api.example.com/weather",
        "request_type": "GET",
        "headers": {"Authorization": "Bearer upstream-secret", "X-Client": "mcpgate"},
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "annotations": {"readOnlyHint": true},
        "tags": ["weather", "weather", "demo"]
    })
}

async fn tools_crud(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[]).await;

    let created = server
        .admin(Method::POST, "/tools", Some(rest_tool("get_weather")))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.headers["location"], format!("/tools/{id}").as_str());
    assert_eq!(created.body["name"], "get_weather");
    assert_eq!(created.body["integration_type"], "REST");
    assert_eq!(created.body["tags"], json!(["weather", "demo"]));
    assert_eq!(
        created.body["headers"],
        json!({"Authorization": "*****", "X-Client": "*****"}),
        "header values are write-only"
    );
    assert_eq!(created.body["owner_email"], "admin@example.com");

    let fetched = server
        .admin(Method::GET, &format!("/tools/{id}"), None)
        .await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.body, created.body);

    // Partial update; the masked header value keeps the stored secret.
    let updated = server
        .admin(
            Method::PUT,
            &format!("/tools/{id}"),
            Some(json!({
                "name": "weather_now",
                "description": null,
                "headers": {"Authorization": "*****", "X-Client": "v2"}
            })),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["name"], "weather_now");
    assert_eq!(updated.body["description"], Value::Null);
    assert_eq!(
        updated.body["headers"],
        json!({"Authorization": "*****", "X-Client": "*****"})
    );
    // A masked value keeps only a value that is stored.
    let unknown = server
        .admin(
            Method::PUT,
            &format!("/tools/{id}"),
            Some(json!({"headers": {"X-Other": "*****"}})),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        unknown.message().contains("headers.X-Other"),
        "{}",
        unknown.body
    );
    assert_eq!(updated.body["url"], "https://api.example.com/weather");

    // Toggle: disabled tools leave the default list.
    let disabled = server
        .admin(
            Method::POST,
            &format!("/tools/{id}/toggle?activate=false"),
            None,
        )
        .await;
    assert_eq!(disabled.status, StatusCode::OK);
    assert_eq!(disabled.body["enabled"], false);
    let listed = server.admin(Method::GET, "/tools", None).await;
    assert_eq!(listed.body["items"], json!([]));
    let listed = server
        .admin(Method::GET, "/tools?include_inactive=true", None)
        .await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    let flipped = server
        .admin(Method::POST, &format!("/tools/{id}/toggle"), None)
        .await;
    assert_eq!(flipped.body["enabled"], true, "no activate flips the state");

    let deleted = server
        .admin(Method::DELETE, &format!("/tools/{id}"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = server
        .admin(Method::GET, &format!("/tools/{id}"), None)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.code(), "not-found");
    server.stop().await;
}

async fn resources_prompts_gateways_crud(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[("SSRF_ALLOW_LOCALHOST", "true")]).await;
    let (_upstream_db, upstream) = common::empty_upstream().await;

    let resource = server
        .admin(
            Method::POST,
            "/resources",
            Some(json!({"uri": "docs://guide", "name": "Guide", "content": "Read me", "mimeType": "text/markdown"})),
        )
        .await;
    assert_eq!(resource.status, StatusCode::CREATED, "{}", resource.body);
    assert_eq!(resource.body["mime_type"], "text/markdown");
    let template = server
        .admin(
            Method::POST,
            "/resources",
            Some(json!({"uri_template": "docs://{section}", "name": "Sections"})),
        )
        .await;
    assert_eq!(template.status, StatusCode::CREATED, "{}", template.body);
    let resource_id = resource.body["id"].as_str().unwrap();
    let changed = server
        .admin(
            Method::PUT,
            &format!("/resources/{resource_id}"),
            Some(json!({"content": "Read me twice"})),
        )
        .await;
    assert_eq!(changed.body["content"], "Read me twice");

    let prompt = server
        .admin(
            Method::POST,
            "/prompts",
            Some(json!({
                "name": "summarise",
                "template": "Summarise {{ text }} in {{ words }} words",
                "arguments": [{"name": "text", "required": true}, {"name": "words"}]
            })),
        )
        .await;
    assert_eq!(prompt.status, StatusCode::CREATED, "{}", prompt.body);
    assert_eq!(
        prompt.body["arguments"][0],
        json!({"name": "text", "required": true})
    );
    let prompt_id = prompt.body["id"].as_str().unwrap();
    let changed = server
        .admin(
            Method::PUT,
            &format!("/prompts/{prompt_id}"),
            Some(json!({"template": "Just {{ text }}"})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);

    let gateway = server
        .admin(
            Method::POST,
            "/gateways",
            Some(common::gateway_body("Weather Upstream", &upstream, true)),
        )
        .await;
    assert_eq!(gateway.status, StatusCode::CREATED, "{}", gateway.body);
    assert_eq!(gateway.body["slug"], "weather-upstream");
    assert_eq!(gateway.body["transport"], "sse");
    let gateway_id = gateway.body["id"].as_str().unwrap();
    let renamed = server
        .admin(
            Method::PUT,
            &format!("/gateways/{gateway_id}"),
            Some(json!({"name": "Forecasts"})),
        )
        .await;
    assert_eq!(renamed.body["slug"], "forecasts");

    for path in ["/resources", "/prompts", "/gateways"] {
        let listed = server.admin(Method::GET, path, None).await;
        assert_eq!(listed.status, StatusCode::OK);
        assert!(
            !listed.body["items"].as_array().unwrap().is_empty(),
            "{path}"
        );
    }
    for path in [
        format!("/resources/{resource_id}"),
        format!("/prompts/{prompt_id}"),
        format!("/gateways/{gateway_id}"),
    ] {
        let toggled = server
            .admin(Method::POST, &format!("{path}/toggle?activate=false"), None)
            .await;
        assert_eq!(toggled.body["enabled"], false, "{path}");
        assert_eq!(
            server.admin(Method::DELETE, &path, None).await.status,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            server.admin(Method::GET, &path, None).await.status,
            StatusCode::NOT_FOUND
        );
    }
    server.stop().await;
}

async fn servers_with_members(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[]).await;
    let tool_a = server
        .admin(Method::POST, "/tools", Some(rest_tool("a")))
        .await
        .body["id"]
        .clone();
    let tool_b = server
        .admin(Method::POST, "/tools", Some(rest_tool("b")))
        .await
        .body["id"]
        .clone();
    let prompt = server
        .admin(
            Method::POST,
            "/prompts",
            Some(json!({"name": "p", "template": "hi"})),
        )
        .await
        .body["id"]
        .clone();

    let created = server
        .admin(
            Method::POST,
            "/servers",
            Some(json!({"name": "Weather", "tool_ids": [tool_b, tool_a, tool_b], "prompt_ids": [prompt]})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(
        created.body["tool_ids"],
        json!([tool_b, tool_a]),
        "order kept, duplicates removed"
    );
    let id = created.body["id"].as_str().unwrap().to_owned();

    let fetched = server
        .admin(Method::GET, &format!("/servers/{id}"), None)
        .await;
    assert_eq!(fetched.body["tool_ids"], json!([tool_b, tool_a]));
    assert_eq!(fetched.body["prompt_ids"], json!([prompt]));

    let updated = server
        .admin(
            Method::PUT,
            &format!("/servers/{id}"),
            Some(json!({"tool_ids": [tool_a], "description": "now"})),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["tool_ids"], json!([tool_a]));
    assert_eq!(
        updated.body["prompt_ids"],
        json!([prompt]),
        "unmentioned members stay"
    );

    let unknown = server
        .admin(
            Method::PUT,
            &format!("/servers/{id}"),
            Some(json!({"tool_ids": ["nope"]})),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(unknown.body["field"], "tool_ids");
    let unchanged = server
        .admin(Method::GET, &format!("/servers/{id}"), None)
        .await;
    assert_eq!(
        unchanged.body["tool_ids"],
        json!([tool_a]),
        "a rejected update changes nothing"
    );

    // Deleting a tool removes it from servers.
    server
        .admin(
            Method::DELETE,
            &format!("/tools/{}", tool_a.as_str().unwrap()),
            None,
        )
        .await;
    let listed = server.admin(Method::GET, "/servers", None).await;
    assert_eq!(listed.body["items"][0]["tool_ids"], json!([]));

    let toggled = server
        .admin(
            Method::POST,
            &format!("/servers/{id}/toggle?activate=false"),
            None,
        )
        .await;
    assert_eq!(toggled.body["enabled"], false);
    assert_eq!(toggled.body["prompt_ids"], json!([prompt]));
    assert_eq!(
        server
            .admin(Method::DELETE, &format!("/servers/{id}"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        server
            .admin(Method::GET, &format!("/servers/{id}"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    server.stop().await;
}

async fn bad_input_gets_clear_errors(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(
        &db,
        &[
            ("MAX_REQUEST_BODY_BYTES", "4096"),
            ("SSRF_ALLOW_LOCALHOST", "true"),
        ],
    )
    .await;
    let (_upstream_db, upstream) = common::empty_upstream().await;
    let created = server
        .admin(Method::POST, "/tools", Some(rest_tool("taken")))
        .await;
    let id = created.body["id"].as_str().unwrap().to_owned();

    let malformed = server
        .send_raw(
            Method::POST,
            "/tools",
            "application/json",
            b"{\"name\": ".to_vec(),
        )
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.code(), "malformed-json");

    let cases: Vec<(Value, &str)> = vec![
        (json!({"url": "https://x.example"}), "name"),
        (json!({"name": 5, "url": "https://x.example"}), "name"),
        (
            json!({"name": "has space", "url": "https://x.example"}),
            "name",
        ),
        (json!({"name": "ok", "url": "ftp://x.example"}), "url"),
        (json!({"name": "ok"}), "url"),
        (
            json!({"name": "ok", "url": "https://x.example", "surprise": 1}),
            "surprise",
        ),
        (
            json!({"name": "ok", "url": "https://x.example", "input_schema": {"type": "string"}}),
            "input_schema",
        ),
        (
            json!({"name": "ok", "url": "https://x.example", "input_schema": {"type": "object", "properties": 3}}),
            "input_schema",
        ),
        (
            json!({"name": "ok", "url": "https://x.example", "request_type": "TRACE"}),
            "request_type",
        ),
        (
            json!({"name": "ok", "url": "https://x.example", "annotations": {"readOnlyHint": "yes"}}),
            "annotations.readOnlyHint",
        ),
        (
            json!({"name": "ok", "url": "https://x.example", "integration_type": "MCP"}),
            "integration_type",
        ),
    ];
    for (body, field) in cases {
        let reply = server
            .admin(Method::POST, "/tools", Some(body.clone()))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body} -> {}",
            reply.body
        );
        assert_eq!(reply.body["field"], field, "{body} -> {}", reply.body);
        assert!(!reply.body["message"].as_str().unwrap().is_empty());
    }
    let bad_template = server
        .admin(
            Method::POST,
            "/prompts",
            Some(json!({"name": "p", "template": "{{ unclosed"})),
        )
        .await;
    assert_eq!(bad_template.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_template.body["field"], "template");
    let both_uris = server
        .admin(
            Method::POST,
            "/resources",
            Some(json!({"uri": "a://b", "uri_template": "a://{b}", "name": "x"})),
        )
        .await;
    assert_eq!(both_uris.status, StatusCode::UNPROCESSABLE_ENTITY);
    let unknown_member = server
        .admin(
            Method::POST,
            "/servers",
            Some(json!({"name": "s", "resource_ids": ["missing"]})),
        )
        .await;
    assert_eq!(unknown_member.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(unknown_member.body["field"], "resource_ids");

    let duplicate = server
        .admin(Method::POST, "/tools", Some(rest_tool("taken")))
        .await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    assert_eq!(duplicate.code(), "conflict");
    let other = server
        .admin(Method::POST, "/tools", Some(rest_tool("other")))
        .await;
    let other_id = other.body["id"].as_str().unwrap();
    let rename_clash = server
        .admin(
            Method::PUT,
            &format!("/tools/{other_id}"),
            Some(json!({"name": "taken"})),
        )
        .await;
    assert_eq!(rename_clash.status, StatusCode::CONFLICT);
    server
        .admin(
            Method::POST,
            "/gateways",
            Some(common::gateway_body("G one", &upstream, false)),
        )
        .await;
    let slug_clash = server
        .admin(
            Method::POST,
            "/gateways",
            Some(common::gateway_body("g-one", &upstream, false)),
        )
        .await;
    assert_eq!(slug_clash.status, StatusCode::CONFLICT);
    let dup_uri = server
        .admin(
            Method::POST,
            "/resources",
            Some(json!({"uri": "docs://x", "name": "a", "content": "1"})),
        )
        .await;
    assert_eq!(dup_uri.status, StatusCode::CREATED);
    let dup_uri = server
        .admin(
            Method::POST,
            "/resources",
            Some(json!({"uri": "docs://x", "name": "b", "content": "2"})),
        )
        .await;
    assert_eq!(dup_uri.status, StatusCode::CONFLICT);

    for (method, path) in [
        (Method::GET, "/tools/no-such-id"),
        (Method::DELETE, "/tools/no-such-id"),
        (Method::POST, "/tools/no-such-id/toggle"),
        (Method::GET, "/servers/no-such-id"),
        (Method::DELETE, "/servers/no-such-id"),
        (Method::POST, "/prompts/no-such-id/toggle"),
    ] {
        let reply = server.admin(method.clone(), path, None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {path}");
    }
    let put_missing = server
        .admin(
            Method::PUT,
            "/tools/no-such-id",
            Some(json!({"description": "x"})),
        )
        .await;
    assert_eq!(put_missing.status, StatusCode::NOT_FOUND);

    let no_token = server.send(Method::GET, "/tools", None, None).await;
    assert_eq!(no_token.status, StatusCode::UNAUTHORIZED);
    assert!(
        no_token.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let bad_token = server
        .send(Method::GET, "/tools", Some("not-a-jwt"), None)
        .await;
    assert_eq!(bad_token.status, StatusCode::UNAUTHORIZED);
    let foreign = mcpgate::auth::jwt::JwtKeys::hs256(
        "another-secret-another-secret-another",
        "mcpgate",
        "mcpgate-api",
    )
    .issue("x@example.com", true, std::time::Duration::from_secs(60))
    .unwrap();
    let forged = server
        .send(Method::GET, "/tools", Some(&foreign), None)
        .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    let user = common::create_user(&server, "dev@example.com", "developer").await;
    let not_admin = server
        .send(Method::GET, "/admin/pool-stats", Some(&user), None)
        .await;
    assert_eq!(not_admin.status, StatusCode::FORBIDDEN);
    let as_user = server.send(Method::GET, "/tools", Some(&user), None).await;
    assert_eq!(as_user.status, StatusCode::OK);

    let huge =
        json!({"name": "big", "url": "https://x.example", "description": "x".repeat(10_000)});
    let too_large = server
        .send_raw(
            Method::POST,
            "/tools",
            "application/json",
            serde_json::to_vec(&huge).unwrap(),
        )
        .await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    let form = server
        .send_raw(
            Method::POST,
            "/tools",
            "application/x-www-form-urlencoded",
            b"name=x".to_vec(),
        )
        .await;
    assert_eq!(form.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    for query in [
        "limit=0",
        "limit=501",
        "limit=abc",
        "cursor=%%%",
        "cursor=bm90LWEtcmVhbC1jdXJzb3ItaWQtd2l0aC1tb3JlLXRoYW4tc2l4dHktZm91ci1ieXRlcy1vZi10ZXh0LWluLWl0",
        "unknown=1",
    ] {
        let reply = server
            .admin(Method::GET, &format!("/tools?{query}"), None)
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            reply.body
        );
    }
    let nowhere = server.admin(Method::GET, "/no/such/endpoint", None).await;
    assert_eq!(nowhere.status, StatusCode::NOT_FOUND);
    assert_eq!(nowhere.code(), "not-found");

    // Nothing stored was lost or changed by any of the above.
    let kept = server
        .admin(Method::GET, &format!("/tools/{id}"), None)
        .await;
    assert_eq!(kept.status, StatusCode::OK);
    assert_eq!(kept.body["name"], "taken");
    let stats = server.pool_stats().await;
    assert_eq!(stats["panics"], 0);
    server.stop().await;
}

async fn pagination_is_stable(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[]).await;
    let mut created = Vec::new();
    for index in 0..7 {
        let reply = server
            .admin(
                Method::POST,
                "/tools",
                Some(rest_tool(&format!("tool_{index}"))),
            )
            .await;
        created.push(reply.body["id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/tools?limit=3&cursor={cursor}"),
            None => "/tools?limit=3".to_owned(),
        };
        let page = server.admin(Method::GET, &path, None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        pages += 1;
        for item in page.body["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created, "every item once, in creation order");
    server.stop().await;
}

async fn openapi_and_health(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[]).await;
    let doc = server.send(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/tools",
        "/tools/{id}",
        "/tools/{id}/toggle",
        "/servers",
        "/gateways/{id}",
        "/ready",
        "/admin/pool-stats",
    ] {
        assert!(doc.body["paths"][path].is_object(), "{path} documented");
    }
    assert!(doc.body["components"]["schemas"]["ToolCreate"].is_object());
    let health = server.send(Method::GET, "/health", None, None).await;
    assert_eq!(health.body["status"], "ok");
    let ready = server.send(Method::GET, "/ready", None, None).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    assert_eq!(ready.body["database"]["breaker"], "closed");
    assert!(ready.headers.contains_key("x-request-id"));
    server.stop().await;
}

async fn restart_keeps_everything(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[("SSRF_ALLOW_LOCALHOST", "true")]).await;
    let (_upstream_db, upstream) = common::empty_upstream().await;
    let mut expected = Vec::new();
    let tool = server
        .admin(Method::POST, "/tools", Some(rest_tool("kept")))
        .await;
    expected.push(("/tools", tool.body.clone()));
    let resource = server
        .admin(
            Method::POST,
            "/resources",
            Some(json!({"uri": "docs://kept", "name": "k", "content": "c"})),
        )
        .await;
    expected.push(("/resources", resource.body.clone()));
    let prompt = server
        .admin(
            Method::POST,
            "/prompts",
            Some(json!({"name": "kept", "template": "t"})),
        )
        .await;
    expected.push(("/prompts", prompt.body.clone()));
    let gateway = server
        .admin(
            Method::POST,
            "/gateways",
            Some(common::gateway_body("kept", &upstream, false)),
        )
        .await;
    assert_eq!(gateway.status, StatusCode::CREATED, "{}", gateway.body);
    let gateway = server
        .admin(
            Method::GET,
            &format!("/gateways/{}", gateway.body["id"].as_str().unwrap()),
            None,
        )
        .await;
    expected.push(("/gateways", gateway.body.clone()));
    let virtual_server = server
        .admin(Method::POST, "/servers", Some(json!({"name": "kept", "tool_ids": [tool.body["id"]], "prompt_ids": [prompt.body["id"]]})))
        .await;
    expected.push(("/servers", virtual_server.body.clone()));
    server.stop().await;

    let restarted = TestServer::start(&db, &[]).await;
    for (path, body) in expected {
        let id = body["id"].as_str().unwrap();
        let fetched = restarted
            .admin(Method::GET, &format!("{path}/{id}"), None)
            .await;
        assert_eq!(fetched.status, StatusCode::OK, "{path}/{id}");
        assert_eq!(fetched.body, body, "{path} survives a restart unchanged");
    }
    restarted.stop().await;
}

/// Columns that hold one of a few values (visibility, transport, integration type) accept only
/// those: the database refuses anything else, so the typed enums the gateway reads them as can
/// never meet an unknown value.
async fn stored_enums_refuse_unknown_values(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[]).await;
    let created = server
        .admin(Method::POST, "/tools", Some(rest_tool("typed")))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    server.stop().await;
    for statement in [
        "UPDATE tools SET visibility = 'everyone'",
        "UPDATE tools SET integration_type = 'GRPC'",
        "UPDATE tools SET request_type = 'TRACE'",
    ] {
        let refused = common::sql_try(&db, statement).await;
        assert!(
            refused
                .as_ref()
                .is_err_and(|error| error.to_lowercase().contains("check")),
            "{statement}: {refused:?}"
        );
    }
    common::sql_execute(&db, "UPDATE tools SET visibility = 'private'").await;
    let server = TestServer::start(&db, &[]).await;
    let listed = server.admin(Method::GET, "/tools", None).await;
    assert_eq!(
        listed.body["items"][0]["visibility"], "private",
        "{}",
        listed.body
    );
    server.stop().await;
}

/// Property-based tests of every documented operation, generated from `/openapi.json` by
/// schemathesis (a real client of the document): whatever it sends, no answer is a 5xx. The
/// sign-out and password operations are left out: they would end the admin's session midway.
async fn the_api_answers_generated_requests_without_server_errors(backend: Backend) {
    common::sdk::setup();
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[]).await;
    let scratch = tempfile::tempdir().expect("a scratch folder");
    let output = tokio::process::Command::new(format!("{}/api/bin/st", common::sdk::deps_dir()))
        .args(["run", &format!("{}/openapi.json", server.base)])
        .args([
            "--header",
            &format!("Authorization: Bearer {}", server.admin_token),
        ])
        .args(["--checks", "not_a_server_error"])
        // One worker: with two, hypothesis parses source in two threads at once and Python
        // 3.11's AST constructor (whose recursion counter is shared) can fail with "AST
        // constructor recursion depth mismatch" — a tool error, not a finding, seen once in CI.
        .args(["--max-examples", "15", "--workers", "1", "--seed", "1"])
        .args([
            "--exclude-path",
            "/auth/logout",
            "--exclude-path",
            "/auth/password",
        ])
        .env("NO_COLOR", "1")
        // Its cache of crashes and examples goes to a scratch folder, not the checkout.
        .current_dir(&scratch)
        .output()
        .await
        .expect("schemathesis runs");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("passed"), "{report}");
    // Every operation was exercised (the document lists 68; the two above are left out).
    assert!(report.contains("Tested: 66"), "{report}");
    server.stop().await;
}

once_on_sqlite!(the_api_answers_generated_requests_without_server_errors);

both_backends!(
    stored_enums_refuse_unknown_values,
    tools_crud,
    resources_prompts_gateways_crud,
    servers_with_members,
    bad_input_gets_clear_errors,
    pagination_is_stable,
    openapi_and_health,
    restart_keeps_everything,
);
