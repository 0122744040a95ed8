//! Upstreams protected by OAuth: a real MCP server (the TypeScript SDK's, in
//! `tests/interop/node/protected-mcp.mjs`) that accepts only JWT access tokens of `oidc-provider`
//! (npm) for its own URL, both on loopback. The gateway finds the authorization server from the
//! upstream's 401, the way a spec-following client does, and calls it with its own token
//! (client credentials) or, for an upstream that authenticates each user, with each user's own
//! (the code flow the user went through in the console, the test playing the browser; the
//! gateway registered itself as a client). Tokens live 5 seconds here: they are renewed before
//! they expire (refresh tokens for users) and no call fails meanwhile. A user who has not
//! connected is told where to connect; one who disconnects is told again.

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::mcp::McpClient;
use common::sdk::{deps_dir, free_port, spawn_announcing};
use common::{Backend, TestDb, TestServer, create_user, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::idp::{start_idp_with, through_provider};

const SECRET: &str = "upstream-client-secret-0123456789";

/// `whoami` through the gateway as the holder of `token`: the upstream's view of the token it
/// was called with, or the error result's text.
async fn whoami(server: &TestServer, token: &str, tool: &str) -> Result<Value, String> {
    let mut client = McpClient::new(server, "/mcp");
    client.token = token.to_owned();
    let reply = client
        .modern("tools/call", json!({"name": tool, "arguments": {}}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let result = &reply.body["result"];
    let text = result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if result["isError"] == true {
        return Err(text);
    }
    Ok(serde_json::from_str(&text).unwrap_or_else(|_| panic!("{result}")))
}

/// The protected MCP server, trusting `issuer`'s tokens.
fn start_protected(issuer: &str) -> common::sdk::Upstream {
    let mut command = Command::new("node");
    command
        .arg(format!("{}/node/protected-mcp.mjs", deps_dir()))
        .env("ISSUER", issuer);
    spawn_announcing(command)
}

async fn upstreams_behind_oauth(backend: Backend) {
    let keys = tempfile::tempdir().unwrap();
    let idp_port = free_port();
    let issuer = format!("http://127.0.0.1:{idp_port}");
    let _idp = start_idp_with(
        idp_port,
        keys.path(),
        "k1",
        &json!({}),
        vec![json!({
            "client_id": "mcpgate-upstream",
            "client_secret": SECRET,
            "redirect_uris": [],
            "grant_types": ["client_credentials"],
            "response_types": [],
            "token_endpoint_auth_method": "client_secret_post",
        })],
        &[("ACCESS_TOKEN_TTL", "5"), ("REGISTRATION", "1")],
    );
    let protected = start_protected(&issuer);

    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[("SSRF_ALLOW_LOCALHOST", "true")]).await;
    let admin = server.admin_token.clone();

    // The gateway's own token: only the client is given; the token endpoint comes from the
    // upstream's 401, its resource metadata and the authorization server's metadata.
    let shared = server
        .admin(
            Method::POST,
            "/gateways",
            Some(json!({"name": "Shared", "url": protected.url,
                "auth": {"type": "oauth2_client_credentials", "client_id": "mcpgate-upstream", "client_secret": SECRET}})),
        )
        .await;
    assert_eq!(shared.status, StatusCode::CREATED, "{}", shared.body);
    assert_eq!(shared.body["discovered"]["tools"], 1, "{}", shared.body);
    assert_eq!(shared.body["auth_type"], "oauth2_client_credentials");
    assert!(
        !shared.body.to_string().contains(SECRET),
        "the secret is never shown"
    );
    // Tokens for another resource than the upstream's own are refused (they would go there).
    let elsewhere = server
        .admin(
            Method::POST,
            "/gateways",
            Some(json!({"name": "Elsewhere", "url": protected.url,
                "auth": {"type": "oauth2_client_credentials", "client_id": "mcpgate-upstream",
                         "client_secret": SECRET, "resource": "https://elsewhere.example/mcp"}})),
        )
        .await;
    assert_eq!(
        elsewhere.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        elsewhere.body
    );
    assert_eq!(
        elsewhere.body["field"], "auth.resource",
        "{}",
        elsewhere.body
    );
    let first = whoami(&server, &admin, "shared-whoami").await.unwrap();
    assert_eq!(first["client_id"], "mcpgate-upstream", "{first}");
    // Renewed before it expires: a new token comes, and no call failed meanwhile.
    let user = create_user(&server, "dev@example.com", "developer").await;
    eventually(
        "the gateway's token is renewed",
        Duration::from_secs(30),
        || async {
            let now = whoami(&server, &user, "shared-whoami")
                .await
                .expect("no call fails");
            (now["jti"] != first["jti"]).then_some(())
        },
    )
    .await;

    // Each user's own token: the gateway registers itself at the authorization server, and
    // discovers the upstream once its owner has connected.
    let personal = server
        .admin(
            Method::POST,
            "/gateways",
            Some(json!({"name": "Personal", "url": protected.url,
                "auth": {"type": "oauth2_user", "scope": "openid offline_access mcp"}})),
        )
        .await;
    assert_eq!(personal.status, StatusCode::CREATED, "{}", personal.body);
    let id = personal.body["id"].as_str().unwrap().to_owned();
    assert_eq!(personal.body["discovered"]["tools"], 0, "{}", personal.body);
    let browser = crate::console::admin_browser(&server).await;
    // The gateways page offers each user to connect (and disconnect) their own account.
    let listed = crate::console::page(&browser, &server, "/admin/gateways").await;
    assert!(
        listed.contains(&format!("href=\"/admin/upstreams/{id}/connect\"")),
        "{listed}"
    );
    assert!(
        listed.contains(&format!("action=\"/admin/upstreams/{id}/disconnect\"")),
        "{listed}"
    );
    let connect = |browser: reqwest::Client, login: &'static str| {
        let server = &server;
        let id = id.clone();
        let issuer = issuer.clone();
        async move {
            let started = browser
                .get(format!("{}/admin/upstreams/{id}/connect", server.base))
                .send()
                .await
                .unwrap();
            assert_eq!(started.status(), StatusCode::SEE_OTHER);
            let at = started.headers()["location"].to_str().unwrap().to_owned();
            assert!(
                at.starts_with(&format!("{issuer}/")),
                "to the authorization server: {at}"
            );
            let callback = format!("{}/admin/upstream-oauth/callback", server.base);
            let back = through_provider(&browser, &at, login, &callback).await;
            // The callback moves on from this site (so a browser sends the Strict session
            // cookie along), to where the code is exchanged.
            let page = browser.get(&back).send().await.unwrap();
            assert_eq!(page.status(), StatusCode::OK);
            let html = page.text().await.unwrap();
            let next = html
                .split("url=")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_else(|| panic!("a page that moves on: {html}"))
                .replace("&#x2F;", "/")
                .replace("&amp;", "&");
            assert!(next.starts_with("/admin/upstream-oauth/finish?"), "{next}");
            let landed = browser
                .get(format!("{}{next}", server.base))
                .send()
                .await
                .unwrap();
            assert_eq!(landed.status(), StatusCode::SEE_OTHER);
            let page = crate::console::page(&browser, server, "/admin/gateways").await;
            assert!(
                page.contains("Your account is connected to Personal"),
                "{page}"
            );
        }
    };
    connect(browser.clone(), "admin@example.com").await;
    let tools = McpClient::new(&server, "/mcp")
        .modern("tools/list", json!({}))
        .await;
    assert!(
        tools.body.to_string().contains("personal-whoami"),
        "discovered after the owner connected: {}",
        tools.body
    );
    let mine = whoami(&server, &admin, "personal-whoami").await.unwrap();
    assert_eq!(
        mine["sub"], "admin@example.com",
        "the user's own token: {mine}"
    );

    // A user who has not connected is told where to.
    let refused = whoami(&server, &user, "personal-whoami").await.unwrap_err();
    assert!(
        refused.contains("needs your own authorization"),
        "{refused}"
    );
    assert!(
        refused.contains(&format!("/admin/upstreams/{id}/connect")),
        "{refused}"
    );
    // They connect, and their calls carry their own token.
    let theirs = crate::console::browser_like();
    crate::console::sign_in(&server, &theirs, "dev@example.com", common::USER_PASSWORD).await;
    connect(theirs.clone(), "dev@example.com").await;
    let seen = whoami(&server, &user, "personal-whoami").await.unwrap();
    assert_eq!(seen["sub"], "dev@example.com", "{seen}");

    // Their token is refreshed before it expires (a refresh token), no call failing.
    eventually(
        "the user's token is refreshed",
        Duration::from_secs(30),
        || async {
            let now = whoami(&server, &user, "personal-whoami")
                .await
                .expect("no call fails");
            assert_eq!(now["sub"], "dev@example.com");
            (now["jti"] != seen["jti"]).then_some(())
        },
    )
    .await;

    // Disconnected: told again where to connect.
    let gateways = crate::console::page(&theirs, &server, "/admin/gateways").await;
    let csrf = crate::console::field(&gateways, "csrf");
    let disconnected = theirs
        .post(format!("{}/admin/upstreams/{id}/disconnect", server.base))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(disconnected.status(), StatusCode::SEE_OTHER);
    let again = whoami(&server, &user, "personal-whoami").await.unwrap_err();
    assert!(again.contains("connect your account"), "{again}");
    // The admin's own connection is untouched.
    assert_eq!(
        whoami(&server, &admin, "personal-whoami").await.unwrap()["sub"],
        "admin@example.com"
    );

    // An export carries the OAuth configurations as `POST /gateways` takes them, the client
    // secret sealed with the passphrase; a dry-run import of it reads back.
    let passphrase = "a passphrase of some length";
    let exported: Value = server
        .client
        .get(format!("{}/export?secrets=encrypt", server.base))
        .bearer_auth(&admin)
        .header("x-export-passphrase", passphrase)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !exported.to_string().contains(SECRET),
        "no secret in the clear"
    );
    let gateways = exported["gateways"].as_array().unwrap();
    let entry = |name: &str| {
        gateways
            .iter()
            .find(|gateway| gateway["name"] == name)
            .unwrap()
            .clone()
    };
    let auth = &entry("Shared")["auth"];
    assert_eq!(auth["type"], "oauth2_client_credentials", "{auth}");
    assert_eq!(auth["client_id"], "mcpgate-upstream");
    assert!(
        auth["token_url"].as_str().unwrap().starts_with(&issuer),
        "{auth}"
    );
    assert!(auth["client_secret"].is_string(), "{auth}");
    assert_eq!(entry("Personal")["auth"]["type"], "oauth2_user");
    let checked = server
        .client
        .post(format!(
            "{}/import?dry_run=true&conflict=rename",
            server.base
        ))
        .bearer_auth(&admin)
        .header("x-import-passphrase", passphrase)
        .json(&exported)
        .send()
        .await
        .unwrap();
    let status = checked.status();
    let report: Value = checked.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        report["summary"]["failed"].as_u64().unwrap_or(0),
        0,
        "{report}"
    );
    server.stop().await;
}

