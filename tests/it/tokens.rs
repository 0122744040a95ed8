//! API tokens over the real server, on SQLite and PostgreSQL: scopes (one virtual server, a
//! permission subset, an address allow list, a time window), revocation on this replica and on
//! another one sharing the database, sign-out, bad tokens with clear reasons, and the seed
//! scenario: 200 concurrent authenticated tools/call with warm caches and no database work for
//! authentication, on a pool of 2.

use crate::common;

use common::fixture::RestFixture;
use common::mcp::McpClient;
use common::{Backend, TestDb, TestServer, create_user, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A gateway with a REST tool (`get_weather`) in one virtual server and another empty server.
struct Setup {
    server: TestServer,
    fixture: RestFixture,
    server_id: String,
    other_server_id: String,
    _db: TestDb,
}

async fn setup(backend: Backend, overrides: &[(&str, &str)]) -> Setup {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, overrides).await;
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
            Some(json!({"name": "Desk", "tool_ids": [tool_id]})),
        )
        .await;
    let other = server
        .admin(Method::POST, "/servers", Some(json!({"name": "Other"})))
        .await;
    Setup {
        server_id: desk.expect(StatusCode::CREATED)["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        other_server_id: other.expect(StatusCode::CREATED)["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        server,
        fixture,
        _db: db,
    }
}

async fn create_token(server: &TestServer, as_token: &str, body: Value) -> common::Reply {
    server
        .send(Method::POST, "/tokens", Some(as_token), Some(body))
        .await
}

async fn new_token(server: &TestServer, as_token: &str, body: Value) -> (String, String) {
    let created = create_token(server, as_token, body).await;
    let created = created.expect(StatusCode::CREATED);
    (
        created["id"].as_str().unwrap().to_owned(),
        created["access_token"].as_str().unwrap().to_owned(),
    )
}

/// A modern tools/call of `get_weather` through `path` with `token`.
async fn call(server: &TestServer, path: &str, token: &str) -> common::Reply {
    let mut client = McpClient::new(server, path);
    client.token = token.to_owned();
    client
        .modern(
            "tools/call",
            json!({"name": "get_weather", "arguments": {"city": "Oslo"}}),
        )
        .await
}

