//! Gateways: upstream MCP server records. Connecting to them is federation's work; here they
//! are stored and validated.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use self::stdio::{command_line, stdio_command};
use super::validate::{
    headers as validate_headers, http_url, invalid, optional_text, required_text, tags,
};
use super::{
    Change, Entity, Invalid, ItemMeta, Visibility, item_meta, new_id, nullable, taken,
    to_json_text, update_meta,
};
use crate::db::registry::GatewayRow;
use crate::upstream::process::{ProcessOptions, StoredCommand};

pub use crate::db::stored::Transport;

/// Credentials the gateway sends to an upstream (stored encrypted, never shown again).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum GatewayAuth {
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: String,
    },
    /// `Authorization: Basic …`.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// Arbitrary headers (an API key header, say).
    Headers {
        /// Header names and values.
        headers: BTreeMap<String, String>,
    },
    /// OAuth 2.1 with the gateway's own client (the client credentials grant): one token for
    /// every caller, fetched and renewed before it expires. Without `token_url`, the
    /// authorization server is discovered from the upstream's 401.
    #[serde(rename = "oauth2_client_credentials")]
    OAuthClientCredentials {
        /// The token endpoint.
        #[serde(default)]
        token_url: Option<String>,
        /// The gateway's client id.
        client_id: String,
        /// Its secret.
        client_secret: String,
        /// The scope to ask for.
        #[serde(default)]
        scope: Option<String>,
        /// The resource indicator (default: what the upstream says it is, else its URL).
        #[serde(default)]
        resource: Option<String>,
    },
    /// OAuth 2.1 token exchange (RFC 8693): each user's calls carry a token the upstream's
    /// authorization server exchanged for the gateway's signed assertion of who they are; the
    /// server must trust the gateway's public key (an asymmetric `JWT_ALGORITHM`).
    #[serde(rename = "oauth2_token_exchange")]
    OAuthTokenExchange {
        /// The token endpoint.
        #[serde(default)]
        token_url: Option<String>,
        /// The gateway's client id.
        client_id: String,
        /// Its secret.
        #[serde(default)]
        client_secret: Option<String>,
        /// Who the assertions are for (default: the authorization server's issuer).
        #[serde(default)]
        audience: Option<String>,
        /// The scope to ask for.
        #[serde(default)]
        scope: Option<String>,
        /// The resource indicator (default: what the upstream says it is, else its URL).
        #[serde(default)]
        resource: Option<String>,
    },
    /// OAuth 2.1 per user: each user connects their account once in the console (the
    /// authorization code flow with PKCE) and their calls carry their own token. Endpoints not
    /// given are discovered from the upstream's 401; without `client_id` the gateway registers
    /// itself (RFC 7591). Until its owner connects, nothing is discovered.
    #[serde(rename = "oauth2_user")]
    OAuthUser {
        /// The authorization endpoint.
        #[serde(default)]
        authorization_url: Option<String>,
        /// The token endpoint.
        #[serde(default)]
        token_url: Option<String>,
        /// The gateway's client id there.
        #[serde(default)]
        client_id: Option<String>,
        /// Its secret.
        #[serde(default)]
        client_secret: Option<String>,
        /// The scope to ask for (`offline_access` keeps users connected past their token).
        #[serde(default)]
        scope: Option<String>,
        /// The resource indicator (default: what the upstream says it is, else its URL).
        #[serde(default)]
        resource: Option<String>,
    },
}

impl GatewayAuth {
    /// The stored kind.
    pub fn kind(&self) -> &'static str {
        match self {
            GatewayAuth::Bearer { .. } => "bearer",
            GatewayAuth::Basic { .. } => "basic",
            GatewayAuth::Headers { .. } => "headers",
            GatewayAuth::OAuthClientCredentials { .. } => "oauth2_client_credentials",
            GatewayAuth::OAuthUser { .. } => "oauth2_user",
            GatewayAuth::OAuthTokenExchange { .. } => "oauth2_token_exchange",
        }
    }

    /// The headers to send, validated.
    pub fn headers(&self) -> Result<BTreeMap<String, String>, Invalid> {
        use base64::Engine;
        let mut headers = BTreeMap::new();
        match self {
            GatewayAuth::Bearer { token } => {
                let token = required_text("auth.token", token, 8192)?;
                headers.insert("Authorization".to_owned(), format!("Bearer {token}"));
            }
            GatewayAuth::Basic { username, password } => {
                let username = required_text("auth.username", username, 256)?;
                if username.contains(':') {
                    return Err(invalid("auth.username", "must not contain ':'"));
                }
                let encoded = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{password}"));
                headers.insert("Authorization".to_owned(), format!("Basic {encoded}"));
            }
            GatewayAuth::Headers { headers: given } => {
                if given.is_empty() {
                    return Err(invalid("auth.headers", "give at least one header"));
                }
                headers = validate_headers("auth.headers", given)?;
            }
            // Tokens, not headers: fetched when calls need them.
            GatewayAuth::OAuthClientCredentials { .. }
            | GatewayAuth::OAuthUser { .. }
            | GatewayAuth::OAuthTokenExchange { .. } => {}
        }
        Ok(headers)
    }
}