crate::both_backends!(upstreams_behind_oauth);

/// Token exchange (RFC 8693): the authorization server trusts the gateway's public key (the
/// gateway signs with RS256); each user's calls carry a token it exchanged for the gateway's
/// assertion of who they are, with no connecting step. A gateway signing with a shared secret
/// cannot offer this and says why.
async fn token_exchange(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = crate::identity::key_files(dir.path(), "RS256");
    let idp_port = free_port();
    let issuer = format!("http://127.0.0.1:{idp_port}");
    let _idp = start_idp_with(
        idp_port,
        &dir.path().join("idp-keys"),
        "k1",
        &json!({}),
        vec![json!({
            "client_id": "mcpgate-exchange",
            "client_secret": SECRET,
            "redirect_uris": [],
            "grant_types": ["urn:ietf:params:oauth:grant-type:token-exchange"],
            "response_types": [],
            "token_endpoint_auth_method": "client_secret_post",
        })],
        &[
            ("TRUSTED_ISSUER", "mcpgate"),
            ("TRUSTED_KEY", public.as_str()),
        ],
    );
    let protected = start_protected(&issuer);
    let db = TestDb::new(backend).await;
    let server = TestServer::start(
        &db,
        &[
            ("SSRF_ALLOW_LOCALHOST", "true"),
            ("JWT_ALGORITHM", "RS256"),
            ("JWT_PRIVATE_KEY_PATH", private.as_str()),
            ("JWT_PUBLIC_KEY_PATH", public.as_str()),
        ],
    )
    .await;
    let signed_in = |email: &'static str, password: &'static str| {
        let server = &server;
        async move {
            let reply = common::login(server, email, password).await;
            reply.expect(StatusCode::OK)["access_token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let admin = signed_in("admin@example.com", "admin-password-for-tests").await;
    let body = json!({"name": "Exchanged", "url": protected.url,
        "auth": {"type": "oauth2_token_exchange", "client_id": "mcpgate-exchange", "client_secret": SECRET}});
    let registered = server
        .send(Method::POST, "/gateways", Some(&admin), Some(body.clone()))
        .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.body
    );
    assert_eq!(
        registered.body["discovered"]["tools"], 1,
        "discovered with the owner's exchanged token: {}",
        registered.body
    );
    let mine = whoami(&server, &admin, "exchanged-whoami").await.unwrap();
    assert_eq!(mine["sub"], "admin@example.com", "{mine}");
    assert_eq!(mine["client_id"], "mcpgate-exchange", "{mine}");
    server
        .send(
            Method::POST,
            "/users",
            Some(&admin),
            Some(json!({"email": "dev@example.com", "password": common::USER_PASSWORD, "role": "developer"})),
        )
        .await
        .expect(StatusCode::CREATED);
    let dev = signed_in("dev@example.com", common::USER_PASSWORD).await;
    let theirs = whoami(&server, &dev, "exchanged-whoami").await.unwrap();
    assert_eq!(theirs["sub"], "dev@example.com", "{theirs}");
    // An assertion like the gateway's (its key, even for its own audience) is no key to the
    // gateway itself.
    let now = chrono::Utc::now().timestamp();
    let assertion = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &json!({"iss": "mcpgate", "sub": "admin@example.com", "aud": "mcpgate-api", "iat": now, "exp": now + 60,
                "jti": "x", "is_admin": true, "token_use": "assertion"}),
        &jsonwebtoken::EncodingKey::from_rsa_pem(&std::fs::read(&private).unwrap()).unwrap(),
    )
    .unwrap();
    let refused = server
        .send(Method::GET, "/tools", Some(&assertion), None)
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    server.stop().await;

    // Signing with a shared secret, the gateway has nothing the server could verify.
    let db = TestDb::new(backend).await;
    let hs256 = TestServer::start(&db, &[("SSRF_ALLOW_LOCALHOST", "true")]).await;
    let refused = hs256.admin(Method::POST, "/gateways", Some(body)).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert!(
        refused.body["message"]
            .as_str()
            .unwrap()
            .contains("JWT_ALGORITHM"),
        "{}",
        refused.body
    );
    hs256.stop().await;
}

crate::both_backends!(token_exchange);
