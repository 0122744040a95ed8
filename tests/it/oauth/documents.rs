//! Client ID Metadata Documents against the real server, with dynamic registration switched
//! off (and CORS on the endpoints a browser-based client reaches): a client whose id is the URL of its metadata document (served on loopback by the REST
//! fixture) is fetched, shown on the consent page with where it is published, and gets its
//! code and token; a document naming another id, carrying a secret, registering a redirect off
//! loopback or missing, and a URL the egress policy forbids, are refused with the reason and
//! nothing is sent to a redirect URI. The grant then ends with the user's password change —
//! on SQLite and PostgreSQL.

use crate::common;

use common::fixture::RestFixture;
use common::mcp::McpClient;
use common::{Backend, TestDb, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::flow::{REDIRECT, browse, param, pkce, token};

fn authorize_url(server: &TestServer, client_id: &str, challenge: &str) -> String {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
            ("state", "doc-state"),
            ("resource", &format!("{}/mcp", server.base)),
        ])
        .finish();
    format!("{}/admin/oauth/authorize?{query}", server.base)
}

async fn client_id_metadata_documents(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[("OAUTH_DYNAMIC_REGISTRATION", "false")]).await;
    let fixture = RestFixture::start().await;
    let metadata: Value = server
        .client
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            server.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["client_id_metadata_document_supported"], true);
    assert!(
        metadata.get("registration_endpoint").is_none(),
        "{metadata}"
    );

    // A browser-based client may read the metadata and reach the token endpoint cross-origin
    // (never with credentials).
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let read = server
            .client
            .get(format!("{}{path}", server.base))
            .header("origin", "https://app.example")
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), StatusCode::OK, "{path}");
        assert_eq!(read.headers()["access-control-allow-origin"], "*", "{path}");
    }
    let preflight = server
        .client
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/oauth/token", server.base),
        )
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{preflight:?}");
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    assert!(
        preflight
            .headers()
            .get("access-control-allow-credentials")
            .is_none(),
        "no credentials"
    );

    // The document's URL is the client id: fetched, shown with its host, a code, a token.
    let client_id = format!("{}/client/good", fixture.base);
    let browser = crate::console::browser_like();
    let (verifier, challenge) = pkce();
    let back = browse(
        &server,
        &browser,
        &authorize_url(&server, &client_id, &challenge),
        "Doc client (from 127.0.0.1)",
    )
    .await;
    assert!(back.starts_with(REDIRECT), "{back}");
    let code = param(&back, "code").expect("a code");
    let (status, tokens) = token(
        &server,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("code", &code),
            ("code_verifier", &verifier),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let mut mcp = McpClient::new(&server, "/mcp");
    mcp.token = tokens["access_token"].as_str().unwrap().to_owned();
    let listed = mcp.modern("tools/list", json!({})).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);

    // Documents that cannot be trusted, and a URL the egress policy forbids: the user reads
    // why; the browser is sent nowhere.
    for (client_id, why) in [
        (
            format!("{}/client/other-id", fixture.base),
            "names another client_id",
        ),
        (format!("{}/client/secret", fixture.base), "client secret"),
        (
            format!("{}/client/evil-redirect", fixture.base),
            "only on the loopback interface",
        ),
        (format!("{}/client/missing", fixture.base), "answered 404"),
        (
            "https://169.254.169.254/latest/client.json".to_owned(),
            "may not fetch",
        ),
        ("http://app.example/client.json".to_owned(), "over HTTPS"),
    ] {
        let refused = browser
            .get(authorize_url(&server, &client_id, &challenge))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{client_id}");
        let page = refused.text().await.unwrap();
        assert!(
            page.contains(why),
            "{client_id}: expected {why:?} in {page}"
        );
    }
    // A code cannot be exchanged by a client the gateway never fetched.
    let (status, refused) = token(
        &server,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &format!("{}/client/secret", fixture.base)),
            ("code", "nope"),
            ("code_verifier", &verifier),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused}");
    assert_eq!(refused["error"], "invalid_client", "{refused}");

    // A grant ends with a password change, as a sign-in does: its access token at once, its
    // refresh token when next used.
    let changed = server
        .admin(
            reqwest::Method::PUT,
            "/users/admin@example.com",
            Some(json!({"password": "another-password-for-tests"})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    let ended = mcp.modern("tools/list", json!({})).await;
    assert_eq!(ended.status, StatusCode::UNAUTHORIZED, "{}", ended.body);
    let (status, refused) = token(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["error"], "invalid_grant", "{refused}");
    assert!(
        refused["error_description"]
            .as_str()
            .is_some_and(|why| why.contains("password changed")),
        "{refused}"
    );

    // The hourly purge drops spent codes and ended grants (here: everything up to tomorrow).
    let tomorrow = (chrono::Utc::now() + chrono::TimeDelta::days(1)).naive_utc();
    let purge = || mcpgate::db::oauth::PurgeOAuth {
        codes_before: tomorrow,
        grants_before: tomorrow,
    };
    let purged = server.running().db().run(purge()).await.unwrap();
    assert!(purged >= 2, "the code and the grant: {purged}");
    assert_eq!(server.running().db().run(purge()).await.unwrap(), 0);
    server.stop().await;
    fixture.stop().await;
}

both_backends!(client_id_metadata_documents);
