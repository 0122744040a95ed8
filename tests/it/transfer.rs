//! Configuration export and import over the real server: a configuration exported from one
//! backend and imported into a fresh gateway on the other is equal through the REST API (its
//! credentials included, when encrypted for a passphrase); a dry run stores nothing; a malformed
//! or partial document is a 422 naming its first problem, and nothing is stored; conflicts are
//! skipped, updated or renamed; the peer gateway's own export format is imported.

use crate::common;

use common::fixture::RestFixture;
use common::mcp::McpClient;
use common::{Backend, Reply, TestDb, TestServer, create_user, empty_upstream, gateway_body};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PASSPHRASE: &str = "correct horse battery staple";
const HEADER_SECRET: &str = "Bearer s3cret-header-value";

fn other(backend: Backend) -> Backend {
    match backend {
        Backend::Sqlite => Backend::Postgres,
        Backend::Postgres => Backend::Sqlite,
    }
}

async fn with_headers(
    server: &TestServer,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Reply {
    let mut request = server
        .client
        .request(method, format!("{}{path}", server.base))
        .bearer_auth(&server.admin_token);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    common::reply(request.send().await.expect("answered")).await
}

async fn import(server: &TestServer, query: &str, passphrase: Option<&str>, body: &Value) -> Reply {
    let headers: Vec<(&str, &str)> = passphrase
        .map(|passphrase| vec![("x-import-passphrase", passphrase)])
        .unwrap_or_default();
    with_headers(
        server,
        Method::POST,
        &format!("/import{query}"),
        &headers,
        Some(body),
    )
    .await
}

/// A configuration with one of everything, on `server`: a team with a member and a team role,
/// an upstream with credentials (offering one tool), a REST tool with a secret header in the
/// team, a disabled REST tool, a resource, a prompt and a server using them.
async fn populate(server: &TestServer, fixture: &RestFixture, upstream: &TestServer) {
    upstream
        .admin(
            Method::POST,
            "/tools",
            Some(json!({"name": "echo_back", "url": format!("{}/echo", fixture.base)})),
        )
        .await
        .expect(StatusCode::CREATED);
    create_user(server, "dev@example.com", "developer").await;
    let team = server
        .admin(
            Method::POST,
            "/teams",
            Some(json!({"name": "Platform", "description": "The platform team"})),
        )
        .await;
    let team = team.expect(StatusCode::CREATED)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .admin(
            Method::POST,
            &format!("/teams/{team}/members"),
            Some(json!({"email": "dev@example.com"})),
        )
        .await
        .expect(StatusCode::OK);
    server
        .admin(
            Method::POST,
            "/users/dev@example.com/roles",
            Some(json!({"role": "team_admin", "team_id": team})),
        )
        .await;
    let mut gateway = gateway_body("Upstream", upstream, false);
    gateway["tags"] = json!(["federated"]);
    server
        .admin(Method::POST, "/gateways", Some(gateway))
        .await
        .expect(StatusCode::CREATED);
    let headers_tool = server
        .admin(
            Method::POST,
            "/tools",
            Some(json!({"name": "headers_seen", "url": format!("{}/headers", fixture.base), "request_type": "GET",
                        "headers": {"Authorization": HEADER_SECRET}, "tags": ["ops"], "team_id": team,
                        "visibility": "team", "annotations": {"readOnlyHint": true}})),
        )
        .await;
    let headers_tool = headers_tool.expect(StatusCode::CREATED)["id"].clone();
    let weather = server
        .admin(
            Method::POST,
            "/tools",
            Some(json!({"name": "get_weather", "url": format!("{}/weather/{{city}}", fixture.base), "request_type": "GET",
                        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}})),
        )
        .await;
    let weather = weather.expect(StatusCode::CREATED)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .admin(
            Method::POST,
            &format!("/tools/{weather}/toggle?activate=false"),
            None,
        )
        .await
        .expect(StatusCode::OK);
    let resource = server
        .admin(
            Method::POST,
            "/resources",
            Some(json!({"uri": "docs://runbook", "name": "Runbook", "mime_type": "text/markdown", "content": "# Runbook"})),
        )
        .await;
    let resource = resource.expect(StatusCode::CREATED)["id"].clone();
    let prompt = server
        .admin(
            Method::POST,
            "/prompts",
            Some(json!({"name": "summary", "template": "Summarize {{ service }}.",
                        "arguments": [{"name": "service", "required": true, "description": "the service"}]})),
        )
        .await;
    let prompt = prompt.expect(StatusCode::CREATED)["id"].clone();
    let tools = server.admin(Method::GET, "/tools", None).await;
    let federated = tools.expect(StatusCode::OK)["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|tool| tool["original_name"] == "echo_back")
        .expect("the upstream's tool is federated")["id"]
        .clone();
    server
        .admin(
            Method::POST,
            "/servers",
            Some(json!({"name": "Desk", "description": "the desk", "tags": ["desk"],
                        "tool_ids": [headers_tool, federated], "resource_ids": [resource], "prompt_ids": [prompt]})),
        )
        .await
        .expect(StatusCode::CREATED);
}

/// Everything a configuration is, as the REST API shows it, without what is local to one
/// gateway (ids, times, discovery state); references by name.
async fn snapshot(server: &TestServer) -> Value {
    let list = |path: &'static str| async move {
        let reply = server
            .admin(
                Method::GET,
                &format!("{path}?include_inactive=true&limit=500"),
                None,
            )
            .await;
        reply.expect(StatusCode::OK)["items"]
            .as_array()
            .unwrap()
            .clone()
    };
    let teams = server.admin(Method::GET, "/teams", None).await;
    let teams: Vec<Value> = teams.expect(StatusCode::OK)["items"]
        .as_array()
        .unwrap()
        .clone();
    let team_name = |id: &Value| -> Value {
        teams
            .iter()
            .find(|team| &team["id"] == id)
            .map_or(Value::Null, |team| team["name"].clone())
    };
    let tools = list("/tools").await;
    let resources = list("/resources").await;
    let prompts = list("/prompts").await;
    let gateways = list("/gateways").await;
    let name_of = |items: &[Value], id: &Value, key: &str| -> Value {
        items
            .iter()
            .find(|item| &item["id"] == id)
            .map_or(Value::Null, |item| item[key].clone())
    };
    let clean = |mut item: Value, with_team: bool| -> Value {
        let object = item.as_object_mut().unwrap();
        for local in [
            "id",
            "created_at",
            "updated_at",
            "last_seen_at",
            "reachable",
            "skipped",
            "degraded_reason",
            "last_error",
            "last_error_at",
            "protocol_version",
            "capabilities",
            "owner_email",
        ] {
            object.remove(local);
        }
        if with_team {
            let team = object.remove("team_id").unwrap_or(Value::Null);
            object.insert("team".into(), team_name(&team));
        }
        if let Some(gateway) = object.remove("gateway_id") {
            object.insert("gateway".into(), name_of(&gateways, &gateway, "name"));
        }
        item
    };
    let mut servers = list("/servers").await;
    for server in &mut servers {
        for (field, items, key) in [
            ("tool_ids", &tools, "name"),
            ("resource_ids", &resources, "uri"),
            ("prompt_ids", &prompts, "name"),
        ] {
            let mut names: Vec<Value> = server[field]
                .as_array()
                .unwrap()
                .iter()
                .map(|id| name_of(items, id, key))
                .collect();
            names.sort_by_key(|name| name.to_string());
            server[field] = names.into();
        }
    }
    let by_name = |items: Vec<Value>| -> Vec<Value> {
        let mut items: Vec<Value> = items.into_iter().map(|item| clean(item, true)).collect();
        items.sort_by_key(|item| item["name"].to_string());
        items
    };
    let team_view: Vec<Value> = teams
        .iter()
        .filter(|team| team["is_personal"] == false)
        .map(|team| {
            let members: Vec<Value> = team["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| json!([m["email"], m["role"]]))
                .collect();
            json!({"name": team["name"], "description": team["description"], "members": members})
        })
        .collect();
    json!({
        "gateways": by_name(gateways.clone()),
        "tools": by_name(tools.clone()),
        "resources": by_name(resources.clone()),
        "prompts": by_name(prompts.clone()),
        "servers": by_name(servers),
        "teams": team_view,
    })
}

/// Export (credentials encrypted) from `backend`, import into a fresh gateway on the other one:
/// everything equal, credentials working, the team role granted again.
async fn export_then_import_on_the_other_backend(backend: Backend) {
    let fixture = RestFixture::start().await;
    let (_upstream_db, upstream) = empty_upstream().await;
    let source_db = TestDb::new(backend).await;
    let source = TestServer::start(&source_db, &[]).await;
    populate(&source, &fixture, &upstream).await;
    let before = snapshot(&source).await;

    // Without a passphrase the credentials are left out and listed.
    let plain = source.admin(Method::GET, "/export", None).await;
    let plain = plain.expect(StatusCode::OK).clone();
    assert_eq!(plain["format"], "mcpgate-export");
    assert!(!plain.to_string().contains("s3cret"), "{plain}");
    assert!(!plain.to_string().contains(&upstream.admin_token));
    let omitted: Vec<String> = plain["secrets"]["omitted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| format!("{}:{}:{}", o["kind"], o["name"], o["field"]).replace('"', ""))
        .collect();
    assert!(
        omitted.contains(&"tool:headers_seen:headers.Authorization".to_owned()),
        "{omitted:?}"
    );
    assert!(
        omitted.contains(&"gateway:Upstream:auth".to_owned()),
        "{omitted:?}"
    );
    // A short passphrase is refused; a good one seals every credential.
    let short = with_headers(
        &source,
        Method::GET,
        "/export?secrets=encrypt",
        &[("x-export-passphrase", "short")],
        None,
    )
    .await;
    assert_eq!(
        short.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        short.body
    );
    assert_eq!(short.body["field"], "passphrase");
    let sealed = with_headers(
        &source,
        Method::GET,
        "/export?secrets=encrypt",
        &[("x-export-passphrase", PASSPHRASE)],
        None,
    )
    .await;
    let document = sealed.expect(StatusCode::OK).clone();
    assert!(
        !document.to_string().contains("s3cret"),
        "the document carries no credential in the clear"
    );
    assert!(!document.to_string().contains(&upstream.admin_token));
    assert_eq!(document["secrets"]["mode"], "encrypted");
    assert!(
        document["secrets"]["omitted"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        document["servers"][0]["tools"].as_array().unwrap().len(),
        2,
        "{}",
        document["servers"]
    );

    let target_db = TestDb::new(other(backend)).await;
    let target = TestServer::start(&target_db, &[]).await;
    let dev = create_user(&target, "dev@example.com", "developer").await;
    // A wrong passphrase opens nothing and stores nothing.
    let wrong = import(&target, "", Some("not the passphrase at all"), &document).await;
    assert_eq!(
        wrong.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        wrong.body
    );
    assert!(wrong.message().contains("passphrase"), "{}", wrong.body);
    let missing = import(&target, "", None, &document).await;
    assert_eq!(missing.body["field"], "passphrase", "{}", missing.body);
    // A dry run says what would happen and changes nothing.
    let empty = snapshot(&target).await;
    let dry = import(&target, "?dry_run=true", Some(PASSPHRASE), &document).await;
    let dry = dry.expect(StatusCode::OK).clone();
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["summary"]["create"], 7, "{dry}");
    assert_eq!(
        dry["summary"]["grant"], 3,
        "admin, dev and dev's team role: {dry}"
    );
    assert_eq!(snapshot(&target).await, empty, "a dry run stores nothing");

    let applied = import(&target, "", Some(PASSPHRASE), &document).await;
    let applied = applied.expect(StatusCode::OK).clone();
    assert!(applied["summary"].get("failed").is_none(), "{applied}");
    assert_eq!(
        snapshot(&target).await,
        before,
        "the import equals the original"
    );
    // The credentials came along: the upstream was registered with its token, and the REST
    // tool sends its secret header.
    let seen = McpClient::new(&target, "/mcp")
        .modern(
            "tools/call",
            json!({"name": "headers_seen", "arguments": {}}),
        )
        .await;
    let seen = seen.expect(StatusCode::OK)["result"]["structuredContent"].clone();
    assert_eq!(seen["authorization"], HEADER_SECRET, "{seen}");
    // The team role was granted again.
    let permissions = target
        .send(Method::GET, "/rbac/my/permissions", Some(&dev), None)
        .await;
    let team_permissions = permissions.expect(StatusCode::OK)["team_permissions"].clone();
    assert!(
        team_permissions
            .to_string()
            .contains("teams.manage_members"),
        "{team_permissions}"
    );

    // Both are in the audit trail, with their actor; refused and dry runs are not changes.
    let exports = source
        .admin(Method::GET, "/audit?action=config.export", None)
        .await;
    let exports = exports.expect(StatusCode::OK)["entries"].clone();
    assert_eq!(
        exports.as_array().map(Vec::len),
        Some(2),
        "the plain and the sealed export: {exports}"
    );
    assert_eq!(exports[0]["actor"], "admin@example.com", "{exports}");
    let imports = target
        .admin(Method::GET, "/audit?action=config.import", None)
        .await;
    let imports = imports.expect(StatusCode::OK)["entries"].clone();
    assert_eq!(
        imports.as_array().map(Vec::len),
        Some(1),
        "only the applied import: {imports}"
    );
    assert!(
        imports[0]["detail"]
            .as_str()
            .is_some_and(|detail| detail.starts_with("from mcpgate")),
        "{imports}"
    );
    assert!(!imports.to_string().contains("s3cret") && !exports.to_string().contains("s3cret"));

    // Again, with each conflict strategy.
    let skipped = import(&target, "", Some(PASSPHRASE), &document).await;
    let skipped = skipped.expect(StatusCode::OK).clone();
    assert_eq!(
        skipped["summary"]["skip"], 9,
        "7 items and 2 members: {skipped}"
    );
    assert!(skipped["summary"].get("create").is_none(), "{skipped}");
    assert!(skipped["summary"].get("failed").is_none(), "{skipped}");
    assert_eq!(snapshot(&target).await, before, "skipping changes nothing");
    let mut changed = document.clone();
    changed["prompts"][0]["description"] = json!("changed by the import");
    let updated = import(&target, "?conflict=update", Some(PASSPHRASE), &changed).await;
    let updated = updated.expect(StatusCode::OK).clone();
    assert!(updated["summary"].get("failed").is_none(), "{updated}");
    let prompts = target.admin(Method::GET, "/prompts", None).await;
    assert_eq!(
        prompts.expect(StatusCode::OK)["items"][0]["description"],
        "changed by the import"
    );
    let renamed = import(
        &target,
        "?conflict=rename&dry_run=true",
        Some(PASSPHRASE),
        &document,
    )
    .await;
    let renamed = renamed.expect(StatusCode::OK).clone();
    let tool = renamed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["name"] == "headers_seen")
        .unwrap()
        .clone();
    assert_eq!(tool["action"], "rename");
    assert_eq!(tool["new_name"], "headers_seen-2");

    for server in [source, target, upstream] {
        server.stop().await;
    }
    fixture.stop().await;
}

/// A malformed or partial document is a 422 naming its first problem; nothing is stored.
async fn bad_documents_change_nothing(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[]).await;
    let before = snapshot(&server).await;
    let good = json!({
        "format": "mcpgate-export", "version": 1, "exported_at": "2026-12-05T00:00:00Z",
        "exported_by": "admin@example.com", "gateway_version": "test", "secrets": {"mode": "omitted"},
        "tools": [{"name": "fine", "url": "http://127.0.0.1:9/x"}],
        "prompts": [{"name": "hello", "template": "Hello {{ name }}", "arguments": [{"name": "name"}]}],
    });
    let cases: Vec<(Value, &str)> = vec![
        (json!([1, 2]), ""),
        (json!({"hello": "world"}), "format"),
        (
            {
                let mut d = good.clone();
                d["version"] = json!(7);
                d
            },
            "version",
        ),
        (
            {
                let mut d = good.clone();
                d.as_object_mut().unwrap().remove("exported_by");
                d
            },
            "",
        ),
        (
            {
                let mut d = good.clone();
                let tool = json!({"name": "broken", "url": "http://127.0.0.1:9/y", "input_schema": {"type": "string"}});
                d["tools"].as_array_mut().unwrap().push(tool);
                d
            },
            "tools[1].input_schema",
        ),
        (
            {
                let mut d = good.clone();
                let tool = json!({"url": "http://127.0.0.1:9/y"});
                d["tools"].as_array_mut().unwrap().push(tool);
                d
            },
            "tools[1]",
        ),
        (
            {
                let mut d = good.clone();
                let tool = d["tools"][0].clone();
                d["tools"].as_array_mut().unwrap().push(tool);
                d
            },
            "tools[1].name",
        ),
        (
            {
                let mut d = good.clone();
                d["prompts"][0]["template"] = json!("{% for %}");
                d
            },
            "prompts[0].template",
        ),
        (
            {
                let mut d = good.clone();
                d["servers"] = json!([{"name": "s", "tools": ["fine", "nowhere"]}]);
                d
            },
            "servers[0].tools[1]",
        ),
        (
            {
                let mut d = good.clone();
                d["tools"][0]["team"] = json!("No such team");
                d
            },
            "tools[0].team",
        ),
        (
            {
                let mut d = good.clone();
                d["tools"][0]["colour"] = json!("red");
                d
            },
            "tools[0]",
        ),
    ];
    for (body, field) in cases {
        let reply = import(&server, "", None, &body).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            reply.body
        );
        assert!(
            reply.body["field"]
                .as_str()
                .unwrap_or_default()
                .starts_with(field),
            "{body}: {}",
            reply.body
        );
        assert!(!reply.message().is_empty());
    }
    let truncated = server
        .send_raw(
            Method::POST,
            "/import",
            "application/json",
            b"{\"format\": \"mcpgate-ex".to_vec(),
        )
        .await;
    assert_eq!(
        truncated.status,
        StatusCode::BAD_REQUEST,
        "{}",
        truncated.body
    );
    assert_eq!(snapshot(&server).await, before, "nothing was stored");
    // Only platform admins export and import.
    let dev = create_user(&server, "dev@example.com", "developer").await;
    let refused = server.send(Method::GET, "/export", Some(&dev), None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let refused = server
        .send(Method::POST, "/import", Some(&dev), Some(good))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    server.stop().await;
}

