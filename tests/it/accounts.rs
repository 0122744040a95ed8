//! The console's account page and user actions, over plain HTTP against the real server, on
//! SQLite and PostgreSQL: changing your own password (errors at their fields; other sessions
//! end, this one continues), and an admin disabling, enabling, unlocking, resetting and
//! deleting a user (deletion only with the email typed again) — each the REST API's operation,
//! refused without the form's CSRF token or the permission, and in the audit trail.

#![allow(
    clippy::disallowed_methods,
    reason = "tests are the gateway's clients, with clients of their own"
)]

use crate::common;

use common::{Backend, TestDb, TestServer, USER_PASSWORD, create_user};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::console::{browser_like, field, page, sign_in};

const ADMIN_PASSWORD: &str = "admin-password-for-tests";
const NEW_ADMIN_PASSWORD: &str = "a brand new passphrase 42";

async fn post(
    client: &reqwest::Client,
    server: &TestServer,
    path: &str,
    form: &[(&str, &str)],
) -> (StatusCode, String) {
    let response = client
        .post(format!("{}{path}", server.base))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.text().await.unwrap())
}

async fn login(server: &TestServer, email: &str, password: &str) -> StatusCode {
    common::login(server, email, password).await.status
}

/// A fresh sign-in token.
async fn session(server: &TestServer, email: &str, password: &str) -> String {
    let reply = common::login(server, email, password).await;
    reply.expect(StatusCode::OK)["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn user(server: &TestServer, email: &str) -> Value {
    let reply = server
        .admin(Method::GET, &format!("/users/{email}"), None)
        .await;
    reply.body
}

async fn own_password(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[]).await;
    // Another session of the same account, made before the change.
    let other = session(&server, "admin@example.com", ADMIN_PASSWORD).await;

    let client = browser_like();
    sign_in(&server, &client, "admin@example.com", ADMIN_PASSWORD).await;
    let html = page(&client, &server, "/admin/account").await;
    assert!(html.contains("Change your password"), "{html}");
    assert!(
        html.contains(r#"href="/admin/account""#),
        "the header links the page"
    );
    let token = field(&html, "csrf");

    let (status, html) = post(
        &client,
        &server,
        "/admin/account",
        &[
            ("csrf", &token),
            ("current_password", ADMIN_PASSWORD),
            ("new_password", NEW_ADMIN_PASSWORD),
            ("confirm_password", "something else entirely"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains(r#"id="confirm-password-error""#), "{html}");
    assert!(html.contains("does not match the new password"));

    let (status, html) = post(
        &client,
        &server,
        "/admin/account",
        &[
            ("csrf", &token),
            ("current_password", "not the password at all"),
            ("new_password", NEW_ADMIN_PASSWORD),
            ("confirm_password", NEW_ADMIN_PASSWORD),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains(r#"id="current-password-error""#), "{html}");

    let (status, html) = post(
        &client,
        &server,
        "/admin/account",
        &[
            ("csrf", &token),
            ("current_password", ADMIN_PASSWORD),
            ("new_password", "short"),
            ("confirm_password", "short"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains(r#"id="new-password-error""#), "{html}");

    let (status, _) = post(
        &client,
        &server,
        "/admin/account",
        &[
            ("current_password", ADMIN_PASSWORD),
            ("new_password", NEW_ADMIN_PASSWORD),
            ("confirm_password", NEW_ADMIN_PASSWORD),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no CSRF token, no change");
    assert_eq!(
        login(&server, "admin@example.com", ADMIN_PASSWORD).await,
        StatusCode::OK
    );

    let (status, _) = post(
        &client,
        &server,
        "/admin/account",
        &[
            ("csrf", &token),
            ("current_password", ADMIN_PASSWORD),
            ("new_password", NEW_ADMIN_PASSWORD),
            ("confirm_password", NEW_ADMIN_PASSWORD),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // This session continues (signed in again); the other one ended; the new password works.
    let html = page(&client, &server, "/admin/account").await;
    assert!(
        html.contains("your other sessions are signed out"),
        "{html}"
    );
    let reply = server
        .send(Method::GET, "/rbac/my/permissions", Some(&other), None)
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    assert_eq!(
        login(&server, "admin@example.com", ADMIN_PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
    // The test's own admin token was issued before the change: it ended too.
    let reply = server
        .admin(Method::GET, "/rbac/my/permissions", None)
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let fresh = session(&server, "admin@example.com", NEW_ADMIN_PASSWORD).await;
    let trail = server
        .send(
            Method::GET,
            "/audit?action=users.change_password",
            Some(&fresh),
            None,
        )
        .await;
    assert_eq!(
        trail.expect(StatusCode::OK)["entries"][0]["actor"],
        "admin@example.com"
    );
    server.stop().await;
}

async fn user_actions(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[("MAX_FAILED_LOGIN_ATTEMPTS", "2")]).await;
    let email = "member@example.com";
    create_user(&server, email, "developer").await;
    let client = browser_like();
    sign_in(&server, &client, "admin@example.com", ADMIN_PASSWORD).await;
    let html = page(&client, &server, "/admin/users").await;
    assert!(
        html.contains(&format!("/admin/users/{email}/state")),
        "{html}"
    );
    assert!(
        html.contains("Your account"),
        "your own row links your account page"
    );
    let token = field(&html, "csrf");

    // Disable, then enable.
    let (status, _) = post(
        &client,
        &server,
        &format!("/admin/users/{email}/state"),
        &[("csrf", &token), ("state", "disable")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(user(&server, email).await["is_active"], false);
    assert_eq!(
        login(&server, email, USER_PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = post(
        &client,
        &server,
        &format!("/admin/users/{email}/state"),
        &[("csrf", &token), ("state", "enable")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(user(&server, email).await["is_active"], true);

    // Locked by failed sign-ins, then unlocked.
    for _ in 0..2 {
        login(&server, email, "wrong password, twice").await;
    }
    assert!(user(&server, email).await["locked_until"].is_string());
    let html = page(&client, &server, "/admin/users").await;
    assert!(
        html.contains(&format!("/admin/users/{email}/unlock")),
        "{html}"
    );
    let (status, _) = post(
        &client,
        &server,
        &format!("/admin/users/{email}/unlock"),
        &[("csrf", &token)],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(user(&server, email).await["locked_until"].is_null());
    assert_eq!(login(&server, email, USER_PASSWORD).await, StatusCode::OK);

    // A reset: the policy applies, then the new password works.
    let (status, html) = post(
        &client,
        &server,
        &format!("/admin/users/{email}/password"),
        &[("csrf", &token), ("password", "short")],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("password"), "{html}");
    let (status, _) = post(
        &client,
        &server,
        &format!("/admin/users/{email}/password"),
        &[("csrf", &token), ("password", "the reset passphrase 77")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        login(&server, email, "the reset passphrase 77").await,
        StatusCode::OK
    );

    // A developer may not act on users.
    let developer = browser_like();
    sign_in(&server, &developer, email, "the reset passphrase 77").await;
    let their_csrf = field(&page(&developer, &server, "/admin/account").await, "csrf");
    let (status, _) = post(
        &developer,
        &server,
        "/admin/users/admin@example.com/state",
        &[("csrf", &their_csrf), ("state", "disable")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(user(&server, "admin@example.com").await["is_active"], true);

    // Delete: only with the email typed again.
    let (status, html) = post(
        &client,
        &server,
        &format!("/admin/users/{email}/delete"),
        &[("csrf", &token), ("confirm", "someone-else@example.com")],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains(&format!("type {email} to confirm")), "{html}");
    assert_eq!(user(&server, email).await["email"], email);
    let (status, _) = post(
        &client,
        &server,
        &format!("/admin/users/{email}/delete"),
        &[("csrf", &token), ("confirm", email)],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let reply = server
        .admin(Method::GET, &format!("/users/{email}"), None)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let (status, _) = post(
        &client,
        &server,
        &format!("/admin/users/{email}/frobnicate"),
        &[("csrf", &token)],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Each is in the audit trail, by the admin.
    let trail = server
        .admin(
            Method::GET,
            &format!("/audit?target={email}&actor=admin@example.com"),
            None,
        )
        .await;
    let actions: Vec<String> = trail.expect(StatusCode::OK)["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["action"].as_str().unwrap(),
                e["detail"].as_str().unwrap_or("")
            )
        })
        .collect();
    for expected in [
        "users.delete ",
        "users.update password reset",
        "users.update unlocked",
        "users.create ",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected}: {actions:?}"
        );
    }
    server.stop().await;
}

both_backends!(own_password, user_actions);
