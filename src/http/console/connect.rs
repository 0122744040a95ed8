//! The connect panel of a virtual server: its full Streamable HTTP and SSE URLs, a token for
//! this server made in place (shown once), and ready-to-paste configurations for common
//! clients, filled with the URL and, once made, the token.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ConsoleRefusal, ConsoleUser};
use crate::auth::scope::TokenScope;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::registry::Entity;
use crate::registry::servers::Servers;
use crate::service::registry as records;
use crate::service::tokens::{self, TokenCreate};

/// What stands in for the token until one is made.
const PLACEHOLDER: &str = "YOUR_TOKEN";

/// The 2026-07-28 request the curl example sends.
const MODERN: &str = "2026-07-28";

/// `GET /admin/servers/{id}/connect`.
pub async fn page(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: ConsoleUser,
    id: web::Path<String>,
) -> HttpResponse {
    render(&state, &request, &user, &id, StatusCode::OK, None, None).await
}

/// The "token for this server" form.
#[derive(Deserialize)]
pub struct TokenForm {
    csrf: Option<String>,
    name: String,
    expires_in_days: Option<u32>,
}

/// `POST /admin/servers/{id}/connect`: makes a token restricted to this server and shows the
/// configurations with it (once).
pub async fn create_token(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: ConsoleUser,
    id: web::Path<String>,
    form: web::Form<TokenForm>,
) -> Result<HttpResponse, ConsoleRefusal> {
    let form = form.into_inner();
    user.check_csrf(form.csrf.as_deref())?;
    let input = TokenCreate {
        name: form.name,
        expires_in_days: form.expires_in_days,
        scope: Some(TokenScope {
            server_id: Some(id.to_string()),
            ..TokenScope::default()
        }),
    };
    Ok(
        match tokens::issue(&state.services, &user.principal, input).await {
            Ok(created) => {
                let token = created.access_token;
                render(
                    &state,
                    &request,
                    &user,
                    &id,
                    StatusCode::CREATED,
                    Some(&token),
                    None,
                )
                .await
            }
            Err(error) => {
                use actix_web::ResponseError;
                let status = error.status_code();
                let message = match &error {
                    ApiError::InvalidField { field, message } => format!("{field}: {message}"),
                    other => other.to_string(),
                };
                render(&state, &request, &user, &id, status, None, Some(&message)).await
            }
        },
    )
}

async fn render(
    state: &AppState,
    request: &HttpRequest,
    user: &ConsoleUser,
    id: &str,
    status: StatusCode,
    token: Option<&str>,
    error: Option<&str>,
) -> HttpResponse {
    let mut context = user.context("servers");
    let record = match records::get::<Servers>(&state.services, &user.principal, id).await {
        Ok(record) => record,
        Err(refused) => {
            use actix_web::ResponseError;
            context.insert("error", &refused.to_string());
            context.insert("server", &Value::Null);
            context.insert("clients", &Vec::<Value>::new());
            return state
                .console
                .page(refused.status_code(), "connect.html", &context);
        }
    };
    let view = Servers::view(record);
    let (scheme, host) = crate::http::public_origin(request);
    let base = format!("{scheme}://{host}/servers/{}", view.id);
    let mcp = format!("{base}/mcp");
    let sse = format!("{base}/sse");
    let label = client_label(&view.name);
    context.insert(
        "server",
        &json!({"id": view.id, "name": view.name, "mcp": mcp, "sse": sse}),
    );
    context.insert("token", &token);
    context.insert(
        "clients",
        &clients(&label, &mcp, token.unwrap_or(PLACEHOLDER)),
    );
    context.insert(
        "may_create_token",
        &user
            .principal
            .permits("tokens.create", crate::auth::On::Platform),
    );
    context.insert("error", &error);
    state.console.page(status, "connect.html", &context)
}

/// The name a client lists the server under: `mcpgate-` and the server's name, lower-case
/// ASCII letters, digits and dashes.
fn client_label(name: &str) -> String {
    let slug = crate::registry::gateways::slugify(name);
    if slug.is_empty() {
        "mcpgate".to_owned()
    } else {
        format!("mcpgate-{slug}")
    }
}

