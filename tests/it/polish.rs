//! The console at the REST API's parity and with its safety catches, over plain HTTP against
//! the real server, on SQLite and PostgreSQL: an upstream registered from the form with header
//! credentials, tags, a team, a visibility and no name prefix; a gateway deleted only with its
//! name typed again; a page for paths that are no page; the version and uptime in the footer.

#![allow(
    clippy::disallowed_methods,
    reason = "tests are the gateway's clients, with clients of their own"
)]

use crate::common;

use common::{Backend, TestDb, TestServer, empty_upstream};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::console::{browser_like, field, page, sign_in};

async fn the_upstream_form_and_its_deletion(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[]).await;
    let (_upstream_db, upstream) = empty_upstream().await;
    let team = server
        .admin(Method::POST, "/teams", Some(json!({"name": "Platform"})))
        .await;
    let team_id = team.expect(StatusCode::CREATED)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let client = crate::console::admin_browser(&server).await;
    let html = page(&client, &server, "/admin/gateways").await;
    assert!(
        html.contains(&format!("mcpgate {}", env!("CARGO_PKG_VERSION"))),
        "the footer"
    );
    assert!(html.contains(" · up "), "the uptime in the footer");
    let token = field(&html, "csrf");

    // Header credentials (the upstream's bearer token sent as a plain header), tags, a team,
    // a visibility, no prefix.
    let authorization = format!("Authorization: Bearer {}", upstream.admin_token);
    let registered = client
        .post(format!("{}/admin/gateways", server.base))
        .form(&[
            ("csrf", token.as_str()),
            ("name", "Formed"),
            ("url", &format!("{}/mcp", upstream.base)),
            ("transport", "streamablehttp"),
            ("description", "registered from the form"),
            ("auth_type", "headers"),
            ("headers", &format!("{authorization}\nX-Trace: console")),
            ("tags", "alpha, beta"),
            ("visibility", "team"),
            ("team_id", &team_id),
        ])
        .send()
        .await
        .unwrap();
    let status = registered.status();
    let html = registered.text().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{html}");
    let listed = server.admin(Method::GET, "/gateways", None).await;
    let gateway = listed.expect(StatusCode::OK)["items"][0].clone();
    assert_eq!(gateway["name"], "Formed");
    assert_eq!(gateway["auth_type"], "headers");
    assert_eq!(gateway["tags"], json!(["alpha", "beta"]));
    assert_eq!(gateway["visibility"], "team");
    assert_eq!(gateway["team_id"], team_id.as_str());
    assert_eq!(gateway["prefix_tool_names"], false);
    assert_eq!(gateway["description"], "registered from the form");
    assert!(
        !gateway.to_string().contains(&upstream.admin_token),
        "never shown again"
    );
    let id = gateway["id"].as_str().unwrap().to_owned();

    // A malformed header line is named.
    let refused = client
        .post(format!("{}/admin/gateways", server.base))
        .form(&[
            ("csrf", token.as_str()),
            ("name", "Bad headers"),
            ("url", &format!("{}/mcp", upstream.base)),
            ("auth_type", "headers"),
            ("headers", "no colon here"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("is not `Name: value`")
    );

    // Deleting a gateway needs its name typed again, and says what goes with it.
    let html = page(&client, &server, "/admin/gateways").await;
    assert!(html.contains("Its federated tools, resources and prompts are removed with it"));
    assert!(html.contains("Type Formed to confirm"), "{html}");
    for typed in [None, Some("formed"), Some("Other")] {
        let mut form = vec![("csrf", token.clone())];
        if let Some(typed) = typed {
            form.push(("confirm", typed.to_owned()));
        }
        let response = client
            .post(format!("{}/admin/gateways/{id}/delete", server.base))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{typed:?}"
        );
        let still = server
            .admin(Method::GET, &format!("/gateways/{id}"), None)
            .await;
        assert_eq!(still.status, StatusCode::OK, "not deleted with {typed:?}");
    }
    let deleted = client
        .post(format!("{}/admin/gateways/{id}/delete", server.base))
        .form(&[("csrf", token.as_str()), ("confirm", "Formed")])
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::SEE_OTHER);
    let gone = server
        .admin(Method::GET, &format!("/gateways/{id}"), None)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);

    // A path that is no page: a page for a browser, JSON for anyone else.
    let missing = client
        .get(format!("{}/admin/no-such-page", server.base))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(
        missing
            .text()
            .await
            .unwrap()
            .contains("There is no page here")
    );
    let api = server.admin(Method::GET, "/admin/no-such-page", None).await;
    assert_eq!(api.status, StatusCode::NOT_FOUND);
    assert_eq!(api.code(), "not-found");
    server.stop().await;
    upstream.stop().await;
}

