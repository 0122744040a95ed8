//! The admin console against the real server: in Debian's headless Chromium (driven by
//! playwright-core, both installed by `tests/e2e/setup.sh`) sign in, watch the dashboard's
//! figures arrive live, create a REST tool (a schema that is not JSON is caught first), see it
//! listed, test-run it, create a virtual server with it, create a token for that server (shown
//! once, copied) and revoke it, create a user and a team with them in it, sign out — at 1280 px (and sign-in, dashboard and sign-out at
//! 390 px), with screenshots of each page in `tests/e2e/artifacts`. Over plain HTTP: forms without the CSRF token are refused, pages
//! need a session, and a non-admin sees only what their role allows.

#![allow(
    clippy::disallowed_methods,
    reason = "tests are the gateway's clients, with clients of their own"
)]

use crate::common;

use std::process::Command;
use std::sync::OnceLock;

use common::fixture::RestFixture;
use common::{Backend, TestDb, TestServer, USER_PASSWORD, create_user};
use reqwest::StatusCode;
use serde_json::Value;

fn e2e_dir() -> String {
    format!("{}/tests/e2e", env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn setup() {
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
    assert_eq!(
        seen["built_schema"],
        serde_json::json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        "{seen}"
    );
    assert!(
        seen["bad_schema_blocked"]
            .as_str()
            .unwrap()
            .contains("not in \"properties\": x"),
        "{seen}"
    );
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
    assert!(
        seen["run_text"]
            .as_str()
            .is_some_and(|text| text.contains("Oslo")),
        "the text content on its own: {seen}"
    );
    assert_eq!(seen["token_panel_folded"], true, "{seen}");
    let curl = seen["run_curl"].as_str().unwrap_or_default();
    assert!(
        curl.contains("Mcp-Method: tools/call") && curl.contains("\"city\":\"Oslo\""),
        "{curl}"
    );
    assert_eq!(seen["metrics_chart"], "Calls per 15 minutes", "{seen}");
    assert!(
        seen["transfer_heading"]
            .as_str()
            .is_some_and(|heading| heading.contains("xport")),
        "{seen}"
    );
    assert_eq!(
        seen["server_flash"], "Virtual server Browser desk created.",
        "{seen}"
    );
    assert!(
        seen["server_tools"]
            .as_str()
            .unwrap()
            .starts_with("Tools: 1, resources: 0, prompts: 0"),
        "{seen}"
    );
    assert_eq!(
        seen["resource_flash"], "Resource Browser guide created.",
        "{seen}"
    );
    assert_eq!(
        seen["resource_saved"], "Resource Browser guide saved.",
        "{seen}"
    );
    assert_eq!(seen["resource_rows"], 1, "{seen}");
    assert_eq!(
        seen["prompt_flash"], "Prompt browser_prompt created.",
        "{seen}"
    );
    assert_eq!(
        seen["phone_overflow"],
        serde_json::json!([]),
        "pages wider than 390 px: {seen}"
    );
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
        "servers-desktop",
        "resources-desktop",
        "prompts-desktop",
        "gateways-desktop",
        "tokens-desktop",
        "users-desktop",
        "teams-desktop",
        "dashboard-phone",
        "tools-phone",
    ] {
        let path = format!("{artifacts}/{page}.png");
        assert!(
            std::fs::metadata(&path).is_ok_and(|meta| meta.len() > 1000),
            "screenshot {path}"
        );
    }
    assert_eq!(
        seen["disable_flash"],
        "dev@example.com is disabled; their sign-ins and tokens stopped working.",
        "{seen}"
    );
    let actions = seen["audit_actions"].as_array().unwrap();
    assert_eq!(actions[0], "users.update", "newest first: {seen}");
    assert!(
        actions.contains(&serde_json::json!("users.create")),
        "{seen}"
    );
    assert!(
        seen["audit_change"].as_str().unwrap().contains("is_active"),
        "{seen}"
    );
    assert_eq!(
        seen["account_field_error"], "does not match the new password",
        "{seen}"
    );
    assert_eq!(seen["account_invalid"], "true", "{seen}");
    assert!(
        seen["connect_url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/servers/", server.base)),
        "{seen}"
    );
    assert_eq!(seen["connect_config_has_token"], true, "{seen}");
    assert_eq!(seen["connect_copied"], "Copied", "{seen}");
    for page in [
        "audit-desktop",
        "account-desktop",
        "connect-desktop",
        "connect-phone",
        "audit-phone",
        "account-phone",
        "users-phone",
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
pub(crate) fn browser_like() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The value of the first `name` field of a page's forms (`csrf`: the session's token).
pub(crate) fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).expect("the field is in the page") + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

