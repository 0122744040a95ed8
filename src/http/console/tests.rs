//! The console's templates render with what their handlers give them.

use super::*;

#[test]
fn uptime_reads_in_two_units() {
    let secs = std::time::Duration::from_secs;
    assert_eq!(uptime(secs(12)), "12 s");
    assert_eq!(uptime(secs(5 * 60 + 3)), "5 min");
    assert_eq!(uptime(secs(2 * 3600 + 7 * 60)), "2 h 7 min");
    assert_eq!(uptime(secs(3 * 86_400 + 4 * 3600 + 59)), "3 d 4 h");
}

/// Every page renders with the data its handler gives it (an empty list where it has none).
#[test]
fn moments_read_the_same_everywhere() {
    let at = |text: &str| chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap();
    let now = at("2026-12-04 12:00:00");
    assert_eq!(
        super::when_html("2026-12-04T11:57:10.123456", now),
        r#"<time datetime="2026-12-04T11:57:10Z">2026-12-04 11:57:10 UTC</time> <small class="ago">2 min ago</small>"#
    );
    let ago = |value: &str| {
        let html = super::when_html(value, now);
        html[html.find("\"ago\">").unwrap() + 6..html.len() - 8].to_owned()
    };
    assert_eq!(ago("2026-12-04T11:59:30Z"), "just now");
    assert_eq!(ago("2026-12-04 09:00:00"), "3 h ago");
    assert_eq!(ago("2026-12-01T12:00:00"), "3 days ago");
    assert_eq!(ago("2027-01-03T12:00:00"), "in 30 days");
    // Anything else is shown as it is, escaped.
    assert_eq!(
        super::when_html("<b>never</b>", now),
        "&lt;b&gt;never&lt;/b&gt;"
    );
}