/// A list offers only the actions its viewer may take: a developer sees Edit and Delete on
/// their own tool, not on the admin's (which they may see and call).
async fn only_allowed_actions_are_offered(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[]).await;
    let developer = common::create_user(&server, "dev@example.com", "developer").await;
    let fresh = crate::console::admin_page(&server, "/admin").await;
    assert!(
        fresh.contains("Getting started"),
        "an empty gateway says what to do: {fresh}"
    );
    let tool = |name: &str| json!({"name": name, "url": "http://127.0.0.1:9/x", "request_type": "GET", "visibility": "public"});
    let mut annotated = tool("admins_tool");
    annotated["annotations"] =
        json!({"readOnlyHint": true, "destructiveHint": false, "openWorldHint": true});
    server
        .admin(Method::POST, "/tools", Some(annotated))
        .await
        .expect(StatusCode::CREATED);
    server
        .send(
            Method::POST,
            "/tools",
            Some(&developer),
            Some(tool("devs_tool")),
        )
        .await
        .expect(StatusCode::CREATED);
    let client = browser_like();
    sign_in(&server, &client, "dev@example.com", common::USER_PASSWORD).await;
    let html = page(&client, &server, "/admin/tools").await;
    assert!(
        html.contains("admins_tool") && html.contains("devs_tool"),
        "{html}"
    );
    for action in ["Edit", "Delete"] {
        assert!(
            html.contains(&format!(r#"aria-label="{action} devs_tool"#)),
            "{action}: {html}"
        );
        assert!(
            !html.contains(&format!(r#"aria-label="{action} admins_tool"#)),
            "{action}: {html}"
        );
    }
    // The annotations as badges (hints only).
    assert!(
        html.contains(r#"<span class="badge">read-only</span>"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<span class="badge">open world</span>"#),
        "{html}"
    );
    assert!(!html.contains(">destructive</span>"), "{html}");
    let admin = crate::console::admin_page(&server, "/admin/tools").await;
    assert!(admin.contains(r#"aria-label="Edit admins_tool""#));
    assert!(admin.contains(r#"aria-label="Edit devs_tool""#));
    // Once there are tools and a virtual server, the checklist is gone.
    server
        .admin(Method::POST, "/servers", Some(json!({"name": "Desk"})))
        .await
        .expect(StatusCode::CREATED);
    let set_up = crate::console::admin_page(&server, "/admin").await;
    assert!(!set_up.contains("Getting started"), "{set_up}");
    server.stop().await;
}

/// The token form at the API's parity: a permission subset and a daily window, listed with
/// the token's creation time; a malformed window is refused naming the field.
async fn tokens_limited_from_the_console(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[]).await;
    let client = crate::console::admin_browser(&server).await;
    let token = field(&page(&client, &server, "/admin/tokens").await, "csrf");
    let made = client
        .post(format!("{}/admin/tokens", server.base))
        .form(&[
            ("csrf", token.as_str()),
            ("name", "office hours"),
            ("expires_in_days", "7"),
            ("permissions", "tools.read, tools.execute"),
            ("start_time", "09:00"),
            ("end_time", "17:00"),
            ("days", "mon, tue"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), StatusCode::CREATED);
    let html = made.text().await.unwrap();
    assert!(
        html.contains("only tools.read, tools.execute; 09:00–17:00 UTC, mon, tue"),
        "{html}"
    );
    // The admin's own token list, through the REST API (signed in, not with an API token).
    let session = common::login(&server, "admin@example.com", "admin-password-for-tests").await;
    let session = session.expect(StatusCode::OK)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let listed = server
        .send(Method::GET, "/tokens", Some(&session), None)
        .await;
    let scope = listed.expect(StatusCode::OK)["items"][0]["scope"].clone();
    assert_eq!(scope["permissions"], json!(["tools.read", "tools.execute"]));
    assert_eq!(scope["time_restrictions"]["start_time"], "09:00");
    assert_eq!(scope["time_restrictions"]["days"], json!(["mon", "tue"]));
    let refused = client
        .post(format!("{}/admin/tokens", server.base))
        .form(&[
            ("csrf", token.as_str()),
            ("name", "bad window"),
            ("start_time", "25:99"),
            ("end_time", "17:00"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.text().await.unwrap().contains("time_restrictions"));
    server.stop().await;
}

/// A refused form says what is wrong beside the field it concerns (and marks it invalid),
/// keeps what was typed, and says it at the top too; create panels fold once a list has items.
async fn problems_are_shown_at_their_field(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[]).await;
    let client = crate::console::admin_browser(&server).await;
    let html = page(&client, &server, "/admin/prompts").await;
    assert!(
        html.contains(r#"<details class="card create" open>"#),
        "an empty list opens its create panel"
    );
    let token = field(&html, "csrf");
    let post = |path: &'static str, form: Vec<(&'static str, String)>| {
        let client = client.clone();
        let url = format!("{}{path}", server.base);
        async move {
            let reply = client.post(url).form(&form).send().await.unwrap();
            (reply.status(), reply.text().await.unwrap())
        }
    };
    // A prompt whose arguments are not JSON: the error is at the arguments field.
    let (status, html) = post(
        "/admin/prompts",
        vec![
            ("csrf", token.clone()),
            ("name", "summary".into()),
            ("template", "Summarise {{ text }}".into()),
            ("arguments", "[not json".into()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(
        html.contains(r#"aria-invalid="true" aria-describedby="f-arguments-error""#),
        "{html}"
    );
    assert!(html.contains(r#"<p class="field-error" id="f-arguments-error">not valid JSON"#));
    assert!(
        html.contains("Summarise {{ text }}"),
        "what was typed is kept"
    );
    // The service's own check names its field: a resource with neither URI nor template.
    let (status, html) = post(
        "/admin/resources",
        vec![("csrf", token.clone()), ("name", "Guide".into())],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(
        html.contains(r#"class="field-error" id="f-uri-error""#),
        "{html}"
    );
    // The REST tool form: a schema that is not JSON, at the schema.
    let (status, html) = post(
        "/admin/tools",
        vec![
            ("csrf", token.clone()),
            ("name", "t1".into()),
            ("url", "http://127.0.0.1:9/x".into()),
            ("request_type", "GET".into()),
            ("description", String::new()),
            ("input_schema", "{oops".into()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(
        html.contains(r#"<p class="field-error" id="input_schema-error">not valid JSON"#),
        "{html}"
    );
    // Once there are items, the create panel starts folded.
    server
        .admin(
            Method::POST,
            "/prompts",
            Some(json!({"name": "kept", "template": "Hi"})),
        )
        .await
        .expect(StatusCode::CREATED);
    let html = page(&client, &server, "/admin/prompts").await;
    assert!(html.contains(r#"<details class="card create" >"#), "{html}");
    server.stop().await;
}

both_backends!(
    problems_are_shown_at_their_field,
    the_upstream_form_and_its_deletion,
    only_allowed_actions_are_offered,
    tokens_limited_from_the_console
);
