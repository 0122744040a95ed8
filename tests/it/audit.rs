//! The audit trail against the real server, on SQLite and PostgreSQL: every kind of change
//! (registry, upstream, identity, roles, teams, tokens, sign-in) appears in `GET /audit` with
//! its actor, address and request id; no secret ever reaches the database or the API;
//! searching and paging; only platform admins read it; the console page; retention.

#![allow(
    clippy::disallowed_methods,
    reason = "tests are the gateway's clients, with clients of their own"
)]

use crate::common;

use common::{Backend, TestDb, TestServer, USER_PASSWORD, create_user, empty_upstream, sql_texts};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ADMIN: &str = "admin@example.com";
const TOOL_HEADER_SECRET: &str = "tool-header-s3cret-4f1a";
const USER_PASSWORD_SECRET: &str = "user-password-s3cret-9b2c";
const RESET_PASSWORD_SECRET: &str = "reset-password-s3cret-7d3e";
const WRONG_PASSWORD_SECRET: &str = "wrong-password-s3cret-1e5f";

/// Every entry matching `query`, following the cursor.
async fn trail(server: &TestServer, query: &str) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/audit?limit=500&{query}&cursor={cursor}"),
            None => format!("/audit?limit=500&{query}"),
        };
        let reply = server.admin(Method::GET, &path, None).await;
        let page = reply.expect(StatusCode::OK).clone();
        entries.extend(page["entries"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return entries,
        }
    }
}

fn find<'a>(entries: &'a [Value], action: &str) -> &'a Value {
    entries
        .iter()
        .find(|entry| entry["action"] == action)
        .unwrap_or_else(|| panic!("no {action} entry in {entries:#?}"))
}

