//! The built-in OAuth 2.1 authorization server against the real server, on SQLite and
//! PostgreSQL, the way a spec-following MCP client uses it: the 401's resource metadata, the
//! authorization server's metadata, dynamic registration, the browser through sign-in and
//! consent (played by a cookie-keeping HTTP client), the code exchanged with its PKCE verifier,
//! MCP calls with the token — only on the endpoint it is for — and the refusals: a wrong
//! verifier, a replayed code (its tokens revoked), a reused refresh token (its grant revoked),
//! an unregistered redirect URI, an unknown resource.

#![allow(
    clippy::disallowed_methods,
    reason = "tests are the gateway's clients, with clients of their own"
)]

use crate::common;

mod clients;
mod documents;
mod flow;
mod idp;
mod sso;
mod upstream;

use common::mcp::McpClient;
use common::{Backend, TestDb, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use self::flow::{REDIRECT, browse, location, param, pkce, token};

async fn the_code_flow(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[]).await;
    let http = reqwest::Client::new();
    let desk = server
        .admin(Method::POST, "/servers", Some(json!({"name": "Desk"})))
        .await;
    let desk = desk.expect(StatusCode::CREATED)["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Discovery, as the client does it: the 401 names the resource metadata, which names the
    // authorization server, whose metadata names its endpoints.
    let challenge = http
        .post(format!("{}/mcp", server.base))
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(challenge.status(), StatusCode::UNAUTHORIZED);
    let www = challenge.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    let metadata_url = www
        .split("resource_metadata=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("{www}"))
        .to_owned();
    let resource: Value = http
        .get(&metadata_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let endpoint = format!("{}/mcp", server.base);
    assert_eq!(resource["resource"], endpoint.as_str());
    let issuer = resource["authorization_servers"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let as_metadata: Value = http
        .get(format!("{issuer}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(as_metadata["issuer"], issuer.as_str());
    assert_eq!(
        as_metadata["code_challenge_methods_supported"],
        json!(["S256"])
    );
    let authorization_endpoint = as_metadata["authorization_endpoint"]
        .as_str()
        .unwrap()
        .to_owned();

    // Registration: a redirect that is neither HTTPS nor loopback is refused, with the reason.
    let register = |body: Value| {
        let http = http.clone();
        let url = as_metadata["registration_endpoint"]
            .as_str()
            .unwrap()
            .to_owned();
        async move {
            let reply = http.post(url).json(&body).send().await.unwrap();
            (reply.status(), reply.json::<Value>().await.unwrap())
        }
    };
    let not_json = http
        .post(as_metadata["registration_endpoint"].as_str().unwrap())
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    let not_json: Value = not_json.json().await.unwrap();
    assert_eq!(not_json["error"], "invalid_client_metadata", "{not_json}");
    let (status, refused) = register(json!({"redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "client_secret_basic"}))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        refused["error_description"]
            .as_str()
            .unwrap()
            .contains("public"),
        "{refused}"
    );
    let (status, refused) = register(json!({"redirect_uris": ["http://evil.example/cb"]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(refused["error"], "invalid_redirect_uri", "{refused}");
    let (status, client) = register(
        json!({"client_name": "Test client", "redirect_uris": [REDIRECT],
                        "token_endpoint_auth_method": "none"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{client}");
    let client_id = client["client_id"].as_str().unwrap().to_owned();

    // Authorization: sign in, consent, back to the client with a code and the state.
    let browser = crate::console::browser_like();
    let (verifier, challenge) = pkce();
    let authorize = |challenge: &str, resource: &str, redirect: &str| {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("response_type", "code"),
                ("client_id", client_id.as_str()),
                ("redirect_uri", redirect),
                ("code_challenge", challenge),
                ("code_challenge_method", "S256"),
                ("state", "xyz-state"),
                ("resource", resource),
            ])
            .finish();
        format!("{authorization_endpoint}?{query}")
    };
    let back = browse(
        &server,
        &browser,
        &authorize(&challenge, &endpoint, REDIRECT),
        "Test client",
    )
    .await;
    assert!(back.starts_with(REDIRECT), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some("xyz-state"));
    assert_eq!(param(&back, "iss").as_deref(), Some(issuer.as_str()));
    let code = param(&back, "code").expect("a code");

    // Malformed token requests say what is missing.
    for (form, error) in [
        (vec![("grant_type", "authorization_code")], "invalid_client"),
        (vec![("client_id", client_id.as_str())], "invalid_request"),
        (
            vec![
                ("grant_type", "password"),
                ("client_id", client_id.as_str()),
            ],
            "unsupported_grant_type",
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("client_id", client_id.as_str()),
            ],
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", "refresh_token"),
                ("client_id", client_id.as_str()),
                ("refresh_token", "nope"),
            ],
            "invalid_grant",
        ),
    ] {
        let (status, body) = token(&server, &form).await;
        assert!(status.is_client_error(), "{form:?}: {status}");
        assert_eq!(body["error"], error, "{form:?}: {body}");
        assert!(body["error_description"].is_string(), "{body}");
    }
    let garbled = reqwest::Client::new()
        .post(format!("{}/oauth/token", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=a&grant_type=b")
        .send()
        .await
        .unwrap();
    assert_eq!(garbled.status(), StatusCode::BAD_REQUEST, "a field twice");
    let garbled: Value = garbled.json().await.unwrap();
    assert_eq!(garbled["error"], "invalid_request", "{garbled}");

    // A wrong verifier is refused (and spends the code).
    let (wrong_verifier, _) = pkce();
    let (status, body) = token(
        &server,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", &client_id),
            ("code_verifier", &wrong_verifier),
            ("resource", &endpoint),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        body["error_description"].as_str().unwrap().contains("PKCE"),
        "{body}"
    );

    // Consent is remembered: the next authorization comes straight back.
    let back = browse(
        &server,
        &browser,
        &authorize(&challenge, &endpoint, "http://127.0.0.1:47001/callback"),
        "Test client",
    )
    .await;
    assert!(
        back.starts_with("http://127.0.0.1:47001/callback?"),
        "a loopback port may differ: {back}"
    );
    let code = param(&back, "code").unwrap();
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "http://127.0.0.1:47001/callback"),
        ("client_id", client_id.as_str()),
        ("code_verifier", verifier.as_str()),
        ("resource", endpoint.as_str()),
    ];
    let (status, tokens) = token(&server, &exchange).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();

    // The token works on its endpoint, and nowhere else.
    let mut client = McpClient::new(&server, "/mcp");
    client.token = access.clone();
    client
        .modern("tools/list", json!({}))
        .await
        .expect(StatusCode::OK);
    let mut elsewhere = McpClient::new(&server, &format!("/servers/{desk}/mcp"));
    elsewhere.token = access.clone();
    let refused = elsewhere.modern("tools/list", json!({})).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    assert!(
        refused.body.to_string().contains("issued for"),
        "{}",
        refused.body
    );
    let rest = server
        .send(Method::GET, "/tools", Some(&access), None)
        .await;
    assert_eq!(rest.status, StatusCode::FORBIDDEN, "{}", rest.body);

    // The code again: refused, and the tokens issued for it stop working.
    let (status, body) = token(&server, &exchange).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let revoked = client.modern("tools/list", json!({})).await;
    assert_eq!(revoked.status, StatusCode::UNAUTHORIZED, "{}", revoked.body);

    // A fresh grant; its refresh token rotates; the old one used again revokes the grant.
    let back = browse(
        &server,
        &browser,
        &authorize(&challenge, &endpoint, REDIRECT),
        "Test client",
    )
    .await;
    let code = param(&back, "code").unwrap();
    let (_, tokens) = token(
        &server,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", &client_id),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    let first_refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(first_refresh, refresh);
    let (status, rotated) = token(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &first_refresh),
            ("client_id", &client_id),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let rotated_access = rotated["access_token"].as_str().unwrap().to_owned();
    assert_ne!(rotated["refresh_token"], first_refresh.as_str());
    client.token = rotated_access;
    client
        .modern("tools/list", json!({}))
        .await
        .expect(StatusCode::OK);
    let (status, reused) = token(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &first_refresh),
            ("client_id", &client_id),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        reused["error_description"]
            .as_str()
            .unwrap()
            .contains("used before"),
        "{reused}"
    );
    let after_reuse = client.modern("tools/list", json!({})).await;
    assert_eq!(
        after_reuse.status,
        StatusCode::UNAUTHORIZED,
        "the grant is revoked"
    );
    let (_, newest) = token(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rotated["refresh_token"].as_str().unwrap()),
            ("client_id", &client_id),
        ],
    )
    .await;
    assert_eq!(
        newest["error"], "invalid_grant",
        "the whole family: {newest}"
    );

    // Refusals before any redirect: an unregistered redirect URI is shown, not followed.
    let stray = browser
        .get(authorize(
            &challenge,
            &endpoint,
            "https://attacker.example/cb",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(stray.status(), StatusCode::BAD_REQUEST);
    assert!(
        stray
            .text()
            .await
            .unwrap()
            .contains("is not one the client registered")
    );
    // After it: an endpoint that is not this gateway's goes back as invalid_target; no PKCE
    // goes back as invalid_request.
    let odd = browser
        .get(authorize(&challenge, "https://other.example/mcp", REDIRECT))
        .send()
        .await
        .unwrap();
    assert_eq!(
        param(&location(&odd), "error").as_deref(),
        Some("invalid_target")
    );
    let plain = browser
        .get(authorize(&challenge, &endpoint, REDIRECT).replace("S256", "plain"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        param(&location(&plain), "error").as_deref(),
        Some("invalid_request")
    );
    // A token for the virtual server works there.
    let desk_endpoint = format!("{}/servers/{desk}/mcp", server.base);
    let back = browse(
        &server,
        &browser,
        &authorize(&challenge, &desk_endpoint, REDIRECT),
        "Test client",
    )
    .await;
    let code = param(&back, "code").unwrap();
    let (status, desk_tokens) = token(
        &server,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", &client_id),
            ("code_verifier", &verifier),
            ("resource", &desk_endpoint),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{desk_tokens}");
    elsewhere.token = desk_tokens["access_token"].as_str().unwrap().to_owned();
    elsewhere
        .modern("tools/list", json!({}))
        .await
        .expect(StatusCode::OK);

    // The user sees the app on their account page and disconnects it: its tokens stop.
    let page = browser
        .get(format!("{}/admin/account", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<td>Test client</td>") && page.contains(&desk_endpoint),
        "{page}"
    );
    let csrf = crate::console::field(&page, "csrf");
    let gone = browser
        .post(format!(
            "{}/admin/account/apps/{client_id}/disconnect",
            server.base
        ))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::SEE_OTHER);
    let refused = elsewhere.modern("tools/list", json!({})).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    // And is asked for consent again next time.
    let again = browser
        .get(authorize(&challenge, &endpoint, REDIRECT))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK, "the consent page again");

    // Registration is anonymous, so one address may register only so many clients an hour.
    let mut statuses = Vec::new();
    for _ in 0..mcpgate::service::oauth::REGISTRATIONS_PER_HOUR {
        let (status, body) = register(json!({"redirect_uris": [REDIRECT]})).await;
        statuses.push(status);
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert!(
                body["error_description"]
                    .as_str()
                    .is_some_and(|why| why.contains("in an hour")),
                "{body}"
            );
            break;
        }
    }
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    server.stop().await;
}

both_backends!(the_code_flow);
