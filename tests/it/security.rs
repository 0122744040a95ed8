//! The hostile-user review's findings, reproduced against the real server on SQLite and
//! PostgreSQL, each asserting the fixed behaviour: the egress policy (H1, M4), scoped tokens in
//! the console and on identity operations (H2, H3), prompt templates that try to freeze the
//! server (H4), team roles given to non-members (M6), URL placeholders that climb (Low).
//!
//! The services an attacker aims at are real HTTP servers on loopback that count every request
//! they receive: "not reached" is asserted by their counters, not inferred from an error.

#![allow(
    clippy::disallowed_methods,
    reason = "tests are the gateway's clients, with clients of their own"
)]

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use common::mcp::{McpClient, expect_error};
use common::{Backend, TestDb, TestServer, create_user};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// How a spy answers.
#[derive(Clone)]
enum Answer {
    /// 200 with a body that must never reach an attacker.
    Secret,
    /// A redirect to this URL, with this status.
    Redirect(u16, String),
    /// A legacy SSE stream whose `endpoint` event names this URL.
    SseEndpoint(String),
}

/// Every request a spy received: its path and headers.
type Seen = Arc<Mutex<Vec<(String, Vec<(String, String)>)>>>;

/// A loopback HTTP server that records every request (path and headers).
struct Spy {
    base: String,
    seen: Seen,
    handle: actix_web::dev::ServerHandle,
}