/// The peer gateway's export, written from its documented schema, with credentials sealed under
/// its `AUTH_ENCRYPTION_SECRET`: given that secret, everything it can carry arrives.
async fn the_peer_format_is_imported(backend: Backend) {
    const PEER_SECRET: &str = "the-peer-gateways-auth-encryption-secret";
    let fixture = RestFixture::start().await;
    let (_upstream_db, upstream) = empty_upstream().await;
    upstream
        .admin(
            Method::POST,
            "/tools",
            Some(json!({"name": "get_system_time", "url": format!("{}/echo", fixture.base)})),
        )
        .await
        .expect(StatusCode::CREATED);
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[]).await;
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/peer-export.json"
    ))
    .unwrap();
    let text = text
        .replace("{{REST_BASE}}", &fixture.base)
        .replace("{{UPSTREAM_URL}}", &format!("{}/mcp", upstream.base))
        .replace(
            "{{GATEWAY_AUTH}}",
            &peer_seal(
                PEER_SECRET,
                &json!({"Authorization": format!("Bearer {}", upstream.admin_token)}),
            ),
        )
        .replace(
            "{{TOOL_AUTH}}",
            &peer_seal(PEER_SECRET, &json!({"Authorization": HEADER_SECRET})),
        );
    let document: Value = serde_json::from_str(&text).unwrap();

    // Without the peer's secret the credentials are listed as missing (and the upstream,
    // which needs its token, cannot be registered).
    let dry = import(&server, "?dry_run=true", None, &document).await;
    let dry = dry.expect(StatusCode::OK).clone();
    assert_eq!(dry["source_format"], "mcp-context-forge");
    assert_eq!(dry["secrets_missing"].as_array().unwrap().len(), 2, "{dry}");
    let warnings = dry["warnings"].to_string();
    assert!(warnings.contains("root"), "{warnings}");
    assert!(warnings.contains("jsonpath_filter"), "{warnings}");
    assert!(warnings.contains("discovered again"), "{warnings}");
    assert!(warnings.contains("imported empty"), "{warnings}");

    let applied = import(&server, "", Some(PEER_SECRET), &document).await;
    let applied = applied.expect(StatusCode::OK).clone();
    assert!(
        applied["secrets_missing"].as_array().unwrap().is_empty(),
        "{applied}"
    );
    assert!(applied["summary"].get("failed").is_none(), "{applied}");
    let snapshot = snapshot(&server).await;
    let tool = snapshot["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|tool| tool["name"] == "get_weather")
        .unwrap()
        .clone();
    assert_eq!(tool["tags"], json!(["weather", "API"]));
    assert_eq!(tool["annotations"]["title"], "Get Weather");
    assert_eq!(tool["request_type"], "GET");
    let prompt = snapshot["prompts"][0].clone();
    assert_eq!(
        prompt["arguments"][0],
        json!({"name": "service", "description": "Name of the affected service", "required": true})
    );
    assert_eq!(prompt["enabled"], true);
    let resource = snapshot["resources"][0].clone();
    assert_eq!(resource["uri"], "docs://runbooks/oncall.md");
    // The server holds the REST tool and, found by its slug, the upstream's tool.
    let desk = snapshot["servers"][0].clone();
    assert_eq!(desk["name"], "ops-assistant");
    assert_eq!(
        desk["tool_ids"],
        json!(["get_weather", "time-server-get_system_time"]),
        "{desk}"
    );
    // Its Jinja2 template renders, and its credentials work.
    let client = McpClient::new(&server, "/mcp");
    let rendered = client
        .modern("prompts/get", json!({"name": "incident_summary", "arguments": {"service": "billing", "severity": "sev2"}}))
        .await;
    let text = rendered.expect(StatusCode::OK)["result"]["messages"][0]["content"]["text"].clone();
    assert_eq!(
        text,
        "Summarize the incident affecting billing.\nSeverity: SEV2\nCover the last 24h: impact, root cause, and next steps."
    );
    let seen = client
        .modern(
            "tools/call",
            json!({"name": "headers_seen", "arguments": {}}),
        )
        .await;
    let seen = seen.expect(StatusCode::OK)["result"]["structuredContent"].clone();
    assert_eq!(seen["authorization"], HEADER_SECRET, "{seen}");
    server.stop().await;
    upstream.stop().await;
    fixture.stop().await;
}

