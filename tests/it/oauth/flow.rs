//! What the OAuth tests share: a spec-following client's steps (PKCE, the token endpoint) and
//! the user's browser through sign-in and consent, played by a cookie-keeping HTTP client.

use crate::common;

use base64::Engine;
use common::TestServer;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

pub(super) const REDIRECT: &str = "http://127.0.0.1/callback";

pub(super) fn location(reply: &reqwest::Response) -> String {
    reply
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_else(|| panic!("a redirect: {reply:?}"))
        .to_owned()
}

fn query_of(url: &str) -> Vec<(String, String)> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect()
}

pub(super) fn param(url: &str, name: &str) -> Option<String> {
    query_of(url)
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

/// Follows an authorization URL as the user's browser: signs in, allows (the consent page
/// names `client_name`), and answers where the gateway sent the browser back to (the client's
/// redirect URI with the code).
pub(super) async fn browse(
    server: &TestServer,
    browser: &reqwest::Client,
    authorize: &str,
    client_name: &str,
) -> String {
    let first = browser.get(authorize).send().await.unwrap();
    if first.status() == StatusCode::SEE_OTHER && location(&first).starts_with("/admin/login") {
        let login = format!("{}{}", server.base, location(&first));
        let page = browser
            .get(&login)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let csrf = crate::console::field(&page, "csrf");
        let next = crate::console::field(&page, "next").replace("&amp;", "&");
        let signed = browser
            .post(format!("{}/admin/login", server.base))
            .form(&[
                ("csrf", csrf.as_str()),
                ("email", "admin@example.com"),
                ("password", "admin-password-for-tests"),
                ("next", next.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(signed.status(), StatusCode::SEE_OTHER);
        assert!(
            location(&signed).starts_with("/admin/oauth/authorize?"),
            "back to the request"
        );
    }
    let page = browser.get(authorize).send().await.unwrap();
    if page.status() == StatusCode::SEE_OTHER {
        // Consented before: straight back with a code.
        return location(&page);
    }
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains(&format!("Connect {client_name}?")), "{html}");
    let hidden = |name: &str| {
        let marker = format!("name=\"{name}\" value=\"");
        html.find(&marker)
            .map(|start| {
                html[start + marker.len()..]
                    .split('"')
                    .next()
                    .unwrap()
                    .replace("&amp;", "&")
                    .replace("&#x2F;", "/")
            })
            .unwrap_or_default()
    };
    let mut form: Vec<(String, String)> = [
        "csrf",
        "response_type",
        "client_id",
        "redirect_uri",
        "code_challenge",
        "code_challenge_method",
        "state",
        "resource",
        "scope",
    ]
    .iter()
    .map(|name| (name.to_string(), hidden(name)))
    .collect();
    form.push(("decision".into(), "allow".into()));
    let allowed = browser
        .post(format!("{}/admin/oauth/authorize", server.base))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), StatusCode::SEE_OTHER);
    location(&allowed)
}

pub(super) fn pkce() -> (String, String) {
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

pub(super) async fn token(server: &TestServer, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let reply = reqwest::Client::new()
        .post(format!("{}/oauth/token", server.base))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = reply.status();
    (status, reply.json().await.unwrap_or(Value::Null))
}
