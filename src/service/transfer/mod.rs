//! Configuration export and import: gateways, tools, resources, prompts, virtual servers, teams
//! and role assignments as one versioned JSON document (`GET /export`, `POST /import`, and the
//! console's export page).
//!
//! Items refer to each other by name (a server lists its tools' names, a tool its team's name),
//! never by id, so a document moves between gateways and backends. Credentials are either left
//! out and listed, or encrypted for a passphrase the operator chooses (Argon2id, then
//! AES-256-GCM per value); an item's credentials are exported only to someone who may change the
//! item. Tools, resources and prompts discovered from an upstream are not items: registering the
//! upstream again discovers them; the document lists their names under the upstream so servers
//! can refer to them.

mod document;
mod import;
mod peer;

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

pub use self::document::{Document, ImportOptions, ImportReport, ItemOutcome, SecretsInfo};
use self::document::{Omitted, Sealer, TeamItem};
pub use self::import::import;
use super::registry::{Managed, visible};
use super::{Outcome, Services};
use crate::auth::{On, Principal};
use crate::db::identity::ListRoleAssignments;
use crate::db::registry::HasId;
use crate::error::ApiError;
use crate::registry::Entity;
use crate::registry::gateways::Gateways;
use crate::registry::prompts::Prompts;
use crate::registry::resources::Resources;
use crate::registry::servers::Servers;
use crate::registry::tools::Tools;

/// At most this many records of one kind are exported.
const EXPORT_MAX: usize = 50_000;

/// What an export leaves out or encrypts.
pub enum SecretsMode {
    /// Credentials are left out and listed.
    Omit,
    /// Credentials are encrypted for this passphrase.
    Encrypt(String),
}

/// Exports everything `principal` may see (`config.export`, platform admins).
pub async fn export(
    services: &Services,
    principal: &Principal,
    secrets: SecretsMode,
) -> Outcome<Document> {
    principal
        .authorize("config.export", On::Platform)
        .map_err(|denied| ApiError::from_auth(denied.into()))?;
    let sealer = match &secrets {
        SecretsMode::Omit => None,
        SecretsMode::Encrypt(passphrase) => Some(Sealer::new(passphrase)?),
    };
    let mut out = Exporter {
        principal,
        sealer: sealer.as_ref(),
        omitted: Vec::new(),
    };
    let teams = crate::service::identity::teams::list(services, principal).await?;
    let team_names: HashMap<String, String> = teams
        .iter()
        .map(|team| (team.id.clone(), team.name.clone()))
        .collect();
    let gateways = visible::<Gateways>(services, principal, EXPORT_MAX).await?;
    let tools = visible::<Tools>(services, principal, EXPORT_MAX).await?;
    let resources = visible::<Resources>(services, principal, EXPORT_MAX).await?;
    let prompts = visible::<Prompts>(services, principal, EXPORT_MAX).await?;
    let servers = visible::<Servers>(services, principal, EXPORT_MAX).await?;

    let tool_names = names(&tools, |row| row.name.clone());
    let resource_keys = names(&resources, |row| {
        row.uri
            .clone()
            .or(row.uri_template.clone())
            .unwrap_or_default()
    });
    let prompt_names = names(&prompts, |row| row.name.clone());

    let mut document = Document::new(principal, out_mode(&sealer));
    for gateway in &gateways {
        let mut item = out.item::<Gateways>(gateway, &team_names);
        let of = |gateway_ids: Vec<(&Option<String>, &String)>| -> Vec<String> {
            gateway_ids
                .into_iter()
                .filter(|(owner, _)| owner.as_deref() == Some(gateway.id.as_str()))
                .map(|(_, key)| key.clone())
                .collect()
        };
        item.insert(
            "discovered".into(),
            json!({
                "tools": of(tools.iter().map(|t| (&t.gateway_id, &t.name)).collect()),
                "resources": of(resources.iter().filter_map(|r| r.uri.as_ref().map(|uri| (&r.gateway_id, uri))).collect()),
                "prompts": of(prompts.iter().map(|p| (&p.gateway_id, &p.name)).collect()),
            }),
        );
        if let Some((field, secrets)) = out.gateway_auth(services, gateway) {
            item.insert(field.into(), secrets);
        }
        document.gateways.push(Value::Object(item));
    }
    for tool in tools.iter().filter(|tool| tool.gateway_id.is_none()) {
        let mut item = out.item::<Tools>(tool, &team_names);
        item.insert("headers".into(), out.tool_headers(services, tool));
        document.tools.push(Value::Object(item));
    }
    for resource in resources.iter().filter(|row| row.gateway_id.is_none()) {
        let item = out.item::<Resources>(resource, &team_names);
        document.resources.push(Value::Object(item));
    }
    for prompt in prompts.iter().filter(|row| row.gateway_id.is_none()) {
        let item = out.item::<Prompts>(prompt, &team_names);
        document.prompts.push(Value::Object(item));
    }
    for server in &servers {
        let mut item = out.item::<Servers>(server, &team_names);
        let refer = |ids: &[String], keys: &HashMap<String, String>| -> Value {
            ids.iter()
                .filter_map(|id| keys.get(id).cloned())
                .collect::<Vec<_>>()
                .into()
        };
        let view = Servers::view(server.clone());
        item.insert("tools".into(), refer(&view.tool_ids, &tool_names));
        item.insert(
            "resources".into(),
            refer(&view.resource_ids, &resource_keys),
        );
        item.insert("prompts".into(), refer(&view.prompt_ids, &prompt_names));
        document.servers.push(Value::Object(item));
    }
    for team in teams.into_iter().filter(|team| !team.is_personal) {
        document.teams.push(TeamItem {
            name: team.name,
            description: team.description,
            members: team
                .members
                .into_iter()
                .map(|member| document::MemberItem {
                    email: member.email,
                    role: member.role,
                })
                .collect(),
        });
    }
    if principal.permits("users.manage", On::Platform) {
        let roles = services
            .db
            .run(ListRoleAssignments {})
            .await
            .map_err(|error| ApiError::from_db(error, "role assignment", None))?;
        for role in roles {
            let team = if role.scope == "*" {
                None
            } else {
                match team_names.get(&role.scope) {
                    Some(name) => Some(name.clone()),
                    None => continue,
                }
            };
            document.roles.push(document::RoleItem {
                email: role.email,
                role: role.role,
                team,
            });
        }
    }
    document.secrets.omitted = out.omitted;
    if let Some(sealer) = &sealer {
        document.secrets.salt = Some(sealer.salt());
    }
    services.audit(
        principal,
        super::audit::Entry::new("config.export", "configuration").detail(format!(
            "{} upstreams, {} tools, {} resources, {} prompts, {} servers, {} teams; credentials {}",
            document.gateways.len(),
            document.tools.len(),
            document.resources.len(),
            document.prompts.len(),
            document.servers.len(),
            document.teams.len(),
            document.secrets.mode,
        )),
    );
    Ok(document)
}