/// Scopes: a server-scoped token works on that server's endpoint only; a permission subset
/// keeps only those permissions; the address allow list and the time window are enforced.
async fn scopes_are_enforced(backend: Backend) {
    let setup = setup(backend, &[]).await;
    let server = &setup.server;
    let dev = create_user(server, "dev@example.com", "developer").await;
    let desk = format!("/servers/{}/mcp", setup.server_id);
    let other = format!("/servers/{}/mcp", setup.other_server_id);

    let (_, scoped) = new_token(
        server,
        &dev,
        json!({"name": "desk only", "expires_in_days": 7, "scope": {"server_id": setup.server_id}}),
    )
    .await;
    let on_desk = call(server, &desk, &scoped).await;
    assert_eq!(on_desk.expect(StatusCode::OK)["result"]["isError"], false);
    for elsewhere in [other.as_str(), "/mcp", "/rpc"] {
        let refused = call(server, elsewhere, &scoped).await;
        assert_eq!(
            refused.status,
            StatusCode::NOT_FOUND,
            "{elsewhere}: {}",
            refused.body
        );
    }
    let rest = server
        .send(Method::GET, "/tools", Some(&scoped), None)
        .await;
    assert_eq!(rest.status, StatusCode::FORBIDDEN);
    assert!(rest.message().contains("restricted to the MCP endpoints"));

    let (_, reader) = new_token(
        server,
        &dev,
        json!({"name": "reader", "scope": {"permissions": ["tools.read", "servers.use"]}}),
    )
    .await;
    server
        .send(Method::GET, "/tools", Some(&reader), None)
        .await
        .expect(StatusCode::OK);
    let no_create = server
        .send(
            Method::POST,
            "/tools",
            Some(&reader),
            Some(json!({"name": "x", "url": "https://x.example", "request_type": "GET"})),
        )
        .await;
    assert_eq!(no_create.status, StatusCode::FORBIDDEN);
    assert!(
        no_create
            .message()
            .contains("scope does not include tools.create")
    );
    // A modern tools/call is answered on a stream (its status is sent before the outcome).
    let no_execute = call(server, &desk, &reader).await;
    assert_eq!(
        no_execute.body["error"]["code"], -32003,
        "{}",
        no_execute.body
    );
    assert!(
        no_execute.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tools.execute")
    );
    let no_minting = create_token(server, &reader, json!({"name": "child"})).await;
    assert_eq!(no_minting.status, StatusCode::FORBIDDEN);

    // Tests reach the gateway from 127.0.0.1.
    let (_, elsewhere_only) = new_token(
        server,
        &dev,
        json!({"name": "office", "scope": {"ip_restrictions": ["10.0.0.0/8", "2001:db8::/32"]}}),
    )
    .await;
    let refused = server
        .send(Method::GET, "/tools", Some(&elsewhere_only), None)
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.message().contains("from this address"));
    let (_, local) = new_token(
        server,
        &dev,
        json!({"name": "local", "scope": {"ip_restrictions": ["127.0.0.0/8"]}}),
    )
    .await;
    server
        .send(Method::GET, "/tools", Some(&local), None)
        .await
        .expect(StatusCode::OK);

    let clock = |offset_hours: i64| {
        (chrono::Utc::now() + chrono::TimeDelta::hours(offset_hours))
            .format("%H:00")
            .to_string()
    };
    let (_, later) = new_token(
        server,
        &dev,
        json!({"name": "later", "scope": {"time_restrictions": {"start_time": clock(2), "end_time": clock(4)}}}),
    )
    .await;
    let refused = server.send(Method::GET, "/tools", Some(&later), None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.message().contains("may be used only"));
    let (_, now) = new_token(
        server,
        &dev,
        json!({"name": "now", "scope": {"time_restrictions": {"start_time": clock(-1), "end_time": clock(2)}}}),
    )
    .await;
    server
        .send(Method::GET, "/tools", Some(&now), None)
        .await
        .expect(StatusCode::OK);

    // Listing never shows a token again.
    let listed = server.send(Method::GET, "/tokens", Some(&dev), None).await;
    let listed = listed.expect(StatusCode::OK)["items"].clone();
    assert_eq!(listed.as_array().unwrap().len(), 6);
    assert!(!listed.to_string().contains("access_token"));
    assert!(!listed.to_string().contains(&scoped));
    assert_eq!(listed[0]["scope"]["server_id"], setup.server_id.as_str());
    setup.server.stop().await;
    setup.fixture.stop().await;
}

/// Bad token requests get 422 naming the field; a duplicate name 409.
async fn token_requests_are_validated(backend: Backend) {
    let setup = setup(backend, &[]).await;
    let server = &setup.server;
    let viewer = create_user(server, "vic@example.com", "viewer").await;
    let dev = create_user(server, "dev@example.com", "developer").await;
    // A server only its owner may see is answered like one that does not exist.
    let private = server
        .admin(
            Method::POST,
            "/servers",
            Some(json!({"name": "Private", "visibility": "private"})),
        )
        .await;
    let private = private.expect(StatusCode::CREATED)["id"].clone();
    let refused = create_token(server, &viewer, json!({"name": "mine"})).await;
    assert_eq!(
        refused.status,
        StatusCode::FORBIDDEN,
        "viewers lack tokens.create"
    );
    for (body, field) in [
        (json!({"name": ""}), "name"),
        (
            json!({"name": "a", "expires_in_days": 0}),
            "expires_in_days",
        ),
        (
            json!({"name": "a", "scope": {"permissions": ["root"]}}),
            "scope.permissions[0]",
        ),
        (
            json!({"name": "a", "scope": {"permissions": ["users.manage"]}}),
            "scope.permissions[0]",
        ),
        (
            json!({"name": "a", "scope": {"server_id": "nope"}}),
            "scope.server_id",
        ),
        (
            json!({"name": "a", "scope": {"server_id": private}}),
            "scope.server_id",
        ),
        (
            json!({"name": "a", "scope": {"ip_restrictions": ["300.1.1.1"]}}),
            "scope.ip_restrictions[0]",
        ),
        (
            json!({"name": "a", "scope": {"time_restrictions": {"start_time": "25:00", "end_time": "01:00"}}}),
            "scope.time_restrictions.start_time",
        ),
        (
            json!({"name": "a", "scope": {"colour": "red"}}),
            "scope.colour",
        ),
    ] {
        let reply = create_token(server, &dev, body.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            reply.body
        );
        assert_eq!(reply.body["field"], field, "{body}: {}", reply.body);
    }
    new_token(server, &dev, json!({"name": "twice"})).await;
    let again = create_token(server, &dev, json!({"name": "twice"})).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    setup.server.stop().await;
    setup.fixture.stop().await;
}

