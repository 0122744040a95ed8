//! The admin console against the real server: in Debian's headless Chromium (driven by
//! playwright-core, both installed by `tests/e2e/setup.sh`) sign in, watch the dashboard's
//! figures arrive live, create a REST tool (a schema that is not JSON is caught first), see it
//! listed, test-run it, create a virtual server with it, create a token for that server (shown
//! once, copied) and revoke it, create a user and a team with them in it, sign out — at 1280 px (and sign-in, dashboard and sign-out at
//! 390 px), with screenshots of each page in `tests/e2e/artifacts`. Over plain HTTP: forms without the CSRF token are refused, pages
//! need a session, and a non-admin sees only what their role allows.

mod common;

use std::process::Command;
use std::sync::OnceLock;

use common::fixture::RestFixture;
use common::{Backend, TestDb, TestServer, USER_PASSWORD, create_user};
use reqwest::StatusCode;
use serde_json::Value;

fn e2e_dir() -> String {
    format!("{}/tests/e2e", env!("CARGO_MANIFEST_DIR"))
}

fn setup() {
    static DONE: OnceLock<()> = OnceLock::new();
    common::sdk::install(
        &DONE,
        &format!("{}/setup.sh", e2e_dir()),
        "installing Chromium (apt) and playwright-core (npm) failed",
    );
}

async fn in_the_browser(backend: Backend) {
    setup();
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[]).await;
    let fixture = RestFixture::start().await;
    let artifacts = format!("{}/artifacts/{backend:?}", e2e_dir()).to_lowercase();
    std::fs::create_dir_all(&artifacts).expect("artifact dir");
    let args = [
        format!("{}/.deps/console.mjs", e2e_dir()),
        server.base.clone(),
        "admin@example.com".to_owned(),
        "admin-password-for-tests".to_owned(),
        format!("{}/weather/{{city}}", fixture.base),
        artifacts.clone(),
    ];
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node").args(&args).output().expect("run node")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "the browser run failed\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_str(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .unwrap_or_default(),
    )
    .expect("the driver prints JSON");
    for label in ["desktop", "phone"] {
        assert_eq!(
            seen[format!("{label}_redirected_to")],
            "/admin/login",
            "{seen}"
        );
        assert_eq!(seen[format!("{label}_heading")], "Dashboard", "{seen}");
        assert_eq!(
            seen[format!("{label}_after_sign_out")],
            "/admin/login",
            "{seen}"
        );
    }
    assert_eq!(seen["desktop_tools_count"], "0", "{seen}");
    assert_eq!(seen["invalid_json_blocked"], true, "{seen}");
    assert_eq!(seen["flash"], "Tool browser_weather created.", "{seen}");
    assert_eq!(seen["listed"], 1, "{seen}");
    assert_eq!(seen["tools_count_after"], "1", "{seen}");
    let result = seen["run_result"].as_str().unwrap();
    assert!(
        result.contains("Oslo") && result.contains("\"isError\": false"),
        "{seen}"
    );
    assert!(
        seen["run_elapsed"].as_str().unwrap().ends_with("ms"),
        "{seen}"
    );
    assert_eq!(
        seen["server_flash"], "Virtual server Browser desk created.",
        "{seen}"
    );
    assert_eq!(seen["server_tools"], "1", "{seen}");
    assert_eq!(seen["servers_count_after"], "1", "{seen}");
    assert_eq!(seen["token_shown"], true, "{seen}");
    assert_eq!(seen["copy_label"], 1, "{seen}");
    assert_eq!(seen["token_state"], "revoked", "{seen}");
    assert_eq!(seen["token_still_shown"], 0, "the token is shown only once");
    assert_eq!(
        seen["user_flash"], "User dev@example.com created.",
        "{seen}"
    );
    assert_eq!(
        seen["team_flash"], "dev@example.com added to Ops.",
        "{seen}"
    );
    assert_eq!(
        seen["team_members"], 3,
        "header, owner and the new member: {seen}"
    );
    for page in [
        "login-desktop",
        "dashboard-desktop",
        "tools-desktop",
        "dashboard-phone",
    ] {
        let path = format!("{artifacts}/{page}.png");
        assert!(
            std::fs::metadata(&path).is_ok_and(|meta| meta.len() > 1000),
            "screenshot {path}"
        );
    }
    // The tool really exists, through the REST API too.
    let tools = server.admin(reqwest::Method::GET, "/tools", None).await;
    assert!(tools.body.to_string().contains("browser_weather"));
    server.stop().await;
    fixture.stop().await;
}

/// A cookie-jar client for the console.
fn browser_like() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).expect("the field is in the page") + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