/// Ready-to-paste configurations of common clients for the Streamable HTTP endpoint `url`.
pub fn clients(label: &str, url: &str, token: &str) -> Vec<Value> {
    let bearer = format!("Bearer {token}");
    let pretty = |value: Value| serde_json::to_string_pretty(&value).unwrap_or_default();
    // Each with about as many rows as its text takes (long lines wrap).
    let sized = |mut client: Value| {
        let rows = client["text"].as_str().map_or(1, |text| {
            text.lines()
                .map(|line| 1 + line.chars().count() / 100)
                .sum()
        });
        client["rows"] = json!(rows.clamp(2, 24));
        client
    };
    [
        json!({
            "id": "claude-code",
            "title": "Claude Code",
            "hint": "Run in a terminal.",
            "text": format!(
                "claude mcp add --transport http {label} {url} --header \"Authorization: {bearer}\""
            ),
        }),
        json!({
            "id": "claude-desktop",
            "title": "Claude Desktop",
            "hint": "In claude_desktop_config.json (Settings → Developer → Edit Config); bridged by mcp-remote, which needs Node.js.",
            "text": pretty(json!({"mcpServers": {label: {
                "command": "npx",
                "args": ["-y", "mcp-remote", url, "--header", "Authorization:${MCPGATE_AUTH}"],
                "env": {"MCPGATE_AUTH": bearer},
            }}})),
        }),
        json!({
            "id": "vscode",
            "title": "VS Code",
            "hint": "In .vscode/mcp.json of a workspace (or the user mcp.json).",
            "text": pretty(json!({"servers": {label: {
                "type": "http", "url": url, "headers": {"Authorization": bearer},
            }}})),
        }),
        json!({
            "id": "cursor",
            "title": "Cursor",
            "hint": "In ~/.cursor/mcp.json (or .cursor/mcp.json of a project).",
            "text": pretty(json!({"mcpServers": {label: {
                "url": url, "headers": {"Authorization": bearer},
            }}})),
        }),
        json!({
            "id": "inspector",
            "title": "MCP Inspector",
            "hint": "Lists the tools from a terminal; without --cli it opens the Inspector in a browser.",
            "text": format!(
                "npx @modelcontextprotocol/inspector --cli --server-url {url} --transport http --header \"Authorization: {bearer}\" --method tools/list"
            ),
        }),
        json!({
            "id": "curl",
            "title": "curl",
            "hint": "One stateless 2026-07-28 request: the tools this server offers.",
            "text": curl(url, &bearer, &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})),
        }),
    ]
    .into_iter()
    .map(sized)
    .collect()
}

/// A word quoted for a POSIX shell.
fn quoted(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// `body` (a JSON-RPC request without `_meta`) as one stateless 2026-07-28 request to `url`
/// with curl: the `_meta` and the headers that revision requires added.
pub fn curl(url: &str, bearer: &str, body: &Value) -> String {
    let mut body = body.clone();
    body["params"]["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": "curl", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let method = body["method"].as_str().unwrap_or_default().to_owned();
    let mut headers = vec![
        format!("Authorization: {bearer}"),
        "Content-Type: application/json".to_owned(),
        "Accept: application/json, text/event-stream".to_owned(),
        format!("MCP-Protocol-Version: {MODERN}"),
        format!("Mcp-Method: {method}"),
    ];
    let name = match method.as_str() {
        "tools/call" | "prompts/get" => body["params"]["name"].as_str(),
        "resources/read" => body["params"]["uri"].as_str(),
        _ => None,
    };
    if let Some(name) = name {
        // A name that is not plain ASCII travels in the spec's Base64 form.
        let value = crate::protocol::encode_header(name);
        headers.push(format!("Mcp-Name: {value}"));
    }
    let mut command = format!("curl -sS {}", quoted(url));
    for header in headers {
        command.push_str(&format!(" \\\n  -H {}", quoted(&header)));
    }
    command.push_str(&format!(" \\\n  -d {}", quoted(&body.to_string())));
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_curl_command_survives_the_shell() {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                          "params": {"name": "météo", "arguments": {"city": "it's $HOME `x`"}}});
        let command = curl("http://127.0.0.1:1/mcp", "Bearer t", &body);
        // The shell hands curl exactly these words: print them instead.
        let printed = std::process::Command::new("sh")
            .arg("-c")
            .arg(command.replacen("curl -sS", "printf '%s\\n'", 1))
            .output()
            .unwrap();
        let words = String::from_utf8(printed.stdout).unwrap();
        let words: Vec<&str> = words.lines().collect();
        assert_eq!(words[0], "http://127.0.0.1:1/mcp");
        assert!(words.contains(&"Mcp-Method: tools/call"), "{words:?}");
        assert!(
            words.contains(&"Mcp-Name: =?base64?bcOpdMOpbw==?="),
            "{words:?}"
        );
        let sent: Value = serde_json::from_str(words.last().unwrap()).unwrap();
        assert_eq!(sent["params"]["arguments"]["city"], "it's $HOME `x`");
        assert_eq!(
            sent["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"],
            MODERN
        );
    }

    #[test]
    fn the_json_configurations_parse_and_carry_the_url_and_token() {
        let url = "https://gw.example/servers/s1/mcp";
        let configs = clients(&client_label("Desk tools"), url, "tok-123");
        for config in &configs {
            let text = config["text"].as_str().unwrap();
            assert!(text.contains(url) && text.contains("tok-123"), "{text}");
            if text.starts_with('{') {
                let parsed: Value = serde_json::from_str(text).expect("valid JSON");
                assert!(parsed.to_string().contains("mcpgate-desk-tools"));
            }
        }
        assert_eq!(client_label("!!"), "mcpgate");
    }
}
