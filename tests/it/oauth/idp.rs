//! An external OpenID Provider trusted by `OIDC_ISSUERS`: `oidc-provider` (npm, a certified
//! implementation) on loopback, started after the gateway (keys are fetched when first
//! needed). Its users' access tokens, got by the code flow the test drives as the browser, are
//! accepted for a configured audience everywhere and for one MCP endpoint's URL there only;
//! an unknown email gets an account (just-in-time) whose teams and roles follow its groups.
//! Refused, each with its reason and no account made: expired, not valid yet, an unverified,
//! unsaid or missing email (signed with the provider's key), another audience or another
//! service's MCP endpoint, the admin's email (the provider may not sign admins in), an unknown
//! issuer, `alg: none`, a shared-secret algorithm with the provider's key id, a key the
//! provider stopped publishing; a rotated signing key is picked up.

use crate::common;

use std::process::Command;

use base64::Engine;
use common::mcp::McpClient;
use common::sdk::{Upstream, deps_dir, free_port, setup, spawn_announcing};
use common::{Backend, TestDb, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;

const AUDIENCE: &str = "urn:mcpgate:test";
const REDIRECT: &str = "http://127.0.0.1:9/idp-callback";
const SECRET: &str = "test-app-secret-0123456789";

/// The provider on `port`, publishing keys `kids` (the first signs), kept in `keys`, its
/// users in `groups` (login -> groups); its clients are the test's own and, given the
/// gateway's callback, the gateway's console.
pub(super) fn start_idp(
    port: u16,
    keys: &std::path::Path,
    kids: &str,
    groups: &Value,
    console_callback: Option<&str>,
) -> Upstream {
    setup();
    let mut clients = vec![json!({
        "client_id": "test-app",
        "client_secret": SECRET,
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_post",
    })];
    if let Some(callback) = console_callback {
        clients.push(json!({
            "client_id": CONSOLE_CLIENT,
            "client_secret": SECRET,
            "redirect_uris": [callback],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_post",
        }));
    }
    start_idp_with(port, keys, kids, groups, clients, &[])
}

/// The provider with these `clients` and extra `env` (see `tests/interop/node/idp.mjs`).
pub(super) fn start_idp_with(
    port: u16,
    keys: &std::path::Path,
    kids: &str,
    groups: &Value,
    clients: Vec<Value>,
    env: &[(&str, &str)],
) -> Upstream {
    setup();
    let mut command = Command::new("node");
    command
        .arg(format!("{}/node/idp.mjs", deps_dir()))
        .env("PORT", port.to_string())
        .env("KEY_DIR", keys)
        .env("KIDS", kids)
        .env("CLIENTS", Value::Array(clients).to_string())
        .env("GROUPS", groups.to_string())
        .envs(env.iter().copied());
    spawn_announcing(command)
}

/// The gateway's client id at the provider (console sign-in).
pub(super) const CONSOLE_CLIENT: &str = "mcpgate-console";

fn absolute(base: &str, location: &str) -> String {
    url::Url::parse(base)
        .and_then(|base| base.join(location))
        .unwrap()
        .to_string()
}

/// Goes through the provider's pages from `start` as `login` (signs in, consents) until the
/// provider sends the browser to a URL starting with `stop_at`; answers that URL.
pub(super) async fn through_provider(
    browser: &reqwest::Client,
    start: &str,
    login: &str,
    stop_at: &str,
) -> String {
    let mut at = start.to_owned();
    let mut reply = browser.get(&at).send().await.unwrap();
    for _ in 0..12 {
        if reply.status().is_redirection() {
            let next = absolute(&at, reply.headers()["location"].to_str().unwrap());
            if next.starts_with(stop_at) {
                return next;
            }
            reply = browser.get(&next).send().await.unwrap();
            at = next;
            continue;
        }
        assert_eq!(reply.status(), StatusCode::OK, "the provider's page");
        let html = reply.text().await.unwrap();
        let action = html
            .split("action=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("a form: {html}"))
            .replace("&amp;", "&");
        let form: Vec<(&str, &str)> = if html.contains("name=\"login\"") {
            vec![("prompt", "login"), ("login", login), ("password", "any")]
        } else {
            vec![("prompt", "consent")]
        };
        let target = absolute(&at, &action);
        reply = browser.post(&target).form(&form).send().await.unwrap();
        at = target;
    }
    panic!("the provider never sent the browser to {stop_at}")
}

/// An access token of the provider for `login`, asked for `resource`: the code flow with
/// PKCE, the test playing the browser on the provider's sign-in and consent pages.
async fn idp_token(issuer: &str, login: &str, resource: &str) -> String {
    let browser = crate::console::browser_like();
    let (verifier, challenge) = super::flow::pkce();
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("client_id", "test-app"),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("scope", "openid email"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("state", "s1"),
            ("resource", resource),
        ])
        .finish();
    let back = through_provider(&browser, &format!("{issuer}/auth?{query}"), login, REDIRECT).await;
    let code = url::Url::parse(&back)
        .unwrap()
        .query_pairs()
        .find(|(key, _)| key == "code")
        .map(|(_, value)| value.into_owned());
    let code = code.expect("the provider sent the browser back with a code");
    let tokens: Value = browser
        .post(format!("{issuer}/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier.as_str()),
            ("client_id", "test-app"),
            ("client_secret", SECRET),
            ("resource", resource),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tokens["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{tokens}"))
        .to_owned();
    assert_eq!(token.split('.').count(), 3, "a JWT access token: {tokens}");
    token
}

/// A token with this header and these claims, signed with HS256 under `secret`.
fn forged(header: Value, claims: &Value, secret: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let part = |value: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string().as_bytes())
    };
    let signing_input = format!("{}.{}", part(&header), part(claims));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(signing_input.as_bytes());
    let signature =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// The reason in a refusal (REST or MCP).
fn reason(reply: &common::Reply) -> String {
    reply.body.to_string()
}

async fn external_provider_tokens(backend: Backend) {
    let db = TestDb::new(backend).await;
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    // The gateway's public origin is configured, so a token for one of its MCP endpoint URLs
    // is accepted there (and a token for another service's is not).
    let gateway_port = free_port().to_string();
    let providers = json!([{
        "issuer": issuer,
        "name": "Test IdP",
        "audiences": [AUDIENCE, format!("http://127.0.0.1:{gateway_port}")],
        "groups_claim": "groups",
        "teams": {"eng": "engineering"},
        "roles": {"leads": "team_admin"},
        "provision": true,
    }]);
    let server = TestServer::start(
        &db,
        &[
            ("OIDC_ISSUERS", &providers.to_string()),
            ("OIDC_JWKS_MIN_REFRESH_SECONDS", "0.1"),
            ("PORT", &gateway_port),
        ],
    )
    .await;
    let team = server
        .admin(Method::POST, "/teams", Some(json!({"name": "Engineering"})))
        .await;
    assert_eq!(team.status, StatusCode::CREATED, "{}", team.body);
    let mut servers = Vec::new();
    for name in ["Alpha", "Beta"] {
        let created = server
            .admin(Method::POST, "/servers", Some(json!({"name": name})))
            .await;
        servers.push(
            created.expect(StatusCode::CREATED)["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let endpoint_a = format!("{}/servers/{}/mcp", server.base, servers[0]);

    // The resource metadata names the provider first, then the built-in server.
    let metadata: Value = server
        .client
        .get(format!(
            "{}/.well-known/oauth-protected-resource/mcp",
            server.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        metadata["authorization_servers"],
        json!([issuer, server.base]),
        "{metadata}"
    );

    // The provider starts after the gateway: its keys are fetched when a token needs them.
    let keys = tempfile::tempdir().unwrap();
    let idp = start_idp(
        port,
        keys.path(),
        "k1",
        &json!({"dev@idp.example": ["eng", "leads"]}),
        None,
    );

    // A token for the gateway's audience: the REST API and every MCP endpoint; the unknown
    // email gets an account whose teams follow its groups ("eng" -> engineering).
    let general = idp_token(&issuer, "dev@idp.example", AUDIENCE).await;
    let tools = server
        .send(Method::GET, "/tools", Some(&general), None)
        .await;
    assert_eq!(tools.status, StatusCode::OK, "{}", tools.body);
    let me = server
        .send(Method::GET, "/users/dev@idp.example", Some(&general), None)
        .await;
    assert_eq!(me.status, StatusCode::OK, "yourself: {}", me.body);
    assert_eq!(me.body["email"], "dev@idp.example", "{}", me.body);
    let account = server
        .admin(Method::GET, "/users/dev@idp.example", None)
        .await;
    assert_eq!(account.status, StatusCode::OK, "{}", account.body);
    let teams = server
        .send(Method::GET, "/teams", Some(&general), None)
        .await;
    assert!(
        teams.body.to_string().contains("\"engineering\""),
        "a member of the mapped team: {}",
        teams.body
    );
    // The provider may not sign in the gateway's platform admin (allow_admins is off), even
    // with the admin's email.
    let as_admin = idp_token(&issuer, "admin@example.com", AUDIENCE).await;
    let refused = server
        .send(Method::GET, "/tools", Some(&as_admin), None)
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(
        reason(&refused).contains("allow_admins"),
        "{}",
        refused.body
    );
    // ...and whose roles follow them too ("leads" -> team_admin, beside the default role).
    let permissions = |token: String| {
        let server = &server;
        async move {
            let mine = server
                .send(Method::GET, "/rbac/my/permissions", Some(&token), None)
                .await;
            assert_eq!(mine.status, StatusCode::OK, "{}", mine.body);
            mine.body["permissions"].to_string()
        }
    };
    assert!(
        permissions(general.clone())
            .await
            .contains("teams.manage_members")
    );
    let mut anywhere = McpClient::new(&server, &format!("/servers/{}/mcp", servers[1]));
    anywhere.token = general.clone();
    let listed = anywhere.modern("tools/list", json!({})).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);

    // A token for endpoint A's URL works there, not on B, not on the REST API.
    let bound = idp_token(&issuer, "dev@idp.example", &endpoint_a).await;
    let mut on_a = McpClient::new(&server, &format!("/servers/{}/mcp", servers[0]));
    on_a.token = bound.clone();
    let listed = on_a.modern("tools/list", json!({})).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let mut on_b = McpClient::new(&server, &format!("/servers/{}/mcp", servers[1]));
    on_b.token = bound.clone();
    let refused = on_b.modern("tools/list", json!({})).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    assert!(reason(&refused).contains(&endpoint_a), "{}", refused.body);
    let rest = server.send(Method::GET, "/tools", Some(&bound), None).await;
    assert_eq!(rest.status, StatusCode::FORBIDDEN, "{}", rest.body);

    // Refusals name what is wrong, and make no account.
    let elsewhere = idp_token(
        &issuer,
        "mallory@idp.example",
        "https://elsewhere.example/api",
    )
    .await;
    // Another service's MCP endpoint: a token a provider gave that service is not for us.
    let other_service = idp_token(
        &issuer,
        "mallory@idp.example",
        "https://other-service.example/mcp",
    )
    .await;
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"iss": issuer, "sub": "mallory@idp.example", "email": "mallory@idp.example", "email_verified": true,
        "aud": AUDIENCE, "iat": now, "exp": now + 600});
    let mut unknown_issuer = claims.clone();
    unknown_issuer["iss"] = json!("https://unknown-issuer.example");
    let part = |value: Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string().as_bytes())
    };
    let unsigned = format!(
        "{}.{}.",
        part(json!({"alg": "none", "kid": "k1"})),
        part(claims.clone())
    );
    let public_key = std::fs::read(keys.path().join("k1.json")).unwrap();
    let confused = forged(
        json!({"alg": "HS256", "kid": "k1", "typ": "JWT"}),
        &claims,
        &public_key,
    );
    // Signed with the provider's own key, yet not acceptable: expired, not valid yet, an
    // unverified email, no email.
    let signed = |claims: Value| {
        let mut command = Command::new("node");
        command
            .arg(format!("{}/node/sign-jwt.mjs", deps_dir()))
            .arg(keys.path().join("k1.json"))
            .arg(claims.to_string());
        let output = command.output().expect("node signs");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let with = |changes: Value| {
        let mut claims = claims.clone();
        for (key, value) in changes.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(key);
            } else {
                claims[key] = value.clone();
            }
        }
        signed(claims)
    };
    let expired = with(json!({"iat": now - 7200, "exp": now - 3600}));
    let early = with(json!({"nbf": now + 3600}));
    let unverified = with(json!({"email_verified": false}));
    let unsaid = with(json!({"email_verified": null}));
    let no_email = with(json!({"email": null}));
    for (token, why) in [
        (expired.as_str(), "expired"),
        (early.as_str(), "not valid yet"),
        (unverified.as_str(), "not verified"),
        (unsaid.as_str(), "does not say"),
        (no_email.as_str(), "no email"),
        (elsewhere.as_str(), "audience"),
        (other_service.as_str(), "audience"),
        (
            &forged(json!({"alg": "HS256"}), &unknown_issuer, b"whatever"),
            "unknown-issuer.example\\\" are not accepted",
        ),
        (unsigned.as_str(), "algorithm"),
        (confused.as_str(), "HS256"),
    ] {
        let refused = server.send(Method::GET, "/tools", Some(token), None).await;
        assert_eq!(
            refused.status,
            StatusCode::UNAUTHORIZED,
            "{why}: {}",
            refused.body
        );
        assert!(reason(&refused).contains(why), "{why}: {}", refused.body);
        let mut mcp = McpClient::new(&server, "/mcp");
        mcp.token = token.to_owned();
        let refused = mcp.modern("tools/list", json!({})).await;
        assert_eq!(
            refused.status,
            StatusCode::UNAUTHORIZED,
            "{why}: {}",
            refused.body
        );
        assert!(
            refused
                .headers
                .get("www-authenticate")
                .is_some_and(|value| value.to_str().unwrap().contains("invalid_token")),
            "{why}: {:?}",
            refused.headers
        );
    }
    let nobody = server
        .admin(Method::GET, "/users/mallory@idp.example", None)
        .await;
    assert_eq!(nobody.status, StatusCode::NOT_FOUND, "{}", nobody.body);

    // Rotation: the provider now signs with k2 and still publishes k1. A k2 token names a key
    // the gateway has not seen: it fetches the keys again and accepts it.
    let spare = idp_token(&issuer, "dev@idp.example", AUDIENCE).await;
    drop(idp);
    let idp = start_idp(
        port,
        keys.path(),
        "k2,k1",
        &json!({"dev@idp.example": ["eng"]}),
        None,
    );
    let rotated = idp_token(&issuer, "dev@idp.example", AUDIENCE).await;
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(rotated.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], "k2", "{header}");
    let accepted = server
        .send(Method::GET, "/tools", Some(&rotated), None)
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.body);
    // The user left "leads" meanwhile: the role it gave is gone, the default role stays.
    let now_permissions = permissions(rotated.clone()).await;
    assert!(
        !now_permissions.contains("teams.manage_members"),
        "{now_permissions}"
    );
    assert!(
        now_permissions.contains("tools.create"),
        "{now_permissions}"
    );
    // k1 withdrawn at the provider: once the gateway fetches the keys again (hourly, or now
    // when an admin asks), a k1 token is refused.
    drop(idp);
    let _idp = start_idp(port, keys.path(), "k2", &json!({}), None);
    let status = server
        .admin(Method::GET, "/admin/identity-providers", None)
        .await;
    assert_eq!(
        status.body[0]["key_ids"],
        json!(["k1", "k2"]),
        "{}",
        status.body
    );
    let status = server
        .admin(Method::POST, "/admin/identity-providers/refresh", None)
        .await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.body);
    assert_eq!(status.body[0]["key_ids"], json!(["k2"]), "{}", status.body);
    assert_eq!(status.body[0]["error"], Value::Null, "{}", status.body);
    let denied = server
        .send(
            Method::POST,
            "/admin/identity-providers/refresh",
            Some(&general),
            None,
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{}", denied.body);
    let retired = server.send(Method::GET, "/tools", Some(&spare), None).await;
    assert_eq!(retired.status, StatusCode::UNAUTHORIZED, "{}", retired.body);
    assert!(
        reason(&retired).contains("no longer) published"),
        "{}",
        retired.body
    );
    server.stop().await;
}

both_backends!(external_provider_tokens);