async fn sign_in(
    server: &TestServer,
    client: &reqwest::Client,
    email: &str,
    password: &str,
) -> String {
    let form = client
        .get(format!("{}/admin/login", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = field(&form, "csrf");
    let signed_in = client
        .post(format!("{}/admin/login", server.base))
        .form(&[("email", email), ("password", password), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let dashboard = client
        .get(format!("{}/admin", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(dashboard.status(), StatusCode::OK);
    dashboard.text().await.unwrap()
}

/// Forms without the session's CSRF token are refused; pages need a session; a developer sees
/// no database figures and no admin-only counts.
async fn forms_and_roles(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[("SSRF_ALLOW_LOCALHOST", "true")]).await;
    let anonymous = browser_like();
    let page = anonymous
        .get(format!("{}/admin/tools", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(page.headers()["location"], "/admin/login");
    let forged_login = anonymous
        .post(format!("{}/admin/login", server.base))
        .form(&[
            ("email", "admin@example.com"),
            ("password", "admin-password-for-tests"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged_login.status(), StatusCode::FORBIDDEN);

    let admin = browser_like();
    let dashboard = sign_in(
        &server,
        &admin,
        "admin@example.com",
        "admin-password-for-tests",
    )
    .await;
    assert!(dashboard.contains("data-figure=\"pool.in_use\""));
    assert!(dashboard.contains("data-figure=\"counts.users\""));
    let without_token = admin
        .post(format!("{}/admin/tools", server.base))
        .form(&[
            ("name", "forged"),
            ("url", "https://x.example"),
            ("request_type", "GET"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(without_token.status(), StatusCode::FORBIDDEN);
    let wrong_token = admin
        .post(format!("{}/admin/logout", server.base))
        .form(&[("csrf", "0".repeat(64))])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_token.status(), StatusCode::FORBIDDEN);
    let tools = server.admin(reqwest::Method::GET, "/tools", None).await;
    assert!(
        !tools.body.to_string().contains("forged"),
        "nothing was created"
    );

    // A bad field is shown in the page, with the form kept; nothing is stored.
    let csrf = field(&dashboard, "csrf");
    let refused = admin
        .post(format!("{}/admin/tools", server.base))
        .form(&[
            ("name", "bad tool name!"),
            ("url", "https://x.example"),
            ("request_type", "GET"),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = refused.text().await.unwrap();
    assert!(body.contains("role=\"alert\""), "{body}");
    assert!(
        body.contains("bad tool name!"),
        "the form keeps what was typed"
    );

    // Disable, enable and delete a tool from the list.
    let tool = server
        .admin(
            reqwest::Method::POST,
            "/tools",
            Some(serde_json::json!({"name": "switchable", "url": "https://x.example", "request_type": "GET"})),
        )
        .await;
    let tool_id = tool.body["id"].as_str().unwrap().to_owned();
    let act = |action: &str| {
        let request = admin
            .post(format!("{}/admin/tools/{tool_id}/{action}", server.base))
            .form(&[("csrf", csrf.clone())]);
        async move { request.send().await.unwrap() }
    };
    let disabled = act("toggle").await;
    assert_eq!(disabled.status(), StatusCode::OK);
    assert!(
        disabled
            .text()
            .await
            .unwrap()
            .contains("Tool switchable disabled.")
    );
    let stored = server
        .admin(reqwest::Method::GET, &format!("/tools/{tool_id}"), None)
        .await;
    assert_eq!(stored.body["enabled"], false);
    let deleted = act("delete").await;
    assert!(
        deleted
            .text()
            .await
            .unwrap()
            .contains("Tool switchable deleted.")
    );
    let gone = server
        .admin(reqwest::Method::GET, &format!("/tools/{tool_id}"), None)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let again = act("delete").await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);

    // Gateways: register an upstream (discovering it), refresh it; an unreachable one is a
    // clear error in the page.
    let (_upstream_db, upstream) = common::empty_upstream().await;
    let post = |path: &str, fields: Vec<(&str, String)>| {
        let request = admin.post(format!("{}{path}", server.base)).form(&fields);
        async move { request.send().await.unwrap() }
    };
    let registered = post(
        "/admin/gateways",
        vec![
            ("csrf", csrf.clone()),
            ("name", "Upstream".into()),
            ("url", format!("{}/mcp", upstream.base)),
            ("transport", "streamablehttp".into()),
            ("token", upstream.admin_token.clone()),
        ],
    )
    .await;
    assert_eq!(registered.status(), StatusCode::CREATED);
    let page = registered.text().await.unwrap();
    assert!(page.contains("Registered Upstream: 0 tools"), "{page}");
    let id = server
        .admin(reqwest::Method::GET, "/gateways", None)
        .await
        .body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refreshed = post(
        &format!("/admin/gateways/{id}/refresh"),
        vec![("csrf", csrf.clone())],
    )
    .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    assert!(
        refreshed
            .text()
            .await
            .unwrap()
            .contains("Refreshed Upstream")
    );
    let unreachable = post(
        "/admin/gateways",
        vec![
            ("csrf", csrf.clone()),
            ("name", "Nowhere".into()),
            ("url", "http://127.0.0.1:9/mcp".into()),
        ],
    )
    .await;
    assert_eq!(unreachable.status(), StatusCode::BAD_GATEWAY);
    assert!(unreachable.text().await.unwrap().contains("role=\"alert\""));
    upstream.stop().await;

    create_user(&server, "dev@example.com", "developer").await;
    let developer = browser_like();
    let dashboard = sign_in(&server, &developer, "dev@example.com", USER_PASSWORD).await;
    assert!(
        !dashboard.contains("data-figure=\"pool.in_use\""),
        "no database figures"
    );
    assert!(!dashboard.contains("data-figure=\"counts.users\""));
    assert!(dashboard.contains("dev@example.com"));
    assert!(
        !dashboard.contains("href=\"/admin/users\""),
        "no Users page in the menu"
    );
    let users = developer
        .get(format!("{}/admin/users", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(users.status(), StatusCode::FORBIDDEN);
    assert!(users.text().await.unwrap().contains("users.manage"));
    server.stop().await;
}

both_backends!(in_the_browser, forms_and_roles);