pub(crate) async fn sign_in(
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
    page(client, server, "/admin").await
}

/// A console page at `path` as the platform admin sees it (signed in for this one page).
pub(crate) async fn admin_page(server: &TestServer, path: &str) -> String {
    let browser = admin_browser(server).await;
    page(&browser, server, path).await
}

/// A browser signed in as the platform admin.
pub(crate) async fn admin_browser(server: &TestServer) -> reqwest::Client {
    let browser = browser_like();
    sign_in(
        server,
        &browser,
        "admin@example.com",
        "admin-password-for-tests",
    )
    .await;
    browser
}

/// A console page at `path`, which must answer 200.
pub(crate) async fn page(client: &reqwest::Client, server: &TestServer, path: &str) -> String {
    let page = client
        .get(format!("{}{path}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK, "{path}");
    page.text().await.unwrap()
}

/// Follows a change's redirect (303) back to its list; returns that page, which shows the
/// confirmation once.
async fn follow(client: &reqwest::Client, server: &TestServer, done: reqwest::Response) -> String {
    assert_eq!(
        done.status(),
        StatusCode::SEE_OTHER,
        "the change redirects to its list"
    );
    let location = done.headers()["location"].to_str().unwrap().to_owned();
    let page = client
        .get(format!("{}{location}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    page.text().await.unwrap()
}

/// Resources, prompts and virtual servers from their pages: create, edit (a field that is not
/// JSON is refused with what was typed kept), enable/disable, delete; lists filter by text, tag
/// and team and come in pages; the confirmation shows once; another user's item cannot be
/// changed.
async fn registry_pages(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[]).await;
    let admin = browser_like();
    let dashboard = sign_in(
        &server,
        &admin,
        "admin@example.com",
        "admin-password-for-tests",
    )
    .await;
    let csrf = field(&dashboard, "csrf");
    let post = |path: String, fields: Vec<(&'static str, String)>| {
        let request = admin.post(format!("{}{path}", server.base)).form(&fields);
        async move { request.send().await.unwrap() }
    };
    let get = |path: String| {
        let request = admin.get(format!("{}{path}", server.base));
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        }
    };

    // A resource from its form.
    let created = post(
        "/admin/resources".into(),
        vec![
            ("csrf", csrf.clone()),
            ("uri", "docs://guide".into()),
            ("name", "Guide".into()),
            ("content", "Read the guide".into()),
            ("tags", "docs, onboarding".into()),
            ("visibility", "public".into()),
        ],
    )
    .await;
    let page = follow(&admin, &server, created).await;
    assert!(page.contains("Resource Guide created."), "{page}");
    let (_, again) = get("/admin/resources".into()).await;
    assert!(!again.contains("Resource Guide created."), "shown once");
    let stored = server.admin(reqwest::Method::GET, "/resources", None).await;
    let resource = &stored.body["items"][0];
    assert_eq!(resource["tags"], serde_json::json!(["docs", "onboarding"]));
    let id = resource["id"].as_str().unwrap().to_owned();
    // A duplicate URI: the REST API's message, in the page, with the form kept.
    let duplicate = post(
        "/admin/resources".into(),
        vec![
            ("csrf", csrf.clone()),
            ("uri", "docs://guide".into()),
            ("name", "Second".into()),
            ("content", "Another guide".into()),
        ],
    )
    .await;
    assert_eq!(duplicate.status(), StatusCode::CONFLICT);
    let body = duplicate.text().await.unwrap();
    assert!(
        body.contains("role=\"alert\"") && body.contains("value=\"Second\""),
        "{body}"
    );

    // Edit: the form is filled from the record; saving changes it.
    let (status, form) = get(format!("/admin/resources/{id}/edit")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        form.contains("Read the guide") && form.contains("docs, onboarding"),
        "{form}"
    );
    let saved = post(
        format!("/admin/resources/{id}/edit"),
        vec![
            ("csrf", csrf.clone()),
            ("uri", "docs://guide".into()),
            ("name", "Guide".into()),
            ("description", "How to start".into()),
            ("content", "Read the new guide".into()),
            ("tags", "docs".into()),
            ("visibility", "public".into()),
        ],
    )
    .await;
    assert!(
        follow(&admin, &server, saved)
            .await
            .contains("Resource Guide saved.")
    );
    let stored = server
        .admin(reqwest::Method::GET, &format!("/resources/{id}"), None)
        .await;
    assert_eq!(stored.body["description"], "How to start");
    assert_eq!(stored.body["content"], "Read the new guide");
    assert_eq!(stored.body["tags"], serde_json::json!(["docs"]));

    // A prompt whose arguments are not JSON is refused, naming the field; nothing changes.
    let prompt = post(
        "/admin/prompts".into(),
        vec![
            ("csrf", csrf.clone()),
            ("name", "summarise".into()),
            ("template", "Summarise {{ text }}".into()),
            (
                "arguments",
                "[{\"name\": \"text\", \"required\": true}]".into(),
            ),
        ],
    )
    .await;
    assert!(
        follow(&admin, &server, prompt)
            .await
            .contains("Prompt summarise created.")
    );
    let prompt_id = server
        .admin(reqwest::Method::GET, "/prompts", None)
        .await
        .body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = post(
        format!("/admin/prompts/{prompt_id}/edit"),
        vec![
            ("csrf", csrf.clone()),
            ("name", "summarise".into()),
            ("template", "Summarise {{ text }} briefly".into()),
            ("arguments", "[{not json".into()),
        ],
    )
    .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = refused.text().await.unwrap();
    assert!(body.contains("arguments: not valid JSON"), "{body}");
    assert!(
        body.contains("[{not json") && body.contains("briefly"),
        "what was typed is kept"
    );
    let unchanged = server
        .admin(reqwest::Method::GET, &format!("/prompts/{prompt_id}"), None)
        .await;
    assert_eq!(unchanged.body["template"], "Summarise {{ text }}");

    // A virtual server with the resource and the prompt, then edited down to the prompt.
    let made = post(
        "/admin/servers".into(),
        vec![
            ("csrf", csrf.clone()),
            ("name", "Docs desk".into()),
            ("resource_ids", id.clone()),
            ("prompt_ids", prompt_id.clone()),
        ],
    )
    .await;
    let page = follow(&admin, &server, made).await;
    assert!(page.contains("Virtual server Docs desk created."), "{page}");
    assert!(
        page.contains("Tools: 0, resources: 1, prompts: 1"),
        "{page}"
    );
    let server_id = server
        .admin(reqwest::Method::GET, "/servers", None)
        .await
        .body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, form) = get(format!("/admin/servers/{server_id}/edit")).await;
    assert!(
        form.contains(&format!("value=\"{id}\" checked")),
        "members are ticked: {form}"
    );
    let edited = post(
        format!("/admin/servers/{server_id}/edit"),
        vec![
            ("csrf", csrf.clone()),
            ("name", "Docs desk".into()),
            ("prompt_ids", prompt_id.clone()),
        ],
    )
    .await;
    follow(&admin, &server, edited).await;
    let stored = server
        .admin(reqwest::Method::GET, &format!("/servers/{server_id}"), None)
        .await;
    assert_eq!(stored.body["resource_ids"], serde_json::json!([]));
    assert_eq!(stored.body["prompt_ids"], serde_json::json!([prompt_id]));

    // Disable and delete from the list.
    let toggled = post(
        format!("/admin/prompts/{prompt_id}/toggle"),
        vec![("csrf", csrf.clone())],
    )
    .await;
    assert!(
        follow(&admin, &server, toggled)
            .await
            .contains("Prompt summarise disabled.")
    );
    let deleted = post(
        format!("/admin/resources/{id}/delete"),
        vec![("csrf", csrf.clone())],
    )
    .await;
    assert!(
        follow(&admin, &server, deleted)
            .await
            .contains("Resource Guide deleted.")
    );
    let missing = post(
        format!("/admin/resources/{id}/delete"),
        vec![("csrf", csrf.clone())],
    )
    .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing.text().await.unwrap().contains("role=\"alert\""));

    // Filters and pages: 30 resources, every third tagged.
    for n in 0..30 {
        let tags = if n % 3 == 0 { vec!["third"] } else { vec![] };
        server
            .admin(
                reqwest::Method::POST,
                "/resources",
                Some(serde_json::json!({"uri": format!("docs://page/{n:02}"), "name": format!("Page {n:02}"), "content": "page", "tags": tags})),
            )
            .await
            .expect(StatusCode::CREATED);
    }
    let (_, first) = get("/admin/resources".into()).await;
    assert!(first.contains("30 in all · page 1 of 2"), "{first}");
    assert!(
        first.contains("Page 24") && !first.contains("Page 25"),
        "{first}"
    );
    let (_, second) = get("/admin/resources?page=2".into()).await;
    assert!(second.contains("Page 25") && second.contains("Page 29"));
    let (_, tagged) = get("/admin/resources?tag=third".into()).await;
    assert!(tagged.contains("10 in all · page 1 of 1"), "{tagged}");
    assert!(tagged.contains("Page 03") && !tagged.contains("Page 04"));
    let (_, searched) = get("/admin/resources?q=page+1".into()).await;
    assert!(searched.contains("10 in all"), "Page 10–19: {searched}");
    let (_, team) = get("/admin/resources?team=no-such-team".into()).await;
    assert!(
        team.contains("0 in all") && team.contains("Nothing matches"),
        "{team}"
    );

    // Another user's item: a developer cannot change the admin's server (as in the REST API).
    create_user(&server, "dev@example.com", "developer").await;
    let developer = browser_like();
    let dev_dashboard = sign_in(&server, &developer, "dev@example.com", USER_PASSWORD).await;
    let dev_csrf = field(&dev_dashboard, "csrf");
    let refused = developer
        .post(format!("{}/admin/servers/{server_id}/delete", server.base))
        .form(&[("csrf", dev_csrf)])
        .send()
        .await
        .unwrap();
    assert!(refused.status().is_client_error(), "{}", refused.status());
    server
        .admin(reqwest::Method::GET, &format!("/servers/{server_id}"), None)
        .await
        .expect(StatusCode::OK);
    server.stop().await;
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
    let disabled = follow(&admin, &server, act("toggle").await).await;
    assert!(disabled.contains("Tool switchable disabled."), "{disabled}");
    let stored = server
        .admin(reqwest::Method::GET, &format!("/tools/{tool_id}"), None)
        .await;
    assert_eq!(stored.body["enabled"], false);
    let deleted = follow(&admin, &server, act("delete").await).await;
    assert!(deleted.contains("Tool switchable deleted."), "{deleted}");
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

once_on_sqlite!(in_the_browser);
both_backends!(forms_and_roles, registry_pages);

/// With the database unreachable, a list page says it could not be read (or that the console
/// is unavailable) rather than showing an empty list; nothing panics.
#[actix_rt::test]
async fn outage_is_shown_not_hidden() {
    let db = TestDb::new(Backend::Postgres).await;
    let proxy =
        common::proxy::Proxy::start(format!("{}:{}", common::PG_HOST, common::PG_PORT)).await;
    let server = TestServer::start_on_url(
        &db.url_via_port(proxy.port),
        &[("DB_MAX_RETRIES", "0"), ("DB_POOL_TIMEOUT", "1")],
    )
    .await;
    let admin = crate::console::admin_browser(&server).await;
    proxy.cut();
    let page = admin
        .get(format!("{}/admin/resources", server.base))
        .send()
        .await
        .unwrap();
    let status = page.status();
    let body = page.text().await.unwrap();
    assert!(
        (status == StatusCode::OK && body.contains("The list could not be read"))
            || status == StatusCode::SERVICE_UNAVAILABLE,
        "{status}: {body}"
    );
    assert!(!body.contains("Nothing here yet"), "{body}");
    proxy.restore();
    server.stop().await;
}