/// Malformed, expired, wrongly signed and wrong-audience tokens are 401 with the reason.
async fn bad_tokens_are_refused_with_reasons(backend: Backend) {
    let setup = setup(backend, &[]).await;
    let server = &setup.server;
    let keys = |secret: &str, audience: &str| {
        mcpgate::auth::jwt::JwtKeys::hs256(secret, "mcpgate", audience)
    };
    let expired = {
        let claims = json!({"sub": "admin@example.com", "exp": chrono::Utc::now().timestamp() - 3600,
                            "iat": 0, "jti": "x", "aud": "mcpgate-api", "iss": "mcpgate"});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(common::JWT_SECRET.as_bytes()),
        )
        .unwrap()
    };
    let cases = [
        ("not-a-jwt".to_owned(), "malformed"),
        (expired, "expired"),
        (
            keys("another-secret-another-secret-0000", "mcpgate-api")
                .issue(
                    "admin@example.com",
                    true,
                    std::time::Duration::from_secs(60),
                )
                .unwrap(),
            "signature",
        ),
        (
            keys(common::JWT_SECRET, "someone-else")
                .issue(
                    "admin@example.com",
                    true,
                    std::time::Duration::from_secs(60),
                )
                .unwrap(),
            "audience",
        ),
    ];
    for (bad, reason) in cases {
        let refused = server.send(Method::GET, "/tools", Some(&bad), None).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{reason}");
        assert!(
            refused.message().contains(reason),
            "{reason}: {}",
            refused.body
        );
        let challenge = refused.headers["www-authenticate"].to_str().unwrap();
        assert!(challenge.contains("invalid_token"), "{challenge}");
        let on_mcp = call(server, "/mcp", &bad).await;
        assert_eq!(on_mcp.status, StatusCode::UNAUTHORIZED);
    }
    setup.server.stop().await;
    setup.fixture.stop().await;
}