/// `POST /gateways`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewayCreate {
    /// A unique name; its slug prefixes federated tool names.
    pub name: String,
    /// The upstream's MCP endpoint (not for `stdio`).
    #[serde(default)]
    pub url: Option<String>,
    /// `streamablehttp` (default), `sse`, or `stdio` (a local program the gateway runs:
    /// platform admins only, a command in `STDIO_COMMANDS`).
    #[serde(default)]
    pub transport: Option<Transport>,
    /// `stdio`: the program (a name looked up in PATH, or an absolute path).
    #[serde(default)]
    pub command: Option<String>,
    /// `stdio`: its arguments.
    #[serde(default)]
    pub args: Option<Vec<String>>,
    /// `stdio`: its environment variables (besides PATH, HOME, LANG, LC_ALL, TZ, TMPDIR and
    /// USER, it gets no other); stored encrypted, their names shown.
    #[serde(default)]
    pub env: Option<BTreeMap<String, String>>,
    /// `stdio`: its working directory (an absolute path).
    #[serde(default)]
    pub cwd: Option<String>,
    /// `stdio`: when the process runs and what it may use.
    #[serde(default)]
    pub process: Option<ProcessOptions>,
    /// What the upstream offers.
    #[serde(default)]
    pub description: Option<String>,
    /// Free-form labels.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Who may see it (default `public`); what is federated from it inherits this.
    #[serde(default)]
    pub visibility: Option<Visibility>,
    /// The team it belongs to (one of yours): with `"visibility": "team"`, its members see it
    /// and what is federated from it.
    #[serde(default)]
    pub team_id: Option<String>,
    /// Prefix federated tool and prompt names with the gateway's slug (default true). Without
    /// it, a name that collides with an existing one is refused with 409.
    #[serde(default)]
    pub prefix_tool_names: Option<bool>,
    /// Credentials for the upstream.
    #[serde(default)]
    pub auth: Option<GatewayAuth>,
}

/// `PUT /gateways/{id}`: absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewayUpdate {
    /// A new name (the slug follows).
    #[serde(default)]
    pub name: Option<String>,
    /// The endpoint; accepted only unchanged (re-register to move an upstream).
    #[serde(default)]
    pub url: Option<String>,
    /// The transport; accepted only unchanged.
    #[serde(default)]
    pub transport: Option<Transport>,
    /// A new description, or `null` to clear it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// Replaces all tags.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// A new visibility.
    #[serde(default)]
    pub visibility: Option<Visibility>,
    /// Move it to another of your teams (`null`: no team).
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub team_id: Option<Option<String>>,
}

/// A gateway as clients see it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GatewayView {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The prefix of its federated tool names.
    pub slug: String,
    /// The upstream's MCP endpoint (`stdio:` and the command line, for a stdio upstream).
    pub url: String,
    /// The transport.
    pub transport: Transport,
    /// A stdio upstream's program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Its arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Its working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// The names of its environment variables (their values are never shown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_names: Option<Vec<String>>,
    /// How its process runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessOptions>,
    /// Its description.
    pub description: Option<String>,
    /// Whether federated names carry the slug.
    pub prefix_tool_names: bool,
    /// The kind of credentials stored (`bearer`, `basic`, `headers`); never the secret.
    pub auth_type: Option<String>,
    /// The protocol version negotiated with the upstream.
    pub protocol_version: Option<String>,
    /// The upstream's capabilities.
    #[schema(value_type = Object)]
    pub capabilities: serde_json::Value,
    /// Whether the upstream answered its last health checks.
    pub reachable: bool,
    /// When it last answered.
    pub last_seen_at: Option<chrono::DateTime<chrono::Utc>>,
    /// What its last discovery left out, and why.
    pub skipped: Vec<crate::db::federation::Skipped>,
    /// Why it is degraded (its last refresh broke a bound; the catalog of the refresh before
    /// is still served), if it is.
    pub degraded_reason: Option<String>,
    /// Why it last failed (a call or the health check), when it has.
    pub last_error: Option<String>,
    /// When.
    pub last_error_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Tags, state, visibility, owner and timestamps.
    #[serde(flatten)]
    pub meta: ItemMeta,
}

#[path = "gateways_stdio.rs"]
mod stdio;

/// The gateway entity.
pub struct Gateways;

/// The slug of a name: lowercase ASCII letters and digits, other runs become one `-`.
pub fn slugify(name: &str) -> String {
    let mut slug = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    slug.trim_end_matches('-').to_owned()
}

fn name_and_slug(value: &str) -> Result<(String, String), Invalid> {
    let name = required_text("name", value, 128)?;
    let slug = slugify(&name);
    if slug.is_empty() {
        return Err(invalid(
            "name",
            "must contain at least one ASCII letter or digit",
        ));
    }
    Ok((name, slug))
}

