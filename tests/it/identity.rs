//! Identity and access over the real server, on SQLite and PostgreSQL: sign-in and lockout,
//! the password policy, users, roles and their permissions, teams and members, and the
//! ScopingActor's cache (one database load per cache miss, however many requests wait).

use crate::common;

use common::{Backend, TestDb, TestServer, USER_PASSWORD, create_user, login, token};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn start(backend: Backend, overrides: &[(&str, &str)]) -> (TestDb, TestServer) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, overrides).await;
    (db, server)
}

/// Sign-in gives a working token; wrong passwords and unknown emails get the same 401; after
/// `MAX_FAILED_LOGIN_ATTEMPTS` the account is locked (the same 401, even with the right
/// password) until the lock ends or an admin sets a new password.
async fn sign_in_and_lockout(backend: Backend) {
    let (_db, server) = start(backend, &[("MAX_FAILED_LOGIN_ATTEMPTS", "3")]).await;
    let signed_in = login(&server, "Admin@Example.com", "admin-password-for-tests").await;
    let body = signed_in.expect(StatusCode::OK);
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["user"]["email"], "admin@example.com");
    assert!(body["user"].get("password_hash").is_none());
    let access = body["access_token"].as_str().unwrap();
    let tools = server.send(Method::GET, "/tools", Some(access), None).await;
    tools.expect(StatusCode::OK);
    // The console's cookie: the same token, HTTP-only, same-site, for /admin only.
    let cookie = signed_in.headers["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with(&format!("mcpgate_session={access}")),
        "{cookie}"
    );
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    let signed_out = server
        .send(Method::POST, "/auth/logout", Some(access), None)
        .await;
    assert_eq!(signed_out.status, StatusCode::NO_CONTENT);
    let cleared = signed_out.headers["set-cookie"].to_str().unwrap();
    assert!(cleared.starts_with("mcpgate_session=;"), "{cleared}");

    create_user(&server, "alice@example.com", "developer").await;
    let wrong = login(&server, "alice@example.com", "not the password at all").await;
    let unknown = login(&server, "nobody@example.com", "not the password at all").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong.body, unknown.body,
        "no hint which of the two was wrong"
    );
    assert!(wrong.message().contains("email or password"));

    login(&server, "alice@example.com", "still not the password").await;
    let locked = login(&server, "alice@example.com", "third wrong password").await;
    // Locked reads like any other refusal (an attacker learns nothing), even with the right
    // password.
    assert_eq!(locked.status, StatusCode::UNAUTHORIZED, "{}", locked.body);
    let still_locked = login(&server, "alice@example.com", USER_PASSWORD).await;
    assert_eq!(still_locked.status, StatusCode::UNAUTHORIZED);
    assert_eq!(still_locked.body, unknown.body);
    let shown = server
        .admin(Method::GET, "/users/alice@example.com", None)
        .await;
    assert!(!shown.expect(StatusCode::OK)["locked_until"].is_null());

    let reset = server
        .admin(
            Method::PUT,
            "/users/alice@example.com",
            Some(json!({"password": "a brand new passphrase"})),
        )
        .await;
    assert!(reset.expect(StatusCode::OK)["locked_until"].is_null());
    login(&server, "alice@example.com", "a brand new passphrase")
        .await
        .expect(StatusCode::OK);
    server.stop().await;
}

/// Every password rule is named in a 422; nothing is stored for a refused user.
async fn password_policy_and_change(backend: Backend) {
    let (_db, server) = start(backend, &[]).await;
    for (password, rule) in [
        ("short", "min-length"),
        ("Password1234!", "known-weak"),
        ("zzzzzzzzzzzzzzzz", "known-weak"),
        ("carol-the-great-1", "contains-email"),
    ] {
        let refused = server
            .admin(
                Method::POST,
                "/users",
                Some(json!({"email": "carol@example.com", "password": password})),
            )
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{password}"
        );
        assert_eq!(refused.body["field"], "password");
        assert!(
            refused.message().contains(&format!("rule {rule}")),
            "{}",
            refused.body
        );
    }
    server
        .admin(Method::GET, "/users/carol@example.com", None)
        .await
        .expect(StatusCode::NOT_FOUND);

    let carol = create_user(&server, "carol@example.com", "developer").await;
    let change = |current: &str, new: &str| {
        server.send(
            Method::POST,
            "/auth/password",
            Some(&carol),
            Some(json!({"current_password": current, "new_password": new})),
        )
    };
    let wrong = change("not my password!", "another good passphrase").await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(wrong.body["field"], "current_password");
    let weak = change(USER_PASSWORD, "letmein").await;
    assert_eq!(weak.body["field"], "new_password", "{}", weak.body);
    change(USER_PASSWORD, "another good passphrase")
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_eq!(
        login(&server, "carol@example.com", USER_PASSWORD)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    login(&server, "carol@example.com", "another good passphrase")
        .await
        .expect(StatusCode::OK);
    server.stop().await;
}