impl Spy {
    async fn start(ip: &str, answer: Answer) -> Spy {
        let seen: Seen = Arc::default();
        let record = seen.clone();
        let server = HttpServer::new(move || {
            let record = record.clone();
            let answer = answer.clone();
            App::new().default_service(web::to(move |request: HttpRequest| {
                let headers = request
                    .headers()
                    .iter()
                    .map(|(name, value)| {
                        (
                            name.as_str().to_owned(),
                            value.to_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect();
                record
                    .lock()
                    .unwrap()
                    .push((request.path().to_owned(), headers));
                let answer = answer.clone();
                async move {
                    match answer {
                        Answer::Secret => HttpResponse::Ok()
                            .content_type("text/plain")
                            .body("internal secret"),
                        Answer::Redirect(status, to) => HttpResponse::build(
                            actix_web::http::StatusCode::from_u16(status).unwrap(),
                        )
                        .insert_header(("location", to))
                        .finish(),
                        Answer::SseEndpoint(to) => {
                            let first =
                                web::Bytes::from(format!("event: endpoint\ndata: {to}\n\n"));
                            let stream = futures_util::stream::once(async move {
                                Ok::<_, actix_web::Error>(first)
                            })
                            .chain(futures_util::stream::pending());
                            HttpResponse::Ok()
                                .content_type("text/event-stream")
                                .streaming(stream)
                        }
                    }
                }
            }))
        })
        .workers(1)
        .disable_signals()
        .bind((ip, 0))
        .expect("bind the spy");
        let base = format!("http://{}", server.addrs()[0]);
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Spy { base, seen, handle }
    }

    fn hits(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn headers_of(&self, index: usize) -> Vec<(String, String)> {
        self.seen.lock().unwrap()[index].1.clone()
    }

    async fn stop(self) {
        self.handle.stop(false).await;
    }
}

use futures_util::StreamExt;

/// A REST tool `name` at `url` (as the admin), with a secret header; returns its id.
async fn rest_tool(server: &TestServer, name: &str, url: &str) -> common::Reply {
    server
        .admin(
            Method::POST,
            "/tools",
            Some(json!({"name": name, "url": url, "request_type": "GET",
                        "headers": {"X-Api-Key": "tool-secret"}})),
        )
        .await
}

/// A tools/call of `name` over the stateless endpoint as the admin.
async fn call_tool(server: &TestServer, name: &str) -> Value {
    let client = McpClient::new(server, "/mcp");
    let reply = client
        .modern("tools/call", json!({"name": name, "arguments": {}}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["result"].clone()
}

/// A REST tool `name` on a loopback service that redirects to `to` with `status`, called once;
/// returns the service and the call's result.
async fn redirecting_tool(
    server: &TestServer,
    name: &str,
    status: u16,
    to: String,
) -> (Spy, Value) {
    let spy = Spy::start("127.0.0.1", Answer::Redirect(status, to)).await;
    rest_tool(server, name, &format!("{}/start", spy.base))
        .await
        .expect(StatusCode::CREATED);
    let result = call_tool(server, name).await;
    (spy, result)
}

fn text_of(result: &Value) -> String {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// H1: REST tools cannot reach loopback, private or metadata addresses in any spelling, when
/// created or when called (the policy is enforced at connect time, so a tool stored while the
/// operator allowed loopback is refused once they stop allowing it), and redirects are checked
/// hop by hop with credentials kept to their origin.
async fn rest_tools_cannot_reach_internal_services(backend: Backend) {
    let db = TestDb::new(backend).await;
    let internal = Spy::start("127.0.0.2", Answer::Secret).await;
    let port = internal.base.rsplit(':').next().unwrap().to_owned();

    // Stored while loopback is allowed …
    let open = TestServer::start(&db, &[("SSRF_ALLOW_LOCALHOST", "true")]).await;
    rest_tool(&open, "was_allowed", &format!("{}/metadata", internal.base))
        .await
        .expect(StatusCode::CREATED);
    open.stop().await;

    // … and the same database under the default policy, with 127.0.0.1 allow-listed so the
    // redirecting services below can be reached (`localhost` is refused under the default
    // policy: the egress unit tests).
    let server = TestServer::start(
        &db,
        &[
            ("SSRF_ALLOW_LOCALHOST", "false"),
            ("SSRF_ALLOWLIST", "127.0.0.1/32"),
        ],
    )
    .await;
    for url in [
        format!("http://127.0.0.2:{port}/"),
        format!("http://2130706434:{port}/"),
        format!("http://0x7f.0.0.2:{port}/"),
        format!("http://[::ffff:127.0.0.2]:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/".to_owned(),
        "http://0.0.0.0/".to_owned(),
    ] {
        let refused = rest_tool(&server, "internal", &url).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{url}: {}",
            refused.body
        );
        assert_eq!(refused.body["field"], "url", "{url}");
        assert!(
            refused.message().contains("SSRF_") || refused.message().contains("metadata"),
            "{url}: the message names the rule: {}",
            refused.message()
        );
    }
    // Changing an existing tool's URL is checked the same way.
    let allowed_origin = Spy::start("127.0.0.1", Answer::Secret).await;
    let tool = rest_tool(&server, "mover", &format!("{}/ok", allowed_origin.base)).await;
    let id = tool.expect(StatusCode::CREATED)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let moved = server
        .admin(
            Method::PUT,
            &format!("/tools/{id}"),
            Some(
                json!({"url": format!("http://127.0.0.2:{port}/"), "headers": {"X-Api-Key": "x"}}),
            ),
        )
        .await;
    assert_eq!(moved.status, StatusCode::UNPROCESSABLE_ENTITY);

    // The tool stored under the old policy is refused when it connects.
    let result = call_tool(&server, "was_allowed").await;
    assert_eq!(result["isError"], true, "{result}");
    assert!(text_of(&result).contains("egress refused"), "{result}");

    // A redirect to the internal service is refused; the redirector was reached, the
    // internal service never.
    let (redirector, result) = redirecting_tool(
        &server,
        "redirected",
        307,
        format!("{}/secret", internal.base),
    )
    .await;
    assert_eq!(result["isError"], true, "{result}");
    assert!(text_of(&result).contains("egress refused"), "{result}");
    assert_eq!(redirector.hits(), 1);
    assert_eq!(internal.hits(), 0, "the internal service was reached");

    // One redirect to another allowed origin is followed, without the tool's credentials.
    let elsewhere = Spy::start("127.0.0.1", Answer::Secret).await;
    let (hop, result) =
        redirecting_tool(&server, "hop", 302, format!("{}/landing", elsewhere.base)).await;
    assert_eq!(result["isError"], false, "{result}");
    assert_eq!(text_of(&result), "internal secret");
    assert_eq!(elsewhere.hits(), 1);
    let sent_on = elsewhere.headers_of(0);
    assert!(
        !sent_on.iter().any(|(name, _)| name == "x-api-key"),
        "the credential crossed origins: {sent_on:?}"
    );
    assert!(
        hop.headers_of(0)
            .iter()
            .any(|(name, value)| name == "x-api-key" && value == "tool-secret")
    );

    // A second redirect is not followed.
    let (twice, result) =
        redirecting_tool(&server, "twice", 302, format!("{}/again", hop.base)).await;
    assert_eq!(result["isError"], true, "{result}");
    assert!(
        text_of(&result).contains("redirected more than"),
        "{result}"
    );
    assert_eq!(elsewhere.hits(), 1);

    server.stop().await;
    for spy in [internal, allowed_origin, redirector, elsewhere, hop, twice] {
        spy.stop().await;
    }
}

/// Registers an upstream (with a credential) that must be refused; returns the refusal.
async fn register_refused(
    server: &TestServer,
    name: &str,
    url: &str,
    transport: &str,
) -> common::Reply {
    let registered = server
        .admin(
            Method::POST,
            "/gateways",
            Some(json!({"name": name, "url": url, "transport": transport,
                        "auth": {"type": "bearer", "token": "upstream-credential"}})),
        )
        .await;
    assert!(
        registered.status.is_client_error() || registered.status.is_server_error(),
        "{}",
        registered.body
    );
    registered
}

/// M4: an upstream MCP server's redirect is never followed (its credential stays home), and a
/// legacy SSE upstream's `endpoint` event naming another origin is refused.
async fn upstreams_cannot_redirect_credentials(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[]).await;
    let thief = Spy::start("127.0.0.1", Answer::Secret).await;
    let redirector = Spy::start(
        "127.0.0.1",
        Answer::Redirect(307, format!("{}/mcp", thief.base)),
    )
    .await;
    let registered = register_refused(
        &server,
        "Redirecting",
        &format!("{}/mcp", redirector.base),
        "streamablehttp",
    )
    .await;
    assert!(!registered.message().is_empty());
    assert!(redirector.hits() >= 1);
    assert_eq!(thief.hits(), 0, "the redirect was followed");

    let hostile = Spy::start(
        "127.0.0.1",
        Answer::SseEndpoint(format!("{}/message", thief.base)),
    )
    .await;
    let registered = register_refused(
        &server,
        "Hostile SSE",
        &format!("{}/sse", hostile.base),
        "SSE",
    )
    .await;
    assert!(
        registered.message().contains("another origin"),
        "{}",
        registered.body
    );
    assert_eq!(
        thief.hits(),
        0,
        "the credential went to the endpoint's origin"
    );
    server.stop().await;
    for spy in [thief, redirector, hostile] {
        spy.stop().await;
    }
}

/// H2 and H3: an API token is never a console session, the console's CSRF token is not a
/// value its holder can compute, and a token's permission list binds identity and admin
/// operations as it binds the registry.
async fn scoped_tokens_keep_their_limits(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[]).await;
    create_user(&server, "victim@example.com", "developer").await;
    let narrow = server
        .admin(
            Method::POST,
            "/tokens",
            Some(json!({"name": "narrow", "scope": {"permissions": ["tools.read"]}})),
        )
        .await;
    let narrow = narrow.expect(StatusCode::CREATED)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = server
        .admin(Method::POST, "/tokens", Some(json!({"name": "other"})))
        .await;
    let other_id = other.expect(StatusCode::CREATED)["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // H3: identity and admin operations decide through the token's scope.
    let probes = [
        (
            Method::POST,
            "/users/victim@example.com/roles".to_owned(),
            Some(json!({"role": "platform_admin"})),
        ),
        (Method::DELETE, format!("/tokens/{other_id}"), None),
        (Method::GET, "/admin/pool-stats".to_owned(), None),
        (
            Method::POST,
            "/users".to_owned(),
            Some(json!({"email": "new@example.com", "password": "a-long-enough-password"})),
        ),
        (
            Method::POST,
            "/teams".to_owned(),
            Some(json!({"name": "Shadow team"})),
        ),
    ];
    for (method, path, body) in probes {
        let refused = server.send(method, &path, Some(&narrow), body).await;
        assert_eq!(
            refused.status,
            StatusCode::FORBIDDEN,
            "{path}: {}",
            refused.body
        );
        assert!(
            refused.message().contains("scope"),
            "{path}: {}",
            refused.message()
        );
    }
    server
        .send(Method::GET, "/tools", Some(&narrow), None)
        .await
        .expect(StatusCode::OK);
    let victim = server
        .admin(Method::GET, "/users/victim@example.com", None)
        .await;
    assert_eq!(victim.expect(StatusCode::OK)["is_admin"], false);

    // H2: the token in the console's session cookie is not a session.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = browser
        .get(format!("{}/admin/users", server.base))
        .header("cookie", format!("mcpgate_session={narrow}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(page.headers()["location"], "/admin/login");
    // The public hash of a sign-in token is not its CSRF token any more.
    let signed_in = server
        .send(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": "admin@example.com", "password": "admin-password-for-tests"})),
        )
        .await;
    let session = signed_in.expect(StatusCode::OK)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let guessed = {
        use sha2::{Digest, Sha256};
        Sha256::digest(format!("mcpgate-console-csrf:{session}").as_bytes())
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect::<String>()
    };
    let forged = browser
        .post(format!("{}/admin/users/roles", server.base))
        .header("cookie", format!("mcpgate_session={session}"))
        .form(&[
            ("email", "victim@example.com"),
            ("role", "platform_admin"),
            ("csrf", guessed.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let victim = server
        .admin(Method::GET, "/users/victim@example.com", None)
        .await;
    assert_eq!(victim.expect(StatusCode::OK)["is_admin"], false);
    server.stop().await;
}

/// H4: templates that loop, double strings or recurse get a JSON-RPC error naming the budget
/// they exceeded, while the gateway keeps answering; a plain Jinja template renders.
async fn prompt_templates_cannot_freeze_the_server(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[]).await;
    let prompts = [
        (
            "plain",
            "Summarise {{ text | upper }}{% if text %}!{% endif %}",
        ),
        (
            "loops",
            "{% for i in range(100000) %}{% for j in range(100000) %}{{ text }}{% endfor %}{% endfor %}",
        ),
        (
            "doubles",
            "{% set ns = namespace(s=text) %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}",
        ),
        (
            "recurses",
            "{% macro grow(s, n) %}{% if n %}{{ grow(s ~ s, n - 1) }}{% else %}{{ s | length }}{% endif %}{% endmacro %}{{ grow(text, 40) }}",
        ),
    ];
    for (name, template) in prompts {
        server
            .admin(
                Method::POST,
                "/prompts",
                Some(json!({"name": name, "template": template,
                            "arguments": [{"name": "text", "required": true}]})),
            )
            .await
            .expect(StatusCode::CREATED);
    }
    let client = McpClient::new(&server, "/mcp");
    let get = |name: &'static str| {
        let client = &client;
        async move {
            client
                .modern(
                    "prompts/get",
                    json!({"name": name, "arguments": {"text": "abcdefgh"}}),
                )
                .await
        }
    };
    let plain = get("plain").await;
    assert_eq!(
        plain.expect(StatusCode::OK)["result"]["messages"][0]["content"]["text"],
        "Summarise ABCDEFGH!"
    );
    // The hostile ones at once, while /health is asked.
    let health = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = std::time::Instant::now();
        let reply = server.send(Method::GET, "/health", None, None).await;
        (reply.status, started.elapsed())
    };
    let (loops, doubles, recurses, (health_status, _)) =
        tokio::join!(get("loops"), get("doubles"), get("recurses"), health);
    assert_eq!(health_status, StatusCode::OK);
    let message = expect_error(&loops, StatusCode::OK, -32602);
    assert!(message.contains("PROMPT_RENDER_FUEL"), "{message}");
    for reply in [doubles, recurses] {
        let message = expect_error(&reply, StatusCode::OK, -32602);
        assert!(
            message.contains("PROMPT_RENDER_MEMORY_MB")
                || message.contains("PROMPT_RENDER_TIMEOUT_MS")
                || message.contains("PROMPT_RENDER_FUEL"),
            "{message}"
        );
    }
    // Still serving.
    let again = get("plain").await;
    again.expect(StatusCode::OK);
    server.stop().await;
}

/// M6: a team owner cannot give a team role to someone outside the team, and a team role
/// never counts for platform operations.
async fn team_roles_stay_inside_their_team(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[]).await;
    let owner = create_user(&server, "owner@example.com", "developer").await;
    let outsider = create_user(&server, "outsider@example.com", "viewer").await;
    let team = server
        .send(
            Method::POST,
            "/teams",
            Some(&owner),
            Some(json!({"name": "Owned"})),
        )
        .await;
    let team_id = team.expect(StatusCode::CREATED)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = server
        .send(
            Method::POST,
            "/users/outsider@example.com/roles",
            Some(&owner),
            Some(json!({"role": "team_admin", "team_id": team_id})),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    // A member with a team role: tokens and teams (platform operations) stay out of reach.
    server
        .send(
            Method::POST,
            &format!("/teams/{team_id}/members"),
            Some(&owner),
            Some(json!({"email": "outsider@example.com"})),
        )
        .await
        .expect(StatusCode::OK);
    server
        .send(
            Method::POST,
            "/users/outsider@example.com/roles",
            Some(&owner),
            Some(json!({"role": "team_admin", "team_id": team_id})),
        )
        .await
        .expect(StatusCode::OK);
    for (path, body) in [
        ("/tokens", json!({"name": "t"})),
        ("/teams", json!({"name": "Another"})),
    ] {
        let refused = server
            .send(Method::POST, path, Some(&outsider), Some(body))
            .await;
        assert_eq!(
            refused.status,
            StatusCode::FORBIDDEN,
            "{path}: {}",
            refused.body
        );
        assert!(
            refused.message().contains("global"),
            "{}",
            refused.message()
        );
    }
    server.stop().await;
}

/// M1 and M2: one principal past their stream and session quotas gets a 429 that names the
/// setting, while another principal still gets in and `/health` answers.
async fn one_principal_cannot_take_every_stream_or_session(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(
        &db,
        &[
            ("MCP_MAX_STREAMS_PER_PRINCIPAL", "3"),
            ("MCP_MAX_SESSIONS_PER_PRINCIPAL", "3"),
        ],
    )
    .await;
    let greedy = create_user(&server, "greedy@example.com", "developer").await;
    let other = create_user(&server, "other@example.com", "developer").await;
    let client_of = |token: &str| {
        let mut client = McpClient::new(&server, "/mcp");
        client.token = token.to_owned();
        client
    };
    let (greedy_client, other_client) = (client_of(&greedy), client_of(&other));
    let listen = |client: &McpClient<'_>| {
        client.modern_body(
            "subscriptions/listen",
            json!({"notifications": {"toolsListChanged": true}}),
        )
    };
    let mut held = Vec::new();
    for _ in 0..3 {
        let stream = greedy_client.modern_stream(&listen(&greedy_client)).await;
        assert_eq!(stream.status(), StatusCode::OK);
        held.push(stream);
    }
    let refused = greedy_client.modern_stream(&listen(&greedy_client)).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("MCP_MAX_STREAMS_PER_PRINCIPAL"), "{body}");
    let theirs = other_client.modern_stream(&listen(&other_client)).await;
    assert_eq!(theirs.status(), StatusCode::OK);
    server
        .send(Method::GET, "/health", None, None)
        .await
        .expect(StatusCode::OK);

    let mut sessions = Vec::new();
    for _ in 0..3 {
        let (session, reply) = greedy_client.initialize("2025-11-25").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        sessions.push(session);
    }
    let (_, refused) = greedy_client.initialize("2025-11-25").await;
    let message = expect_error(&refused, StatusCode::TOO_MANY_REQUESTS, -32000);
    assert!(
        message.contains("MCP_MAX_SESSIONS_PER_PRINCIPAL"),
        "{message}"
    );
    let (_, theirs) = other_client.initialize("2025-11-25").await;
    assert_eq!(theirs.status, StatusCode::OK);
    // Ending one gives its place back at once.
    let ended = greedy_client
        .verb(Method::DELETE, &[("mcp-session-id", &sessions[0])])
        .await;
    assert!(ended.status().is_success(), "{}", ended.status());
    let (_, again) = greedy_client.initialize("2025-11-25").await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    drop(held);
    server.stop().await;
}

/// Signs in over the REST API; returns the sign-in token.
async fn sign_in(server: &TestServer, email: &str, password: &str) -> String {
    let signed_in = server
        .send(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": email, "password": password})),
        )
        .await;
    signed_in.expect(StatusCode::OK)["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// M5: a deleted account's sign-in and API tokens never work for a new account of the same
/// email; a password reset and a disable end the sign-ins made before them.
async fn tokens_die_with_their_account(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[]).await;
    let works = |token: String| {
        let server = &server;
        async move {
            server
                .send(Method::GET, "/tools", Some(&token), None)
                .await
                .status
        }
    };
    create_user(&server, "ghost@example.com", "developer").await;
    let signed_in = sign_in(&server, "ghost@example.com", common::USER_PASSWORD).await;
    let api = server
        .send(
            Method::POST,
            "/tokens",
            Some(&signed_in),
            Some(json!({"name": "long-lived", "expires_in_days": 3650})),
        )
        .await;
    let api = api.expect(StatusCode::CREATED)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(works(signed_in.clone()).await, StatusCode::OK);
    assert_eq!(works(api.clone()).await, StatusCode::OK);

    server
        .admin(Method::DELETE, "/users/ghost@example.com", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    create_user(&server, "ghost@example.com", "developer").await;
    for old in [&signed_in, &api] {
        let refused = server.send(Method::GET, "/tools", Some(old), None).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
        assert!(
            refused.message().contains("no longer exists"),
            "{}",
            refused.body
        );
    }
    // The new account signs in as usual.
    let fresh = sign_in(&server, "ghost@example.com", common::USER_PASSWORD).await;
    assert_eq!(works(fresh.clone()).await, StatusCode::OK);

    // An admin's password reset ends the sign-ins made before it (tokens count whole
    // seconds: the reset is made in a later second than the sign-in).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    server
        .admin(
            Method::PUT,
            "/users/ghost@example.com",
            Some(json!({"password": "a brand new passphrase"})),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(works(fresh).await, StatusCode::UNAUTHORIZED);
    let after_reset = sign_in(&server, "ghost@example.com", "a brand new passphrase").await;
    assert_eq!(works(after_reset.clone()).await, StatusCode::OK);

    // Disabling, then enabling again, does not bring the earlier sign-in back.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for active in [false, true] {
        server
            .admin(
                Method::PUT,
                "/users/ghost@example.com",
                Some(json!({"is_active": active})),
            )
            .await
            .expect(StatusCode::OK);
    }
    assert_eq!(works(after_reset).await, StatusCode::UNAUTHORIZED);
    server.stop().await;
}

/// The gateway's count of password verifications, from `/metrics`.
async fn verifications(server: &TestServer) -> u64 {
    let text = server
        .client
        .get(format!("{}/metrics", server.base))
        .bearer_auth(&server.admin_token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("mcpgate_password_verifications_total "))
        .and_then(|value| value.trim().parse().ok())
        .expect("the metric is exported")
}

/// Sends one sign-in; returns the status and the message.
async fn attempt(server: &TestServer, email: &str, password: &str) -> (StatusCode, String) {
    let reply = server
        .send(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": email, "password": password})),
        )
        .await;
    (reply.status, reply.message().to_owned())
}

/// M3: forty truly concurrent guesses get at most MAX_FAILED_LOGIN_ATTEMPTS password checks
/// (they were 32 of 40); after that many failures the right password is refused with the very
/// answer an unknown email gets; one address past its per-minute limit gets 429.
async fn concurrent_guesses_are_all_counted(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(
        &db,
        &[
            ("MAX_FAILED_LOGIN_ATTEMPTS", "5"),
            ("LOGIN_RATE_LIMIT_PER_MINUTE", "1000"),
        ],
    )
    .await;
    create_user(&server, "victim@example.com", "developer").await;
    let before = verifications(&server).await;
    let guesses = (0..40).map(|index| {
        let server = &server;
        async move {
            attempt(
                server,
                "victim@example.com",
                &format!("guess number {index}"),
            )
            .await
        }
    });
    let answers = futures_util::future::join_all(guesses).await;
    assert!(
        answers
            .iter()
            .all(|(status, _)| *status == StatusCode::UNAUTHORIZED
                || *status == StatusCode::TOO_MANY_REQUESTS),
        "{answers:?}"
    );
    let checked = verifications(&server).await - before;
    assert!(
        (1..=5).contains(&checked),
        "{checked} passwords were checked"
    );
    // Wrong guesses one after another until the account locks; then the right password is
    // refused, and every refusal reads the same.
    for index in 0..5 {
        attempt(
            &server,
            "victim@example.com",
            &format!("later guess {index}"),
        )
        .await;
    }
    let (status, locked) = attempt(&server, "victim@example.com", common::USER_PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, unknown) = attempt(&server, "nobody@example.com", "whatever it is").await;
    let (_, wrong) = attempt(&server, "admin@example.com", "not the password").await;
    assert_eq!(locked, unknown);
    assert_eq!(wrong, unknown);
    server.stop().await;

    let limited = TestServer::start(&db, &[("LOGIN_RATE_LIMIT_PER_MINUTE", "3")]).await;
    for _ in 0..3 {
        let (status, _) = attempt(&limited, "nobody@example.com", "a guess").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, message) =
        attempt(&limited, "admin@example.com", "admin-password-for-tests").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{message}");
    assert!(message.contains("too many sign-in attempts"), "{message}");
    limited.stop().await;
}

/// Low: `X-Forwarded-*` from an untrusted client are not reflected into the 401 challenge or
/// the OAuth metadata; every response says `nosniff` and is not cached unless it says so.
async fn forwarded_headers_need_a_trusted_proxy(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[]).await;
    let challenge = server
        .client
        .post(format!("{}/mcp", server.base))
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-proto", "https")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(challenge.status(), StatusCode::UNAUTHORIZED);
    let www = challenge.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!www.contains("evil.example"), "{www}");
    assert_eq!(challenge.headers()["x-content-type-options"], "nosniff");
    assert_eq!(challenge.headers()["cache-control"], "no-store");
    let metadata = server
        .client
        .get(format!(
            "{}/.well-known/oauth-protected-resource/mcp",
            server.base
        ))
        .header("x-forwarded-host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(metadata.headers()["cache-control"], "no-store");
    let body = metadata.text().await.unwrap();
    assert!(!body.contains("evil.example"), "{body}");
    server.stop().await;

    // Behind a trusted proxy, they are believed.
    let proxied = TestServer::start(&db, &[("TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    let metadata = proxied
        .client
        .get(format!(
            "{}/.well-known/oauth-protected-resource/mcp",
            proxied.base
        ))
        .header("x-forwarded-host", "gateway.example")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metadata.contains("https://gateway.example/mcp"),
        "{metadata}"
    );
    proxied.stop().await;
}

/// Tool calls in flight are limited per principal: past the quota a 429 names the setting,
/// while another principal's call goes through.
async fn one_principal_cannot_take_every_tool_call(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[("MCP_MAX_TOOL_CALLS_PER_PRINCIPAL", "2")]).await;
    let fixture = common::fixture::RestFixture::start().await;
    server
        .admin(
            Method::POST,
            "/tools",
            Some(json!({"name": "nap", "url": format!("{}/nap", fixture.base), "request_type": "GET"})),
        )
        .await
        .expect(StatusCode::CREATED);
    let greedy = create_user(&server, "greedy@example.com", "developer").await;
    let other = create_user(&server, "other@example.com", "developer").await;
    let call = |token: String| {
        let server = &server;
        async move {
            let mut client = McpClient::new(server, "/mcp");
            client.token = token;
            client
                .modern("tools/call", json!({"name": "nap", "arguments": {}}))
                .await
        }
    };
    let (first, second, third, theirs) = tokio::join!(
        call(greedy.clone()),
        call(greedy.clone()),
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            call(greedy.clone()).await
        },
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            call(other.clone()).await
        },
    );
    for reply in [&first, &second, &theirs] {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.body["result"]["isError"], false, "{}", reply.body);
    }
    // A modern tools/call answers on a stream that has begun by the time the quota is checked:
    // the refusal is its JSON-RPC error (a 429 where the response has not begun).
    assert_eq!(third.body["error"]["code"], -32000, "{}", third.body);
    let message = third.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("MCP_MAX_TOOL_CALLS_PER_PRINCIPAL"),
        "{message}"
    );
    server.stop().await;
    fixture.stop().await;
}

/// Secrets at rest: the database holds nothing that opens what it protects. REST tool headers
/// are sealed and never shown; the secrets an earlier version kept in the database and its
/// plain-text header values are moved into a 0600 key file and sealed at start; a rotation of
/// the encryption secret seals every stored credential again; PostgreSQL never generates one.
async fn secrets_are_not_kept_beside_what_they_protect(backend: Backend) {
    use std::os::unix::fs::PermissionsExt;
    let db = TestDb::new(backend).await;
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("mcpgate.secrets");
    let key_file_setting = key_file.display().to_string();
    let spy = Spy::start("127.0.0.1", Answer::Secret).await;
    let sent_key = |index: usize| {
        spy.headers_of(index)
            .into_iter()
            .find(|(name, _)| name == "x-api-key")
            .map(|(_, value)| value)
    };
    let stored_headers = || common::sql_texts(&db, "SELECT headers AS value FROM tools");
    let stored_secrets = || common::sql_texts(&db, "SELECT name AS value FROM bootstrap_secrets");

    let server = TestServer::start(&db, &[]).await;
    let created = rest_tool(&server, "keyed", &format!("{}/data", spy.base)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["headers"], json!({"X-Api-Key": "*****"}));
    let stored = stored_headers().await;
    assert!(
        stored[0].contains("sealed:v1:") && !stored[0].contains("tool-secret"),
        "{stored:?}"
    );
    assert_eq!(stored_secrets().await, Vec::<String>::new());
    call_tool(&server, "keyed").await;
    assert_eq!(sent_key(0).as_deref(), Some("tool-secret"));
    server.stop().await;

    // What an earlier version left: its generated encryption secret in the database and header
    // values in plain text.
    common::sql_execute(
        &db,
        &format!(
            "INSERT INTO bootstrap_secrets (name, value, created_at) \
             VALUES ('encryption_secret', '{}', CURRENT_TIMESTAMP); \
             UPDATE tools SET headers = '{{\"X-Api-Key\":\"legacy-plain\"}}'",
            common::ENCRYPTION_SECRET
        ),
    )
    .await;
    let from_file = [
        ("AUTH_ENCRYPTION_SECRET", ""),
        ("SECRETS_FILE", key_file_setting.as_str()),
    ];
    let server = TestServer::start(&db, &from_file).await;
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the key file is for the gateway's user only");
    let file: Value = serde_json::from_slice(&std::fs::read(&key_file).unwrap()).unwrap();
    assert_eq!(file["encryption_secret"], common::ENCRYPTION_SECRET);
    assert_eq!(stored_secrets().await, Vec::<String>::new(), "moved out");
    let sealed = stored_headers().await;
    assert!(
        sealed[0].contains("sealed:v1:") && !sealed[0].contains("legacy-plain"),
        "{sealed:?}"
    );
    call_tool(&server, "keyed").await;
    assert_eq!(sent_key(1).as_deref(), Some("legacy-plain"));
    server.stop().await;

    // A rotation: the new secret, with the old one as previous, seals everything again ...
    let rotated = "a-rotated-encryption-secret-0123456789";
    let server = TestServer::start(
        &db,
        &[
            ("AUTH_ENCRYPTION_SECRET", rotated),
            ("AUTH_ENCRYPTION_SECRET_PREVIOUS", common::ENCRYPTION_SECRET),
        ],
    )
    .await;
    let resealed = stored_headers().await;
    assert_ne!(resealed, sealed, "sealed again with the new secret");
    server.stop().await;
    // ... so the old one can go.
    let server = TestServer::start(&db, &[("AUTH_ENCRYPTION_SECRET", rotated)]).await;
    call_tool(&server, "keyed").await;
    assert_eq!(sent_key(2).as_deref(), Some("legacy-plain"));
    server.stop().await;
    spy.stop().await;

    if backend == Backend::Postgres {
        // No secret setting and no key file: no replica generates its own.
        let settings = common::settings(&db.url(), &[("AUTH_ENCRYPTION_SECRET", "")]);
        let Err(error) = mcpgate::app::start(settings).await else {
            panic!("PostgreSQL without an encryption secret must not start");
        };
        assert!(
            error.contains("AUTH_ENCRYPTION_SECRET") && error.contains("SECRETS_FILE"),
            "{error}"
        );
    }
}

/// Names: an upstream (the official TypeScript SDK) offering a tool name with an invisible or
/// mixed-script look-alike character has that tool skipped, the registration's report naming
/// the character (in strict mode the registration is refused with a 502 naming it, and
/// nothing is stored); a decomposed name is served NFC-normalised and called upstream by its
/// original. A name conflict tells nothing about the item the caller cannot see.
async fn look_alike_names_are_refused(backend: Backend) {
    use common::sdk::ConformanceFixture;
    let db = TestDb::new(backend).await;
    let looks_alike = [
        ("get\u{200B}weather", "U+200B"),
        ("p\u{430}y", "several scripts"),
        ("admin\u{202E}txt", "U+202E"),
    ];
    let strict = TestServer::start(&db, &[("UPSTREAM_DISCOVERY_STRICT", "true")]).await;
    for (name, reason) in looks_alike {
        let upstream = ConformanceFixture::start_with(0, &[name]);
        let refused = strict
            .admin(
                Method::POST,
                "/gateways",
                Some(json!({"name": "Sly", "url": upstream.url})),
            )
            .await;
        assert_eq!(refused.status, StatusCode::BAD_GATEWAY, "{}", refused.body);
        assert!(
            refused.message().contains(reason) && refused.message().contains(&upstream.url),
            "{name:?}: {}",
            refused.body
        );
    }
    let stored = strict.admin(Method::GET, "/gateways", None).await;
    assert_eq!(stored.body["items"], json!([]), "nothing stored");
    let tools = strict.admin(Method::GET, "/tools", None).await;
    assert_eq!(tools.body["items"], json!([]), "nothing stored");
    strict.stop().await;

    let server = TestServer::start(&db, &[]).await;
    let mut names: Vec<&str> = looks_alike.iter().map(|(name, _)| *name).collect();
    names.push("cafe\u{301}");
    let upstream = ConformanceFixture::start_with(0, &names);
    let registered = server
        .admin(
            Method::POST,
            "/gateways",
            Some(json!({"name": "Sly", "url": upstream.url})),
        )
        .await;
    let registered = registered.expect(StatusCode::CREATED);
    let skipped = registered["skipped"].as_array().expect("skipped");
    assert_eq!(skipped.len(), 3, "{registered}");
    for (name, reason) in looks_alike {
        assert!(
            skipped
                .iter()
                .any(|item| item["name"] == name
                    && item["reason"].as_str().unwrap().contains(reason)),
            "{name:?} is skipped for {reason}: {registered}"
        );
    }
    let tools = McpClient::new(&server, "/mcp")
        .modern("tools/list", json!({}))
        .await;
    let listed = tools.expect(StatusCode::OK).to_string();
    assert!(
        listed.contains("sly-test_simple_text")
            && !listed.contains("weather")
            && !listed.contains("txt"),
        "the upstreams' other tools are served, no look-alike: {listed}"
    );

    let result = call_tool(&server, "sly-caf\u{e9}").await;
    assert_eq!(
        result["content"][0]["text"], "called cafe\u{301}",
        "{result}"
    );

    // A developer's private tool name, tried by another developer: the conflict says the name
    // is taken, not whose it is or what it is.
    let alice = create_user(&server, "alice@example.com", "developer").await;
    let bob = create_user(&server, "bob@example.com", "developer").await;
    let tool = json!({"name": "quarterly_layoffs", "url": "http://127.0.0.1:9/x",
                      "visibility": "private"});
    let created = server
        .send(Method::POST, "/tools", Some(&alice), Some(tool.clone()))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let clash = server
        .send(Method::POST, "/tools", Some(&bob), Some(tool))
        .await;
    assert_eq!(clash.status, StatusCode::CONFLICT);
    let message = clash.message();
    assert!(message.contains("not available"), "{message}");
    assert!(
        !message.contains("alice") && !message.contains("private"),
        "{message}"
    );
    server.stop().await;
}

/// Parked calls (an upstream's question waiting for a 2026-07-28 client's retry) are held per
/// principal: past `MCP_MAX_PARKED_CALLS_PER_PRINCIPAL` the call is refused naming the setting
/// while another principal still parks; a resumed call gives its place back.
async fn one_principal_cannot_park_every_call(backend: Backend) {
    use common::sdk::ConformanceFixture;
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[("MCP_MAX_PARKED_CALLS_PER_PRINCIPAL", "2")]).await;
    let fixture = ConformanceFixture::start();
    common::register_gateway(&server, "Fixture", &fixture.url).await;
    let mut alice = McpClient::new(&server, "/mcp");
    alice.token = create_user(&server, "alice@example.com", "developer").await;
    let mut bob = McpClient::new(&server, "/mcp");
    bob.token = create_user(&server, "bob@example.com", "developer").await;
    let ask = |client: &McpClient, retry: Value| {
        client.eliciting_call(
            "fixture-test_elicitation",
            json!({"message": "who?"}),
            retry,
        )
    };
    let parked = |reply: &common::Reply| {
        let result = &reply.expect(StatusCode::OK)["result"];
        assert_eq!(result["resultType"], "input_required", "{}", reply.body);
        result["requestState"].as_str().unwrap().to_owned()
    };
    let first = parked(&alice.send_modern(ask(&alice, json!({}))).await);
    parked(&alice.send_modern(ask(&alice, json!({}))).await);
    let third = alice.send_modern(ask(&alice, json!({}))).await;
    assert!(
        third.status == StatusCode::TOO_MANY_REQUESTS || third.status == StatusCode::OK,
        "{}",
        third.body
    );
    assert_eq!(third.body["error"]["code"], -32000, "{}", third.body);
    let message = third.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("MCP_MAX_PARKED_CALLS_PER_PRINCIPAL"),
        "{message}"
    );
    // Another principal still parks.
    parked(&bob.send_modern(ask(&bob, json!({}))).await);
    // Answering one gives alice's place back.
    let answer = json!({"inputResponses": {"q1": {"action": "accept",
        "content": {"username": "alice", "email": "a@example.com"}}}, "requestState": first});
    let done = alice.send_modern(ask(&alice, answer)).await;
    assert_eq!(
        done.expect(StatusCode::OK)["result"]["resultType"],
        "complete",
        "{}",
        done.body
    );
    parked(&alice.send_modern(ask(&alice, json!({}))).await);
    server.stop().await;
}

both_backends!(
    one_principal_cannot_park_every_call,
    look_alike_names_are_refused,
    secrets_are_not_kept_beside_what_they_protect,
    one_principal_cannot_take_every_tool_call,
    forwarded_headers_need_a_trusted_proxy,
    concurrent_guesses_are_all_counted,
    tokens_die_with_their_account,
    one_principal_cannot_take_every_stream_or_session,
    rest_tools_cannot_reach_internal_services,
    upstreams_cannot_redirect_credentials,
    scoped_tokens_keep_their_limits,
    prompt_templates_cannot_freeze_the_server,
    team_roles_stay_inside_their_team,
);