/// A revoked token is refused at once on this replica and, within the refresh interval, on
/// another replica sharing the database; signing out revokes the token in use.
async fn revocation_reaches_every_replica(backend: Backend) {
    let overrides = [("TOKEN_REVOCATION_REFRESH_SECONDS", "1")];
    let setup = setup(backend, &overrides).await;
    let first = &setup.server;
    let second = TestServer::start_on_url(&setup._db.url(), &overrides).await;
    let dev = create_user(first, "dev@example.com", "developer").await;
    let (id, token) = new_token(first, &dev, json!({"name": "ci"})).await;
    for replica in [first, &second] {
        replica
            .send(Method::GET, "/tools", Some(&token), None)
            .await
            .expect(StatusCode::OK);
    }
    first
        .send(Method::DELETE, &format!("/tokens/{id}"), Some(&dev), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let here = first.send(Method::GET, "/tools", Some(&token), None).await;
    assert_eq!(here.status, StatusCode::UNAUTHORIZED);
    assert!(here.message().contains("revoked"));
    eventually(
        "the other replica refuses the revoked token",
        std::time::Duration::from_secs(15),
        || async {
            let there = second.send(Method::GET, "/tools", Some(&token), None).await;
            (there.status == StatusCode::UNAUTHORIZED).then_some(())
        },
    )
    .await;
    let listed = first.send(Method::GET, "/tokens", Some(&dev), None).await;
    assert!(!listed.expect(StatusCode::OK)["items"][0]["revoked_at"].is_null());
    let someone_elses = first
        .send(
            Method::DELETE,
            &format!("/tokens/{id}"),
            Some(&create_user(first, "eve@example.com", "developer").await),
            None,
        )
        .await;
    assert_eq!(someone_elses.status, StatusCode::NOT_FOUND);

    // Sign out: the token in use stops working, here and there.
    let signed_in = first
        .send(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": "dev@example.com", "password": common::USER_PASSWORD})),
        )
        .await;
    let session = signed_in.expect(StatusCode::OK)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    first
        .send(Method::POST, "/auth/logout", Some(&session), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let after = first
        .send(Method::GET, "/tools", Some(&session), None)
        .await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    eventually(
        "the other replica refuses the signed-out token",
        std::time::Duration::from_secs(15),
        || async {
            let there = second
                .send(Method::GET, "/tools", Some(&session), None)
                .await;
            (there.status == StatusCode::UNAUTHORIZED).then_some(())
        },
    )
    .await;
    second.stop().await;
    setup.server.stop().await;
    setup.fixture.stop().await;
}

/// The seed scenario: 200 concurrent authenticated tools/call with an API token and warm
/// caches on a pool of 2: every call succeeds, authentication and scoping take no database
/// work at all, and no checkout times out.
async fn authenticated_calls_need_no_database(backend: Backend) {
    let setup = setup(backend, &[("DB_POOL_SIZE", "2")]).await;
    let server = &setup.server;
    let dev = create_user(server, "dev@example.com", "developer").await;
    let (_, token) = new_token(
        server,
        &dev,
        json!({"name": "agent", "scope": {"server_id": setup.server_id}}),
    )
    .await;
    let path = format!("/servers/{}/mcp", setup.server_id);
    let units = |stats: &Value, name: &str| stats["units_by_name"][name].as_u64().unwrap_or(0);
    // Cold: a change to the user drops their cached grants; 200 calls then wait for one load.
    server
        .admin(
            Method::PUT,
            "/users/dev@example.com",
            Some(json!({"full_name": "Dev"})),
        )
        .await
        .expect(StatusCode::OK);
    let cold_before = server.pool_stats().await;
    let calls = (0..200).map(|_| call(server, &path, &token));
    for reply in futures_util::future::join_all(calls).await {
        let body = reply.expect(StatusCode::OK);
        assert_eq!(body["result"]["isError"], false, "{body}");
    }
    let cold_after = server.pool_stats().await;
    assert_eq!(
        units(&cold_after, "identity.load") - units(&cold_before, "identity.load"),
        1,
        "one load for the cache miss"
    );
    assert_eq!(cold_after["checkout_timeouts"], 0);
    // Warm: none.
    let before = server.pool_stats().await;
    let calls = (0..200).map(|_| call(server, &path, &token));
    for reply in futures_util::future::join_all(calls).await {
        let body = reply.expect(StatusCode::OK);
        assert_eq!(body["result"]["isError"], false, "{body}");
    }
    let after = server.pool_stats().await;
    assert_eq!(
        units(&after, "identity.load"),
        units(&before, "identity.load"),
        "no grants were loaded"
    );
    for (name, count) in after["units_by_name"].as_object().unwrap() {
        let grew = count.as_u64().unwrap() - units(&before, name);
        assert!(
            // Batched writers (call records; audit entries of the set-up's changes) and the
            // revocation refresh run on their own schedule, not per call.
            matches!(
                name.as_str(),
                "metrics.insert" | "audit.insert" | "tokens.revocations"
            ) || grew == 0,
            "{name} ran {grew} times during the calls"
        );
    }
    assert_eq!(after["checkout_timeouts"], 0);
    setup.server.stop().await;
    setup.fixture.stop().await;
}

/// RFC 9728 metadata for the MCP endpoints; an MCP 401 names it in its challenge.
async fn protected_resource_metadata(backend: Backend) {
    let setup = setup(
        backend,
        &[(
            "MCP_AUTHORIZATION_SERVERS",
            "https://login.example.com/tenant/",
        )],
    )
    .await;
    let server = &setup.server;
    let root = server
        .send(
            Method::GET,
            "/.well-known/oauth-protected-resource",
            None,
            None,
        )
        .await;
    let root = root.expect(StatusCode::OK);
    assert_eq!(root["resource"], format!("{}/mcp", server.base));
    assert_eq!(
        root["authorization_servers"],
        json!(["https://login.example.com/tenant"])
    );
    assert_eq!(root["bearer_methods_supported"], json!(["header"]));
    let path = format!("/servers/{}/mcp", setup.server_id);
    let per_endpoint = server
        .send(
            Method::GET,
            &format!("/.well-known/oauth-protected-resource{path}"),
            None,
            None,
        )
        .await;
    assert_eq!(
        per_endpoint.expect(StatusCode::OK)["resource"],
        format!("{}{path}", server.base)
    );
    let anonymous = server
        .client
        .post(format!("{}{path}", server.base))
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let challenge = anonymous.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(&format!(
            "resource_metadata=\"{}/.well-known/oauth-protected-resource{path}\"",
            server.base
        )),
        "{challenge}"
    );
    setup.server.stop().await;
    setup.fixture.stop().await;
}

/// A client's token never reaches an upstream: the REST tool's endpoint sees no
/// `Authorization` header (the tool defines none).
async fn client_tokens_stay_at_the_gateway(backend: Backend) {
    let setup = setup(backend, &[]).await;
    let server = &setup.server;
    server
        .admin(
            Method::POST,
            "/tools",
            Some(json!({"name": "headers_seen", "url": format!("{}/headers", setup.fixture.base), "request_type": "GET"})),
        )
        .await
        .expect(StatusCode::CREATED);
    let dev = create_user(server, "dev@example.com", "developer").await;
    let mut client = McpClient::new(server, "/mcp");
    client.token = dev.clone();
    let seen = client
        .modern(
            "tools/call",
            json!({"name": "headers_seen", "arguments": {}}),
        )
        .await;
    let seen = seen.expect(StatusCode::OK)["result"]["structuredContent"].clone();
    assert!(seen["headers"].is_array(), "{seen}");
    assert!(seen["authorization"].is_null(), "{seen}");
    assert!(!seen.to_string().contains(&dev));
    setup.server.stop().await;
    setup.fixture.stop().await;
}

/// A token as `GET /tokens` lists it.
async fn listed(server: &TestServer, id: &str) -> Value {
    let tokens = server.admin(Method::GET, "/tokens", None).await;
    let tokens = tokens.expect(StatusCode::OK).clone();
    tokens["items"]
        .as_array()
        .and_then(|tokens| tokens.iter().find(|token| token["id"] == id))
        .cloned()
        .unwrap_or_else(|| panic!("{tokens}"))
}

/// A token's last use is noted (to the minute, written within seconds) and listed, over REST
/// and in the console; an unused token says so.
async fn last_use_is_listed(backend: Backend) {
    let setup = setup(backend, &[]).await;
    let server = &setup.server;
    let (used_id, used) = new_token(server, &server.admin_token, json!({"name": "used"})).await;
    let (idle_id, _idle) = new_token(server, &server.admin_token, json!({"name": "idle"})).await;
    assert!(listed(server, &used_id).await["last_used_at"].is_null());
    let before = chrono::Utc::now().naive_utc() - chrono::Duration::minutes(1);
    call(server, &format!("/servers/{}/mcp", setup.server_id), &used)
        .await
        .expect(StatusCode::OK);
    let used_id = &used_id;
    let last_used = eventually(
        "the use is written",
        std::time::Duration::from_secs(20),
        move || async move {
            listed(server, used_id).await["last_used_at"]
                .as_str()
                .map(str::to_owned)
        },
    )
    .await;
    let last_used = chrono::NaiveDateTime::parse_from_str(&last_used, "%Y-%m-%dT%H:%M:%S%.f")
        .unwrap_or_else(|error| panic!("{last_used}: {error}"));
    assert!(last_used >= before, "{last_used} after {before}");
    assert!(listed(server, &idle_id).await["last_used_at"].is_null());
    let page = crate::console::admin_page(server, "/admin/tokens").await;
    let row = &page[page.find(">used</td>").unwrap_or_else(|| panic!("{page}"))..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(
        row.contains(r#"data-label="Last used"><time datetime=""#),
        "{row}"
    );
    assert!(row.contains(">Desk<") || row.contains(">any<"), "{row}");
    let idle = &page[page.find(">idle</td>").unwrap()..];
    assert!(idle[..idle.find("</tr>").unwrap()].contains(">never</td>"));
    setup.server.stop().await;
    setup.fixture.stop().await;
}

both_backends!(
    last_use_is_listed,
    client_tokens_stay_at_the_gateway,
    protected_resource_metadata,
    scopes_are_enforced,
    token_requests_are_validated,
    bad_tokens_are_refused_with_reasons,
    revocation_reaches_every_replica,
    authenticated_calls_need_no_database,
);