async fn every_kind_of_change(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[]).await;
    let (_upstream_db, upstream) = empty_upstream().await;
    let client = reqwest::Client::new();

    // Registry: a REST tool with a secret header, changed, disabled, deleted.
    let created = client
        .post(format!("{}/tools", server.base))
        .bearer_auth(&server.admin_token)
        .header("x-request-id", "audit-test-create-tool")
        .json(
            &json!({"name": "audited_tool", "url": "http://127.0.0.1:9/x", "request_type": "GET",
                      "headers": {"X-Api-Key": TOOL_HEADER_SECRET}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let tool: Value = created.json().await.unwrap();
    let tool_id = tool["id"].as_str().unwrap().to_owned();
    server
        .admin(
            Method::PUT,
            &format!("/tools/{tool_id}"),
            Some(json!({"description": "now described"})),
        )
        .await
        .expect(StatusCode::OK);
    server
        .admin(
            Method::POST,
            &format!("/tools/{tool_id}/toggle?activate=false"),
            None,
        )
        .await
        .expect(StatusCode::OK);
    server
        .admin(Method::DELETE, &format!("/tools/{tool_id}"), None)
        .await
        .expect(StatusCode::NO_CONTENT);

    // An upstream registered with a bearer token (a JWT), then refreshed.
    let gateway = server
        .admin(
            Method::POST,
            "/gateways",
            Some(common::gateway_body("audited-upstream", &upstream, false)),
        )
        .await;
    let gateway_id = gateway.expect(StatusCode::CREATED)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .admin(
            Method::POST,
            &format!("/gateways/{gateway_id}/refresh"),
            None,
        )
        .await
        .expect(StatusCode::OK);

    // Identity: a user created, reset, disabled, given and relieved of a role, deleted; a team
    // with them in it and out again.
    server
        .admin(
            Method::POST,
            "/users",
            Some(json!({"email": "audited@example.com", "password": USER_PASSWORD_SECRET, "role": "viewer"})),
        )
        .await
        .expect(StatusCode::CREATED);
    server
        .admin(
            Method::POST,
            "/users/audited@example.com/roles",
            Some(json!({"role": "developer"})),
        )
        .await
        .expect(StatusCode::OK);
    server
        .admin(
            Method::DELETE,
            "/users/audited@example.com/roles/developer",
            None,
        )
        .await
        .expect(StatusCode::NO_CONTENT);
    server
        .admin(
            Method::PUT,
            "/users/audited@example.com",
            Some(json!({"password": RESET_PASSWORD_SECRET, "is_active": false})),
        )
        .await
        .expect(StatusCode::OK);
    let team = server
        .admin(
            Method::POST,
            "/teams",
            Some(json!({"name": "Audited team"})),
        )
        .await;
    let team_id = team.expect(StatusCode::CREATED)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .admin(
            Method::POST,
            &format!("/teams/{team_id}/members"),
            Some(json!({"email": "audited@example.com"})),
        )
        .await
        .expect(StatusCode::OK);
    server
        .admin(
            Method::DELETE,
            &format!("/teams/{team_id}/members/audited@example.com"),
            None,
        )
        .await
        .expect(StatusCode::NO_CONTENT);
    server
        .admin(Method::DELETE, &format!("/teams/{team_id}"), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    server
        .admin(Method::DELETE, "/users/audited@example.com", None)
        .await
        .expect(StatusCode::NO_CONTENT);

    // Tokens: one created (its value shown once) and revoked.
    let token = server
        .admin(
            Method::POST,
            "/tokens",
            Some(json!({"name": "audited-token"})),
        )
        .await;
    let token = token.expect(StatusCode::CREATED).clone();
    let access_token = token["access_token"].as_str().unwrap().to_owned();
    let token_id = token["id"].as_str().unwrap().to_owned();
    server
        .admin(Method::DELETE, &format!("/tokens/{token_id}"), None)
        .await
        .expect(StatusCode::NO_CONTENT);

    // Sign-ins: one refused, one accepted.
    create_user(&server, "signer@example.com", "viewer").await;
    let refused = common::login(&server, "signer@example.com", WRONG_PASSWORD_SECRET).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    let accepted = common::login(&server, "signer@example.com", USER_PASSWORD).await;
    let session = accepted.expect(StatusCode::OK)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let entries = trail(&server, "").await;
    for action in [
        "tools.create",
        "tools.update",
        "tools.disable",
        "tools.delete",
        "gateways.create",
        "gateways.refresh",
        "users.create",
        "users.update",
        "roles.grant",
        "roles.revoke",
        "teams.create",
        "teams.add_member",
        "teams.remove_member",
        "teams.delete",
        "users.delete",
        "tokens.create",
        "tokens.revoke",
    ] {
        let entry = find(&entries, action);
        assert_eq!(entry["actor"], ADMIN, "{entry:#}");
        assert_eq!(entry["outcome"], "ok", "{entry:#}");
        assert_eq!(entry["client_ip"], "127.0.0.1", "{entry:#}");
        assert!(
            entry["request_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty())
        );
    }
    // Newest first.
    let position = |action: &str| entries.iter().position(|e| e["action"] == action).unwrap();
    assert!(position("tools.delete") < position("tools.create"));

    // What changed, before and after.
    let created = find(&entries, "tools.create");
    assert_eq!(created["request_id"], "audit-test-create-tool");
    assert_eq!(created["target_id"], tool_id.as_str());
    assert_eq!(created["target_name"], "audited_tool");
    assert!(created["before"].is_null());
    assert_eq!(created["after"]["headers"]["X-Api-Key"], "*****");
    let updated = find(&entries, "tools.update");
    assert!(updated["before"]["description"].is_null());
    assert_eq!(updated["after"]["description"], "now described");
    let disabled = find(&entries, "tools.disable");
    assert_eq!(disabled["before"]["enabled"], true);
    assert_eq!(disabled["after"]["enabled"], false);
    assert_eq!(
        find(&entries, "tools.delete")["before"]["name"],
        "audited_tool"
    );
    let user_update = find(&entries, "users.update");
    assert_eq!(user_update["before"]["is_active"], true);
    assert_eq!(user_update["after"]["is_active"], false);
    assert_eq!(user_update["detail"], "password reset");
    assert_eq!(
        find(&entries, "roles.grant")["detail"],
        "developer globally"
    );
    assert!(
        find(&entries, "teams.add_member")["detail"]
            .as_str()
            .unwrap()
            .contains("audited@example.com")
    );
    assert_eq!(
        find(&entries, "gateways.create")["target_name"],
        "audited-upstream"
    );

    let sign_ins: Vec<&Value> = entries
        .iter()
        .filter(|entry| entry["action"] == "auth.sign_in")
        .collect();
    assert_eq!(sign_ins.len(), 2, "{sign_ins:#?}");
    assert_eq!(sign_ins[0]["outcome"], "ok");
    assert_eq!(sign_ins[0]["actor"], "signer@example.com");
    assert_eq!(sign_ins[1]["outcome"], "refused");
    assert!(
        sign_ins[1]["detail"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );

    // No secret anywhere: not in the API's answer, not in the database.
    let served = serde_json::to_string(&entries).unwrap();
    let stored = sql_texts(
        &db,
        "SELECT COALESCE(before_json, '') || COALESCE(after_json, '') || COALESCE(detail, '') \
         || COALESCE(target_name, '') AS value FROM audit_log",
    )
    .await
    .join("\n");
    assert!(!stored.is_empty());
    for secret in [
        TOOL_HEADER_SECRET,
        USER_PASSWORD_SECRET,
        RESET_PASSWORD_SECRET,
        WRONG_PASSWORD_SECRET,
        USER_PASSWORD,
        &upstream.admin_token,
        &access_token,
        &session,
        "eyJ",
    ] {
        assert!(!served.contains(secret), "{secret} served: {served}");
        assert!(!stored.contains(secret), "{secret} stored: {stored}");
    }

    // Searching: by action family, actor, target, outcome; paging without overlap.
    let tools = trail(&server, "action=tools.").await;
    assert_eq!(tools.len(), 4, "{tools:#?}");
    assert!(
        tools
            .iter()
            .all(|e| e["action"].as_str().unwrap().starts_with("tools."))
    );
    let by_target = trail(&server, "target=audited_tool").await;
    assert_eq!(by_target.len(), 4);
    let by_actor = trail(&server, "actor=SIGNER@example.com").await;
    assert_eq!(by_actor.len(), 2);
    let refused = trail(&server, "outcome=refused").await;
    assert_eq!(refused.len(), 1);
    // Blank parameters (a search form's empty fields) filter nothing.
    let blank = trail(&server, "actor=&action=&target=&outcome=").await;
    assert_eq!(blank.len(), entries.len());
    let first = server.admin(Method::GET, "/audit?limit=3", None).await;
    let first = first.expect(StatusCode::OK).clone();
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = server
        .admin(
            Method::GET,
            &format!("/audit?limit=3&cursor={cursor}"),
            None,
        )
        .await;
    let second = second.expect(StatusCode::OK).clone();
    let ids = |page: &Value| -> Vec<String> {
        page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (a, b) = (ids(&first), ids(&second));
    assert_eq!((a.len(), b.len()), (3, 3));
    assert!(a.last().unwrap() > b.first().unwrap(), "{a:?} then {b:?}");
    let since = server
        .admin(Method::GET, "/audit?since=2999-01-01T00:00:00Z", None)
        .await;
    assert_eq!(since.expect(StatusCode::OK)["entries"], json!([]));

    // Bad input is named; only platform admins read the trail.
    let reply = server.admin(Method::GET, "/audit?limit=0", None).await;
    assert_eq!(
        reply.expect(StatusCode::UNPROCESSABLE_ENTITY)["field"],
        "limit"
    );
    let reply = server
        .admin(Method::GET, "/audit?outcome=maybe", None)
        .await;
    assert_eq!(
        reply.expect(StatusCode::UNPROCESSABLE_ENTITY)["field"],
        "outcome"
    );
    let reply = server
        .admin(Method::GET, "/audit?since=yesterday", None)
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    for role in ["developer", "team_admin"] {
        let token = create_user(&server, &format!("{role}-reader@example.com"), role).await;
        let reply = server.send(Method::GET, "/audit", Some(&token), None).await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{role}: {}",
            reply.body
        );
    }
    server.stop().await;
}

async fn console_page(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[]).await;
    server
        .admin(
            Method::POST,
            "/tools",
            Some(
                json!({"name": "paged_tool", "url": "http://127.0.0.1:9/x", "request_type": "GET"}),
            ),
        )
        .await
        .expect(StatusCode::CREATED);
    let html = crate::console::admin_page(&server, "/admin/audit?action=tools.").await;
    assert!(html.contains("<h1>Audit trail</h1>"), "{html}");
    assert!(
        html.contains("tools.create") && html.contains("paged_tool"),
        "{html}"
    );
    assert!(
        html.contains("<dl class=\"changes\">"),
        "what changed is shown: {html}"
    );
    assert!(
        html.contains(r#"href="/admin/audit""#),
        "the nav links the page"
    );
    // The console sign-in itself is in the trail, with its address.
    let html = crate::console::admin_page(&server, "/admin/audit?action=auth.sign_in").await;
    assert!(
        html.contains("auth.sign_in") && html.contains("127.0.0.1"),
        "{html}"
    );
    // A developer is refused, and the nav does not offer it.
    create_user(&server, "dev@example.com", "developer").await;
    let client = crate::console::browser_like();
    crate::console::sign_in(&server, &client, "dev@example.com", USER_PASSWORD).await;
    let response = client
        .get(format!("{}/admin/audit", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let html = crate::console::page(&client, &server, "/admin/tools").await;
    assert!(!html.contains(r#"href="/admin/audit""#));
    server.stop().await;
}

async fn retention(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[]).await;
    server
        .admin(Method::POST, "/teams", Some(json!({"name": "Kept"})))
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(trail(&server, "action=teams.create").await.len(), 1);
    // A change just before a graceful stop is written before the database stops.
    server
        .admin(Method::POST, "/teams", Some(json!({"name": "Last"})))
        .await
        .expect(StatusCode::CREATED);
    server.stop().await;
    common::sql_execute(
        &db,
        "INSERT INTO audit_log (id, at, actor, action, target_kind, outcome) \
         VALUES ('00000000000000000000000000000000', '2020-01-01 00:00:00', 'old@example.com', \
         'teams.create', 'team', 'ok')",
    )
    .await;
    let server = TestServer::start(&db, &[("AUDIT_RETENTION_DAYS", "30")]).await;
    common::eventually(
        "the old entry purged",
        std::time::Duration::from_secs(10),
        || {
            let db = &db;
            async move {
                let left = sql_texts(db, "SELECT actor AS value FROM audit_log").await;
                (!left.contains(&"old@example.com".to_owned())).then_some(left)
            }
        },
    )
    .await;
    assert_eq!(
        trail(&server, "action=teams.create").await.len(),
        2,
        "recent entries stay, the last one before the stop too"
    );
    server.stop().await;
}

both_backends!(every_kind_of_change, console_page, retention);