impl Entity for Gateways {
    type Record = GatewayRow;
    type Create = GatewayCreate;
    type Update = GatewayUpdate;
    type View = GatewayView;

    const NOUN: &'static str = "gateway";
    const PATH: &'static str = "gateways";

    fn create(input: GatewayCreate, change: &Change<'_>) -> Result<GatewayRow, Invalid> {
        let (name, slug) = name_and_slug(&input.name)?;
        let transport = input.transport.unwrap_or(Transport::Streamablehttp);
        let (url, command) = match transport {
            Transport::Stdio => {
                let command = stdio_command(&input)?;
                (command_line(&command), Some(to_json_text(&command)))
            }
            _ => {
                if input.command.is_some()
                    || input.args.is_some()
                    || input.env.is_some()
                    || input.cwd.is_some()
                    || input.process.is_some()
                {
                    return Err(invalid(
                        "command",
                        "command, args, env, cwd and process are for \"transport\": \"stdio\"",
                    ));
                }
                let url = input
                    .url
                    .as_deref()
                    .ok_or_else(|| invalid("url", "is required"))?;
                (http_url("url", url)?, None)
            }
        };
        Ok(GatewayRow {
            id: new_id(),
            name,
            slug,
            url,
            command,
            transport,
            description: optional_text("description", input.description.as_deref(), 8192)?,
            tags: to_json_text(&tags(input.tags.as_deref())?),
            enabled: true,
            owner_email: Some(change.actor_email.to_owned()),
            team_id: optional_text("team_id", input.team_id.as_deref(), 64)?,
            visibility: input.visibility.unwrap_or_default(),
            created_at: change.now,
            updated_at: change.now,
            prefix_tool_names: input.prefix_tool_names.unwrap_or(true),
            // Credentials are sealed by the registration handler, which holds the key.
            auth_type: None,
            auth_secret: None,
            protocol_version: None,
            capabilities: "{}".into(),
            reachable: true,
            last_seen_at: None,
            skipped: "[]".into(),
            degraded_reason: None,
            last_error: None,
            last_error_at: None,
        })
    }

    fn update(
        mut row: GatewayRow,
        input: &GatewayUpdate,
        change: &Change<'_>,
    ) -> Result<GatewayRow, Invalid> {
        if let Some(value) = &input.name {
            (row.name, row.slug) = name_and_slug(value)?;
        }
        // Where an upstream is cannot change in place: a new address must pass the SSRF guard
        // and discovery, which registration does.
        if let Some(value) = &input.url
            && value.trim() != row.url
            && (row.transport == Transport::Stdio || http_url("url", value)? != row.url)
        {
            return Err(invalid(
                "url",
                "an upstream's address cannot be changed; register it again under the new URL",
            ));
        }
        if let Some(transport) = input.transport
            && transport != row.transport
        {
            return Err(invalid(
                "transport",
                "an upstream's transport cannot be changed; register it again",
            ));
        }
        if let Some(description) = &input.description {
            row.description = optional_text("description", description.as_deref(), 8192)?;
        }
        update_meta(
            (
                &mut row.tags,
                &mut row.visibility,
                &mut row.team_id,
                &mut row.updated_at,
            ),
            input.tags.as_deref(),
            input.visibility,
            input.team_id.as_ref(),
            change,
        )?;
        Ok(row)
    }

    fn view(row: GatewayRow) -> GatewayView {
        let command: Option<StoredCommand> = row
            .command
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok());
        let (program, args, cwd, env_names, process) = match command {
            Some(command) => (
                Some(command.command),
                Some(command.args),
                command.cwd,
                Some(command.env),
                Some(command.process),
            ),
            None => (None, None, None, None, None),
        };
        GatewayView {
            command: program,
            args,
            cwd,
            env_names,
            process,
            meta: item_meta!(row, "gateways"),
            transport: row.transport,
            id: row.id,
            name: row.name,
            slug: row.slug,
            url: row.url,
            description: row.description,
            prefix_tool_names: row.prefix_tool_names,
            auth_type: row.auth_type,
            protocol_version: row.protocol_version,
            capabilities: serde_json::from_str(&row.capabilities).unwrap_or_default(),
            reachable: row.reachable,
            last_seen_at: row.last_seen_at.map(|seen| seen.and_utc()),
            skipped: serde_json::from_str(&row.skipped).unwrap_or_default(),
            degraded_reason: row.degraded_reason,
            last_error: row.last_error,
            last_error_at: row.last_error_at.map(|at| at.and_utc()),
        }
    }

    fn conflict_message(constraint: &str) -> String {
        if constraint.contains("slug") {
            taken(
                "name",
                "its slug (the name in lower case, other characters as -)",
            )
        } else {
            taken("name", "this name")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::slugify;

    #[test]
    fn slugs() {
        assert_eq!(slugify("My Weather API!"), "my-weather-api");
        assert_eq!(slugify("--a__b--"), "a-b");
        assert_eq!(slugify("ünï"), "n");
    }
}