#[test]
fn pages_render() {
    let console = Console::new(crate::secrets::SecretBox::new("test-secret")).unwrap();
    let mut context = tera::Context::new();
    context.insert(
        "user",
        &json!({"email": "a@example.com", "is_admin": true, "manages_users": true}),
    );
    for (key, value) in [
        ("csrf", json!("x")),
        ("page", json!("users")),
        ("flash", json!(null)),
        ("error", json!("something")),
        (
            "users",
            json!([{"email": "a@example.com", "full_name": "", "is_admin": true, "is_active": true, "locked": false}]),
        ),
        ("roles", json!(["viewer"])),
        ("default_role", json!("viewer")),
        (
            "teams",
            json!([{"id": "t", "name": "T", "is_personal": false, "manageable": true, "description": null, "members": [{"email": "a@example.com", "role": "owner"}]}]),
        ),
        ("may_create", json!(true)),
        ("passwords", json!(true)),
        (
            "providers",
            json!([{"href": "/admin/sso/0?next=%2Fadmin", "label": "Example IdP"}]),
        ),
        ("email", json!("a@example.com")),
        (
            "counts",
            json!([{"key": "tools", "label": "Tools", "value": 1}]),
        ),
        (
            "calls",
            json!({"per_minute": "0.0", "total": 0, "error_rate": "–", "latency": "–"}),
        ),
        (
            "pool",
            json!({"backend": "sqlite", "in_use": 0, "idle": 1, "waiting": 0, "checkout_timeouts": 0, "retries": 0, "breaker": "closed"}),
        ),
        (
            "upstreams",
            json!([{"id": "g", "name": "u", "url": "http://u", "reachable": true, "health": "online", "last_seen": "2026-12-04T10:00:00.123"}]),
        ),
        (
            "tools",
            json!([{"id": "1", "name": "t", "kind": "REST", "description": "", "visibility": "public"}]),
        ),
        ("q", json!("")),
        (
            "form",
            json!({"name": "", "url": "", "request_type": "GET", "description": "", "input_schema": ""}),
        ),
        ("methods", json!(["GET"])),
        ("tool", json!({"name": "t", "description": ""})),
        (
            "fields",
            json!([{"name": "a", "kind": "string", "required": true, "description": "", "value": "", "label": "A", "options": null},
                          {"name": "m", "kind": "members", "label": "M", "required": false, "value": "", "options": [{"value": "t", "label": "T", "checked": true}]},
                          {"name": "v", "kind": "choice", "label": "V", "required": false, "value": "team", "options": ["public", "team"]},
                          {"name": "t", "kind": "team", "label": "T", "required": false, "value": "", "options": [{"value": "t", "label": "T"}]},
                          {"name": "j", "kind": "json", "label": "J", "required": false, "value": "{}", "options": null},
                          {"name": "b", "kind": "boolean", "required": false, "description": "", "value": "", "label": "B", "options": null},
                          {"name": "c", "kind": "integer", "required": false, "description": "", "value": "", "label": "C", "options": null},
                          {"name": "d", "kind": "object", "required": false, "description": "", "value": "", "label": "D", "options": null, "error": "not JSON"},
                          {"name": "e", "kind": "enum", "required": true, "description": "", "value": "x", "label": "E", "options": ["x", "y"], "error": null}]),
        ),
        ("result", json!("{}")),
        ("curl", json!("curl -sS 'http://h/mcp'")),
        (
            "content",
            json!([{"kind": "text", "text": "t"}, {"kind": "image", "src": "data:image/png;base64,AA==", "mime": "image/png"},
                   {"kind": "link", "uri": "file:///a", "href": null, "name": "a"},
                   {"kind": "link", "uri": "https://a", "href": "https://a", "name": "a"}, {"kind": "note", "text": "n"}]),
        ),
        ("structured", json!("{}")),
        ("next", json!("/admin/oauth/authorize?client_id=x")),
        (
            "apps",
            json!([{"client_id": "c", "client_name": "App", "resource": "http://h/mcp",
                    "connected_at": "2026-12-04T10:00:00", "refreshed_at": "2026-12-04T10:00:00"}]),
        ),
        (
            "request",
            json!({"client_name": "App", "client_id": "c", "resource": "http://h/mcp", "redirect_host": "127.0.0.1",
                   "response_type": "code", "redirect_uri": "http://127.0.0.1/cb", "code_challenge": "x",
                   "code_challenge_method": "S256", "state": "s", "resource_param": null, "scope": null}),
        ),
        ("is_error", json!(false)),
        ("elapsed_ms", json!("1.0")),
        ("servers", json!([{"id": "s", "name": "S"}])),
        (
            "items",
            json!([{"id": "i", "name": "I", "enabled": false, "tags": ["a"], "visibility": "team",
                    "description": null, "uri": "docs://x", "gateway_id": "g", "url": "http://g",
                    "transport": "sse", "reachable": true, "last_seen_at": "2026-12-04T10:00:00.5",
                    "tool_ids": ["t"], "resource_ids": [], "prompt_ids": [],
                    "may_update": true, "may_delete": true, "annotations": {"readOnlyHint": true}}]),
        ),
        (
            "filters",
            json!({"path": "servers", "q": "", "tag": "a", "team": "", "tags": ["a"],
                   "teams": [{"id": "t", "name": "T"}], "active": true,
                   "actor": "", "action": "", "target": "", "outcome": "",
                   "request_id": "", "level": "", "upstream": ""}),
        ),
        (
            "pager",
            json!({"page": 1, "pages": 2, "total": 30, "prev": null, "next": "/admin/x?page=2"}),
        ),
        ("federated", json!({"i": ["g-t"]})),
        ("next", json!("/admin/audit?cursor=x")),
        (
            "activity",
            json!({"g": {"breaker": "open", "consecutive_failures": 3, "calls": 4, "failures": 3,
                         "p50": "≤ 5 ms", "p95": "–", "hours": [{"level": "bad", "label": "10:00 UTC: 4 calls, 3 failed"}]}}),
        ),
        (
            "account",
            json!({"email": "a@example.com", "full_name": "A", "is_admin": true, "password_changed_at": "2026-12-04T10:00:00"}),
        ),
        ("errors", json!({"confirm_password": "does not match"})),
        (
            "server",
            json!({"id": "s", "name": "S", "mcp": "http://x/servers/s/mcp", "sse": "http://x/servers/s/sse"}),
        ),
        ("token", json!("tok")),
        ("levels", json!(["error", "info"])),
        ("version", json!("0.1.0")),
        ("upstream_names", json!({"g": "G"})),
        (
            "setup",
            json!({"show": true, "has_tools": false, "has_servers": false, "may_register": true}),
        ),
        (
            "tables",
            json!([{"id": "tools", "title": "Per tool", "rows": [{"name": "t", "calls": 3, "failures": 1, "error_rate": "33.3 %",
                    "p50": "4.1 ms", "p95": "5.0 ms", "p99": "5.0 ms",
                    "last_call": "2026-12-04T10:00:00",
                    "last_error": "boom",
                    "last_error_at": "2026-12-04T10:00:00"}]}]),
        ),
        (
            "chart",
            json!({"bars": [{"x": "0", "width": "9", "y": "10", "height": "150", "failed_y": "150", "failed_height": "10", "title": "t"}],
                   "per": "minute", "top": 3, "middle": 1.5, "start": "10:00", "half": "10:30", "end": "11:00", "total": 3, "failed": 1}),
        ),
        (
            "ranges",
            json!([{"value": "1h", "current": true}, {"value": "7d", "current": false}]),
        ),
        ("uptime", json!("5 min")),
        ("capacity", json!(5000)),
        ("total", json!(1)),
        (
            "lines",
            json!([{"at": "2026-12-04 10:00:00.000 UTC", "level": "WARN", "target": "mcpgate::x", "message": "m",
                    "fields": "a=1", "request_id": "r", "upstream": "g"}]),
        ),
        ("may_create_token", json!(true)),
        (
            "clients",
            json!([{"id": "vscode", "title": "VS Code", "hint": "h", "text": "{}", "rows": 2}]),
        ),
        (
            "entries",
            json!([{"at": "2026-12-04T10:00:00", "actor": "a@example.com",
                    "action": "tools.update", "kind": "tool", "target": "t", "outcome": "ok", "detail": "",
                    "client_ip": "127.0.0.1", "request_id": "r", "changes": [{"field": "url", "before": "a", "after": "b"}]}]),
        ),
        ("load_error", json!("The list could not be read")),
        ("may_export", json!(true)),
        ("may_import", json!(true)),
        (
            "transfer_form",
            json!({"conflict": "rename", "dry_run": true, "document": "{}"}),
        ),
        (
            "report",
            json!({"dry_run": true, "source_format": "mcpgate", "summary": {"create": 1},
                   "items": [{"kind": "tool", "name": "t", "action": "rename", "new_name": "t-2"},
                             {"kind": "gateway", "name": "g", "action": "failed", "message": "unreachable"}],
                   "secrets_missing": [{"kind": "tool", "name": "t", "field": "headers.X"}],
                   "warnings": ["roots are not imported"]}),
        ),
        ("title", json!("Things")),
        ("singular", json!("Thing")),
        ("path", json!("servers")),
        ("name", json!("I")),
        ("action", json!("/admin/servers/i/edit")),
        ("back", json!("/admin/servers")),
        (
            "tokens",
            json!([{"id": "k", "name": "ci", "server": "any", "revoked": false, "limits": "none",
                    "expires_at": "2027-01-01T00:00:00",
                    "created_at": "2026-12-04T10:00:00",
                    "last_used_at": "2026-12-04T10:00:00"},
                   {"id": "l", "name": "old", "server": "S", "revoked": true, "limits": "none", "expires_at": null,
                    "created_at": "2026-12-04T10:00:00",
                    "last_used_at": null}]),
        ),
        ("created", json!({"name": "ci", "access_token": "secret"})),
        (
            "gateways",
            json!([{"id": "g", "name": "G", "url": "http://g", "transport": "sse", "reachable": false, "last_seen": "never", "tools": ["g-t"]}]),
        ),
    ] {
        context.insert(key, &value);
    }
    let pages = [
        "gateways.html",
        "login.html",
        "dashboard.html",
        "tools.html",
        "run.html",
        "registry.html",
        "edit.html",
        "problem.html",
        "tokens.html",
        "users.html",
        "teams.html",
        "audit.html",
        "account.html",
        "connect.html",
        "logs.html",
        "metrics.html",
        "not_found.html",
        "transfer.html",
        "consent.html",
        "signed_in.html",
        "moving_on.html",
    ];
    for page in pages {
        if let Err(error) = console.tera.render(page, &context) {
            panic!("{page}: {error:?}");
        }
    }
}