/// Admin CRUD of users; a disabled or deleted user's tokens stop working at once.
async fn users_are_managed_by_admins(backend: Backend) {
    let (_db, server) = start(backend, &[]).await;
    let dave = create_user(&server, "dave@example.com", "developer").await;
    let duplicate = server
        .admin(
            Method::POST,
            "/users",
            Some(json!({"email": "DAVE@example.com", "password": USER_PASSWORD})),
        )
        .await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    let bad = server
        .admin(
            Method::POST,
            "/users",
            Some(json!({"email": "not-an-email", "password": USER_PASSWORD, "role": "root"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.body["field"], "email");

    // A user sees themself, not the list or others.
    server
        .send(Method::GET, "/users/dave@example.com", Some(&dave), None)
        .await
        .expect(StatusCode::OK);
    for path in ["/users", "/users/admin@example.com"] {
        let refused = server.send(Method::GET, path, Some(&dave), None).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}");
        assert!(refused.message().contains("users.manage"));
    }
    let renamed = server
        .send(
            Method::PUT,
            "/users/dave@example.com",
            Some(&dave),
            Some(json!({"full_name": "Dave"})),
        )
        .await;
    assert_eq!(renamed.expect(StatusCode::OK)["full_name"], "Dave");
    let self_promotion = server
        .send(
            Method::PUT,
            "/users/dave@example.com",
            Some(&dave),
            Some(json!({"is_admin": true})),
        )
        .await;
    assert_eq!(self_promotion.status, StatusCode::FORBIDDEN);

    create_user(&server, "erin@example.com", "viewer").await;
    let first = server.admin(Method::GET, "/users?limit=2", None).await;
    let first = first.expect(StatusCode::OK).clone();
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = server
        .admin(
            Method::GET,
            &format!("/users?limit=2&cursor={cursor}"),
            None,
        )
        .await;
    let emails: Vec<&str> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest.expect(StatusCode::OK)["items"].as_array().unwrap())
        .map(|user| user["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        ["admin@example.com", "dave@example.com", "erin@example.com"]
    );

    // Disabling takes effect at once on this replica.
    server
        .send(Method::GET, "/tools", Some(&dave), None)
        .await
        .expect(StatusCode::OK);
    server
        .admin(
            Method::PUT,
            "/users/dave@example.com",
            Some(json!({"is_active": false})),
        )
        .await
        .expect(StatusCode::OK);
    let disabled = server.send(Method::GET, "/tools", Some(&dave), None).await;
    assert_eq!(disabled.status, StatusCode::UNAUTHORIZED);
    assert!(disabled.message().contains("disabled or no longer exists"));
    // A disabled account's right password gets the answer every failed sign-in gets.
    let cannot_sign_in = login(&server, "dave@example.com", USER_PASSWORD).await;
    assert_eq!(cannot_sign_in.status, StatusCode::UNAUTHORIZED);
    assert!(cannot_sign_in.message().contains("locked or disabled"));

    let erin = token("erin@example.com", false);
    server
        .admin(Method::DELETE, "/users/erin@example.com", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let gone = server.send(Method::GET, "/tools", Some(&erin), None).await;
    assert_eq!(gone.status, StatusCode::UNAUTHORIZED);
    let self_delete = server
        .admin(Method::DELETE, "/users/admin@example.com", None)
        .await;
    assert_eq!(self_delete.status, StatusCode::CONFLICT);
    server.stop().await;
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item.as_str().unwrap().to_owned())
        .collect()
}

/// Built-in roles decide what the registry allows; team-scoped roles apply in their team.
async fn roles_decide_permissions(backend: Backend) {
    let (_db, server) = start(backend, &[]).await;
    let viewer = create_user(&server, "vic@example.com", "viewer").await;
    let developer = create_user(&server, "dev@example.com", "developer").await;
    let tool =
        json!({"name": "weather", "url": "https://weather.example/api", "request_type": "GET"});

    let mine = server
        .send(Method::GET, "/rbac/my/permissions", Some(&viewer), None)
        .await;
    let mine = mine.expect(StatusCode::OK).clone();
    let permissions = strings(&mine["permissions"]);
    assert!(permissions.contains(&"tools.read".to_owned()));
    assert!(!permissions.contains(&"tools.create".to_owned()));
    assert!(!permissions.contains(&"tools.execute".to_owned()));
    assert!(mine["personal_team"].is_string());
    assert_eq!(
        mine["teams"][mine["personal_team"].as_str().unwrap()],
        "owner"
    );

    let refused = server
        .send(Method::POST, "/tools", Some(&viewer), Some(tool.clone()))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.message().contains("tools.create"));
    server
        .send(Method::GET, "/tools", Some(&viewer), None)
        .await
        .expect(StatusCode::OK);
    let created = server
        .send(Method::POST, "/tools", Some(&developer), Some(tool))
        .await;
    let id = created.expect(StatusCode::CREATED)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let gateway = server
        .send(Method::DELETE, &format!("/tools/{id}"), Some(&viewer), None)
        .await;
    assert_eq!(gateway.status, StatusCode::FORBIDDEN);
    for path in ["/admin/pool-stats", "/admin/mcp-stats"] {
        let admin_only = server.send(Method::GET, path, Some(&developer), None).await;
        assert_eq!(admin_only.status, StatusCode::FORBIDDEN, "{path}");
    }

    // A team-scoped role grants its permissions for that team only.
    let team = server
        .send(
            Method::POST,
            "/teams",
            Some(&developer),
            Some(json!({"name": "Weather desk"})),
        )
        .await;
    let team_id = team.expect(StatusCode::CREATED)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Only to the team's members (the hostile-user review's M6: a non-member made team_admin).
    let not_member = server
        .admin(
            Method::POST,
            "/users/vic@example.com/roles",
            Some(json!({"role": "team_admin", "team_id": team_id})),
        )
        .await;
    assert_eq!(not_member.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(not_member.message().contains("not a member"));
    server
        .send(
            Method::POST,
            &format!("/teams/{team_id}/members"),
            Some(&developer),
            Some(json!({"email": "vic@example.com"})),
        )
        .await
        .expect(StatusCode::OK);
    let assigned = server
        .admin(
            Method::POST,
            "/users/vic@example.com/roles",
            Some(json!({"role": "team_admin", "team_id": team_id})),
        )
        .await;
    let assigned = assigned.expect(StatusCode::OK).clone();
    assert!(!strings(&assigned["permissions"]).contains(&"tools.create".to_owned()));
    assert!(strings(&assigned["team_permissions"][&team_id]).contains(&"tools.create".to_owned()));
    let unknown_role = server
        .admin(
            Method::POST,
            "/users/vic@example.com/roles",
            Some(json!({"role": "root"})),
        )
        .await;
    assert_eq!(unknown_role.status, StatusCode::UNPROCESSABLE_ENTITY);
    let by_developer = server
        .send(
            Method::POST,
            "/users/vic@example.com/roles",
            Some(&developer),
            Some(json!({"role": "platform_admin"})),
        )
        .await;
    assert_eq!(by_developer.status, StatusCode::FORBIDDEN);

    // platform_admin makes an admin; removing a role takes it away.
    server
        .admin(
            Method::POST,
            "/users/dev@example.com/roles",
            Some(json!({"role": "platform_admin"})),
        )
        .await
        .expect(StatusCode::OK);
    server
        .send(Method::GET, "/admin/pool-stats", Some(&developer), None)
        .await
        .expect(StatusCode::OK);
    server
        .admin(
            Method::DELETE,
            &format!("/users/vic@example.com/roles/team_admin?team_id={team_id}"),
            None,
        )
        .await
        .expect(StatusCode::NO_CONTENT);
    let after = server
        .send(Method::GET, "/rbac/my/permissions", Some(&viewer), None)
        .await;
    assert!(
        after.expect(StatusCode::OK)["team_permissions"]
            .as_object()
            .unwrap()
            .is_empty()
    );
    server.stop().await;
}

/// Teams: creators own them, owners manage members, non-members do not see them, personal
/// teams keep to their owner, the last owner stays.
async fn teams_and_members(backend: Backend) {
    let (_db, server) = start(backend, &[]).await;
    let owner = create_user(&server, "olga@example.com", "developer").await;
    let member = create_user(&server, "mia@example.com", "developer").await;
    let outsider = create_user(&server, "otto@example.com", "viewer").await;

    let team = server
        .send(
            Method::POST,
            "/teams",
            Some(&owner),
            Some(json!({"name": "Platform team", "description": "Runs the platform"})),
        )
        .await;
    let team = team.expect(StatusCode::CREATED).clone();
    let id = team["id"].as_str().unwrap().to_owned();
    assert_eq!(team["members"][0]["email"], "olga@example.com");
    assert_eq!(team["members"][0]["role"], "owner");
    let no_create = server
        .send(
            Method::POST,
            "/teams",
            Some(&outsider),
            Some(json!({"name": "Mine"})),
        )
        .await;
    assert_eq!(no_create.status, StatusCode::FORBIDDEN);

    let add = |who: &str, as_token: &str| {
        let body = json!({"email": who});
        let path = format!("/teams/{id}/members");
        let as_token = as_token.to_owned();
        let server = &server;
        async move {
            server
                .send(Method::POST, &path, Some(&as_token), Some(body))
                .await
        }
    };
    let added = add("mia@example.com", &owner).await;
    assert_eq!(
        added.expect(StatusCode::OK)["members"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let not_a_user = add("ghost@example.com", &owner).await;
    assert_eq!(not_a_user.status, StatusCode::UNPROCESSABLE_ENTITY);
    let by_member = add("otto@example.com", &member).await;
    assert_eq!(by_member.status, StatusCode::FORBIDDEN);
    let by_outsider = add("otto@example.com", &outsider).await;
    assert_eq!(
        by_outsider.status,
        StatusCode::NOT_FOUND,
        "no existence leak"
    );

    let listed = server
        .send(Method::GET, "/teams", Some(&member), None)
        .await;
    let names: Vec<&str> = listed.expect(StatusCode::OK)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|team| team["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names.len(),
        2,
        "mia's personal team and the platform team: {names:?}"
    );
    assert!(names.contains(&"Platform team"));
    let outsiders_view = server
        .send(Method::GET, &format!("/teams/{id}"), Some(&outsider), None)
        .await;
    assert_eq!(outsiders_view.status, StatusCode::NOT_FOUND);
    let all = server.admin(Method::GET, "/teams", None).await;
    assert_eq!(
        all.expect(StatusCode::OK)["items"]
            .as_array()
            .unwrap()
            .len(),
        5
    );

    // Membership shows in the member's grants at once.
    let mias = server
        .send(Method::GET, "/rbac/my/permissions", Some(&member), None)
        .await;
    assert_eq!(mias.expect(StatusCode::OK)["teams"][&id], "member");

    let personal = server
        .send(Method::GET, "/rbac/my/permissions", Some(&owner), None)
        .await;
    let personal = personal.expect(StatusCode::OK)["personal_team"]
        .as_str()
        .unwrap()
        .to_owned();
    let into_personal = server
        .send(
            Method::POST,
            &format!("/teams/{personal}/members"),
            Some(&owner),
            Some(json!({"email": "mia@example.com"})),
        )
        .await;
    assert_eq!(into_personal.status, StatusCode::UNPROCESSABLE_ENTITY);

    let last_owner = server
        .send(
            Method::DELETE,
            &format!("/teams/{id}/members/olga@example.com"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(last_owner.status, StatusCode::CONFLICT);
    server
        .send(
            Method::DELETE,
            &format!("/teams/{id}/members"),
            Some(&owner),
            Some(json!({"email": "mia@example.com"})),
        )
        .await
        .expect(StatusCode::NO_CONTENT);
    let gone = server
        .send(Method::GET, &format!("/teams/{id}"), Some(&member), None)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    server
        .send(Method::DELETE, &format!("/teams/{id}"), Some(&owner), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    server.stop().await;
}

/// A burst of requests from a user whose grants are not cached costs one database load;
/// with the cache warm, none. A pool of 2 is plenty.
async fn grants_are_loaded_once_per_miss(backend: Backend) {
    let (_db, server) = start(backend, &[("DB_POOL_SIZE", "2")]).await;
    let cold = create_user(&server, "cold@example.com", "developer").await;
    let loads = || async {
        server.pool_stats().await["units_by_name"]["identity.load"]
            .as_u64()
            .unwrap_or(0)
    };
    let before = loads().await;
    let burst =
        (0..200).map(|_| server.send(Method::GET, "/rbac/my/permissions", Some(&cold), None));
    for reply in futures_util::future::join_all(burst).await {
        reply.expect(StatusCode::OK);
    }
    let after_cold = loads().await;
    assert_eq!(after_cold - before, 1, "200 waiting requests, one load");
    let warm = (0..200).map(|_| server.send(Method::GET, "/tools", Some(&cold), None));
    for reply in futures_util::future::join_all(warm).await {
        reply.expect(StatusCode::OK);
    }
    assert_eq!(loads().await, after_cold, "a warm cache loads nothing");
    let stats = server.pool_stats().await;
    assert_eq!(stats["checkout_timeouts"], 0);
    server.stop().await;
}

both_backends!(
    sign_in_and_lockout,
    password_policy_and_change,
    users_are_managed_by_admins,
    roles_decide_permissions,
    teams_and_members,
    grants_are_loaded_once_per_miss,
);

/// PEM text of DER bytes.
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// A fresh key pair as PEM files: ES256 (P-256) or RS256 (RSA 2048).
pub(crate) fn key_files(dir: &std::path::Path, algorithm: &str) -> (String, String) {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
    use aws_lc_rs::signature::KeyPair;
    let (private_der, public_der): (Vec<u8>, Vec<u8>) = match algorithm {
        "ES256" => {
            let pair = aws_lc_rs::signature::EcdsaKeyPair::generate(
                &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            )
            .unwrap();
            let private = pair.to_pkcs8v1().unwrap().as_ref().to_vec();
            let public: PublicKeyX509Der = pair.public_key().as_der().unwrap();
            (private, public.as_ref().to_vec())
        }
        _ => {
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
            let private: Pkcs8V1Der = pair.as_der().unwrap();
            let public: PublicKeyX509Der = pair.public_key().as_der().unwrap();
            (private.as_ref().to_vec(), public.as_ref().to_vec())
        }
    };
    let private_path = dir.join(format!("{algorithm}-private.pem"));
    let public_path = dir.join(format!("{algorithm}-public.pem"));
    std::fs::write(&private_path, pem("PRIVATE KEY", &private_der)).unwrap();
    std::fs::write(&public_path, pem("PUBLIC KEY", &public_der)).unwrap();
    (
        private_path.display().to_string(),
        public_path.display().to_string(),
    )
}

/// RS256 and ES256 with configured key pairs: sign-in tokens carry the algorithm and work; an
/// HS256 token is refused; a key that does not load stops the start naming the variable.
async fn asymmetric_signing_keys(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    for algorithm in ["ES256", "RS256"] {
        let (private, public) = key_files(dir.path(), algorithm);
        let overrides = [
            ("JWT_ALGORITHM", algorithm),
            ("JWT_PRIVATE_KEY_PATH", private.as_str()),
            ("JWT_PUBLIC_KEY_PATH", public.as_str()),
        ];
        let (_db, server) = start(backend, &overrides).await;
        let signed_in = login(&server, "admin@example.com", "admin-password-for-tests").await;
        let access = signed_in.expect(StatusCode::OK)["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let header = jsonwebtoken::decode_header(&access).unwrap();
        assert_eq!(format!("{:?}", header.alg), algorithm);
        server
            .send(Method::GET, "/tools", Some(&access), None)
            .await
            .expect(StatusCode::OK);
        let hs256 = server
            .send(
                Method::GET,
                "/tools",
                Some(&token("admin@example.com", true)),
                None,
            )
            .await;
        assert_eq!(hs256.status, StatusCode::UNAUTHORIZED, "{}", hs256.body);
        server.stop().await;
    }
    let (private, _) = key_files(dir.path(), "ES256");
    let (_, other_public) = key_files(dir.path(), "RS256");
    let mismatched = mcpgate::config::Settings::from_lookup(&|name| match name {
        "JWT_ALGORITHM" => Some("ES256".into()),
        "JWT_PRIVATE_KEY_PATH" => Some(private.clone()),
        "JWT_PUBLIC_KEY_PATH" => Some(other_public.clone()),
        _ => None,
    });
    let error = mismatched.expect_err("a mismatched key pair is refused");
    assert!(error.variable.starts_with("JWT_"), "{error}");
    let missing = mcpgate::config::Settings::from_lookup(&|name| {
        (name == "JWT_ALGORITHM").then(|| "RS256".to_owned())
    });
    assert_eq!(missing.unwrap_err().variable, "JWT_PRIVATE_KEY_PATH");
}

both_backends!(asymmetric_signing_keys);