/// The console's page exports a download and imports a pasted file: a dry run shows the plan,
/// a broken file its first problem at the field, and only then is anything stored.
async fn the_console_exports_and_imports(backend: Backend) {
    use crate::console::{field, page};
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[]).await;
    server
        .admin(Method::POST, "/prompts", Some(json!({"name": "hello", "template": "Hello {{ name }}", "arguments": [{"name": "name"}]})))
        .await
        .expect(StatusCode::CREATED);
    let browser = crate::console::admin_browser(&server).await;
    let html = page(&browser, &server, "/admin/transfer").await;
    assert!(
        html.contains("Download the export") && html.contains("Dry run"),
        "{html}"
    );
    let csrf = field(&html, "csrf");
    let post = |path: &str, form: Vec<(&str, String)>| {
        browser
            .post(format!("{}{path}", server.base))
            .form(&form)
            .send()
    };
    let download = post(
        "/admin/export",
        vec![("csrf", csrf.clone()), ("secrets", "omit".into())],
    )
    .await
    .unwrap();
    assert_eq!(download.status(), StatusCode::OK);
    assert!(
        download.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let mut document: Value = download.json().await.unwrap();
    assert_eq!(document["prompts"][0]["name"], "hello");
    let short = post(
        "/admin/export",
        vec![
            ("csrf", csrf.clone()),
            ("secrets", "encrypt".into()),
            ("passphrase", "short".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(short.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        short
            .text()
            .await
            .unwrap()
            .contains("id=\"export-passphrase-error\"")
    );

    document["prompts"][0]["name"] = json!("hello_again");
    let dry = post(
        "/admin/import",
        vec![
            ("csrf", csrf.clone()),
            ("document", document.to_string()),
            ("conflict", "skip".into()),
            ("dry_run", "1".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(dry.status(), StatusCode::OK);
    let dry = dry.text().await.unwrap();
    assert!(
        dry.contains("What the import would do") && dry.contains("hello_again"),
        "{dry}"
    );
    document["prompts"][0]["template"] = json!("{% for %}");
    let broken = post(
        "/admin/import",
        vec![
            ("csrf", csrf.clone()),
            ("document", document.to_string()),
            ("conflict", "skip".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(broken.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let broken = broken.text().await.unwrap();
    assert!(
        broken.contains("id=\"import-document-error\"") && broken.contains("prompts[0].template"),
        "{broken}"
    );
    let prompts = server.admin(Method::GET, "/prompts", None).await;
    assert_eq!(
        prompts.expect(StatusCode::OK)["items"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "nothing stored yet"
    );
    document["prompts"][0]["template"] = json!("Hello again {{ name }}");
    let done = post(
        "/admin/import",
        vec![
            ("csrf", csrf),
            ("document", document.to_string()),
            ("conflict", "skip".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    assert!(done.text().await.unwrap().contains("What the import did"));
    let prompts = server.admin(Method::GET, "/prompts", None).await;
    assert_eq!(
        prompts.expect(StatusCode::OK)["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    server.stop().await;
}

/// A value sealed the way the peer gateway seals credentials: AES-256-GCM keyed by SHA-256 of
/// its secret, base64url (no padding) of nonce ‖ ciphertext, over compact JSON.
fn peer_seal(secret: &str, headers: &Value) -> String {
    use aes_gcm::aead::{Aead, KeyInit};
    use base64::Engine;
    use sha2::Digest;
    let cipher = aes_gcm::Aes256Gcm::new(&sha2::Sha256::digest(secret.as_bytes()));
    let nonce: [u8; 12] = rand::random();
    let mut sealed = nonce.to_vec();
    sealed.extend(
        cipher
            .encrypt(
                aes_gcm::Nonce::from_slice(&nonce),
                headers.to_string().as_bytes(),
            )
            .unwrap(),
    );
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed)
}

both_backends!(
    export_then_import_on_the_other_backend,
    bad_documents_change_nothing,
    the_peer_format_is_imported,
    the_console_exports_and_imports,
);