fn out_mode(sealer: &Option<Sealer>) -> &'static str {
    if sealer.is_some() {
        "encrypted"
    } else {
        "omitted"
    }
}

/// Id → portable key of every record.
fn names<R: HasId>(records: &[R], key: impl Fn(&R) -> String) -> HashMap<String, String> {
    records
        .iter()
        .map(|record| (record.id().to_owned(), key(record)))
        .collect()
}

/// Fields of a view that are the record's identity or history on this gateway, never exported.
const LOCAL_FIELDS: &[&str] = &[
    "id",
    "slug",
    "gateway_id",
    "original_name",
    "owner_email",
    "team_id",
    "created_at",
    "updated_at",
    "integration_type",
    "auth_type",
    "protocol_version",
    "capabilities",
    "reachable",
    "last_seen_at",
    "skipped",
    "degraded_reason",
    "last_error",
    "last_error_at",
    "tool_ids",
    "resource_ids",
    "prompt_ids",
    "headers",
    "env_names",
];

struct Exporter<'a> {
    principal: &'a Principal,
    sealer: Option<&'a Sealer>,
    omitted: Vec<Omitted>,
}

impl Exporter<'_> {
    /// A record as a document item: its view without local fields, its team by name.
    fn item<E: Managed>(
        &self,
        record: &E::Record,
        team_names: &HashMap<String, String>,
    ) -> Map<String, Value> {
        let team = record
            .ownership()
            .team_id
            .and_then(|id| team_names.get(&id).cloned());
        let mut item = match serde_json::to_value(E::view(record.clone())) {
            Ok(Value::Object(item)) => item,
            _ => Map::new(),
        };
        item.retain(|key, value| !LOCAL_FIELDS.contains(&key.as_str()) && !value.is_null());
        if let Some(team) = team {
            item.insert("team".into(), team.into());
        }
        item
    }

    /// Whether the principal may see `record`'s credentials (only who may change it).
    fn may_read_secrets<E: Entity>(&self, record: &E::Record) -> bool {
        self.principal.permits(
            &format!("{}.update", E::PATH),
            On::Item(&record.ownership()),
        )
    }

    /// A secret value as exported, or `None` (left out and listed).
    fn secret(&mut self, kind: &str, name: &str, field: &str, plain: &str) -> Option<Value> {
        match self.sealer {
            Some(sealer) => Some(sealer.seal(plain).into()),
            None => {
                self.omitted.push(Omitted {
                    kind: kind.to_owned(),
                    name: name.to_owned(),
                    field: field.to_owned(),
                });
                None
            }
        }
    }

    fn tool_headers(&mut self, services: &Services, tool: &crate::db::registry::ToolRow) -> Value {
        let stored: BTreeMap<String, String> =
            serde_json::from_str(&tool.headers).unwrap_or_default();
        let allowed = self.may_read_secrets::<Tools>(tool);
        let mut headers = Map::new();
        for (name, sealed) in stored {
            let field = format!("headers.{name}");
            let plain = services
                .secrets
                .open_header(&sealed)
                .map(|(plain, _)| plain);
            let value = match plain {
                Ok(plain) if allowed => self.secret("tool", &tool.name, &field, &plain),
                _ => {
                    self.omitted.push(Omitted {
                        kind: "tool".into(),
                        name: tool.name.clone(),
                        field,
                    });
                    None
                }
            };
            if let Some(value) = value {
                headers.insert(name, value);
            }
        }
        Value::Object(headers)
    }

    /// An upstream's credentials in the form `POST /gateways` takes, and the field they go in
    /// (`auth`; a stdio upstream's `env`).
    fn gateway_auth(
        &mut self,
        services: &Services,
        gateway: &crate::db::registry::GatewayRow,
    ) -> Option<(&'static str, Value)> {
        let kind = gateway.auth_type.clone()?;
        let headers = services.federation.credentials(gateway).ok();
        let readable = self.sealer.is_some() && self.may_read_secrets::<Gateways>(gateway);
        let Some(headers) = headers.filter(|_| readable) else {
            self.omitted.push(Omitted {
                kind: "gateway".into(),
                name: gateway.name.clone(),
                field: "auth".into(),
            });
            return None;
        };
        let field = |name: &str| format!("auth.{name}");
        match kind.as_str() {
            "env" => {
                let mut sealed = Map::new();
                for (name, value) in &headers {
                    let value =
                        self.secret("gateway", &gateway.name, &format!("env.{name}"), value)?;
                    sealed.insert(name.clone(), value);
                }
                return Some(("env", Value::Object(sealed)));
            }
            "oauth2_client_credentials" | "oauth2_user" | "oauth2_token_exchange" => {
                let config: crate::upstream::oauth::OAuthConfig =
                    serde_json::from_str(headers.get(crate::federation::OAUTH_SECRET)?).ok()?;
                let mut auth = Map::new();
                auth.insert("type".into(), kind.clone().into());
                auth.insert("token_url".into(), config.token_endpoint.into());
                auth.insert("client_id".into(), config.client_id.into());
                if let Some(endpoint) = config
                    .authorization_endpoint
                    .filter(|_| config.flow == crate::upstream::oauth::Flow::User)
                {
                    auth.insert("authorization_url".into(), endpoint.into());
                }
                for (name, value) in [
                    ("scope", config.scope),
                    ("resource", config.resource),
                    ("audience", config.audience),
                ] {
                    if let Some(value) = value {
                        auth.insert(name.into(), value.into());
                    }
                }
                if let Some(secret) = &config.client_secret {
                    let sealed =
                        self.secret("gateway", &gateway.name, &field("client_secret"), secret)?;
                    auth.insert("client_secret".into(), sealed);
                }
                return Some(("auth", Value::Object(auth)));
            }
            _ => {}
        }
        let authorization = headers.get("Authorization").cloned().unwrap_or_default();
        let (kind, plain): (&str, Vec<(&str, String)>) = match kind.as_str() {
            "bearer" => (
                "bearer",
                vec![(
                    "token",
                    authorization
                        .strip_prefix("Bearer ")
                        .unwrap_or_default()
                        .to_owned(),
                )],
            ),
            "basic" => {
                use base64::Engine;
                let decoded = authorization
                    .strip_prefix("Basic ")
                    .and_then(|encoded| {
                        base64::engine::general_purpose::STANDARD
                            .decode(encoded)
                            .ok()
                    })
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .unwrap_or_default();
                let (username, password) = decoded.split_once(':').unwrap_or_default();
                (
                    "basic",
                    vec![
                        ("username", username.to_owned()),
                        ("password", password.to_owned()),
                    ],
                )
            }
            _ => {
                let mut sealed = Map::new();
                for (name, value) in &headers {
                    let field = format!("auth.headers.{name}");
                    sealed.insert(
                        name.clone(),
                        self.secret("gateway", &gateway.name, &field, value)?,
                    );
                }
                return Some(("auth", json!({"type": "headers", "headers": sealed})));
            }
        };
        let mut auth = Map::new();
        auth.insert("type".into(), kind.into());
        for (field, value) in plain {
            let value = self.secret("gateway", &gateway.name, &format!("auth.{field}"), &value)?;
            auth.insert(field.into(), value);
        }
        Some(("auth", Value::Object(auth)))
    }
}
