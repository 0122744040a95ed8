//! Importing a document: read and check all of it first (a malformed or partial document is a
//! 422 naming its first problem, and nothing is stored), then apply it item by item through the
//! same service operations as the REST API — each with its authorization check and audit entry.

use std::collections::{HashMap, HashSet};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::document::{
    Conflict, Document, FORMAT, ImportOptions, ImportReport, ItemOutcome, Sealer, VERSION,
};
use super::peer;

mod apply;
use crate::auth::{On, Principal};
use crate::error::ApiError;
use crate::registry::Change;
use crate::registry::gateways::{GatewayCreate, Gateways, slugify};
use crate::registry::prompts::Prompts;
use crate::registry::resources::Resources;
use crate::registry::servers::Servers;
use crate::registry::tools::Tools;
use crate::registry::validate::invalid;
use crate::service::identity::teams;
use crate::service::registry::{Managed, visible};
use crate::service::{Outcome, Services};

/// At most this many existing records of one kind are read to find conflicts.
const EXISTING_MAX: usize = 50_000;

/// Imports `body` (this gateway's document or the peer gateway's export) as `principal`
/// (`config.import`, platform admins).
pub async fn import(
    services: &Services,
    principal: &Principal,
    body: Value,
    options: ImportOptions,
) -> Outcome<ImportReport> {
    principal
        .authorize("config.import", On::Platform)
        .map_err(|denied| ApiError::from_auth(denied.into()))?;
    let (document, source_format, warnings) = read(body, options.passphrase.as_deref())?;
    // A peer export's passphrase opened its credentials while it was converted.
    let passphrase = match source_format {
        "mcpgate" => options.passphrase.as_deref(),
        _ => None,
    };
    let sealer = opener(&document, passphrase)?;
    let mut plan = Plan::new(services, principal, options.conflict, sealer).await?;
    plan.check(&document)?;
    let mut report = ImportReport {
        dry_run: options.dry_run,
        source_format: source_format.into(),
        secrets_missing: document.secrets.omitted.clone(),
        warnings,
        ..ImportReport::default()
    };
    if options.dry_run {
        for step in &plan.steps {
            report.push(step.outcome());
        }
        return Ok(report);
    }
    plan.apply(services, principal, &document, &mut report)
        .await;
    let summary: Vec<String> = report
        .summary
        .iter()
        .map(|(action, count)| format!("{count} {action}"))
        .collect();
    services.audit(
        principal,
        crate::service::audit::Entry::new("config.import", "configuration").detail(format!(
            "from {source_format} (exported {} by {}): {}",
            document.exported_at.format("%Y-%m-%d %H:%M UTC"),
            document.exported_by,
            summary.join(", ")
        )),
    );
    Ok(report)
}

/// Parses a document: this gateway's format, or the peer gateway's (converted).
fn read(body: Value, passphrase: Option<&str>) -> Outcome<(Document, &'static str, Vec<String>)> {
    let Value::Object(object) = &body else {
        return Err(invalid("", "the file must be a JSON object (an export)").into());
    };
    let (body, source, warnings) = if object.get("format").and_then(Value::as_str) == Some(FORMAT) {
        (body, "mcpgate", Vec::new())
    } else if object.contains_key("entities") {
        let (body, warnings) = peer::convert(body, passphrase)?;
        (body, peer::NAME, warnings)
    } else {
        return Err(invalid(
            "format",
            format!("not an export: expected \"format\": \"{FORMAT}\" (or the peer gateway's export with \"entities\")"),
        )
        .into());
    };
    let document: Document = parse("", body)?;
    if document.version != VERSION {
        return Err(invalid(
            "version",
            format!(
                "version {} is not one this gateway reads (it reads {VERSION})",
                document.version
            ),
        )
        .into());
    }
    Ok((document, source, warnings))
}

/// Deserializes `value`, naming the path of the first problem under `prefix`.
fn parse<T: DeserializeOwned>(prefix: &str, value: Value) -> Outcome<T> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let field = match (prefix.is_empty(), path.as_str()) {
            (_, ".") => prefix.to_owned(),
            (true, path) => path.to_owned(),
            (false, path) => format!("{prefix}.{path}"),
        };
        invalid(field, error.into_inner().to_string()).into()
    })
}

/// The sealer that opens the document's credentials, checked against the passphrase.
fn opener(document: &Document, passphrase: Option<&str>) -> Outcome<Option<Sealer>> {
    match document.secrets.mode.as_str() {
        "omitted" => Ok(None),
        "encrypted" => {
            let passphrase = passphrase.ok_or_else(|| {
                invalid(
                    "passphrase",
                    "the file's credentials are encrypted: give the passphrase it was exported with",
                )
            })?;
            let salt = document.secrets.salt.as_deref().unwrap_or_default();
            Ok(Some(Sealer::for_document(passphrase, salt)?))
        }
        other => Err(invalid(
            "secrets.mode",
            format!("{other:?} is not omitted or encrypted"),
        )
        .into()),
    }
}

/// Which kind an item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Team,
    Gateway,
    Tool,
    Resource,
    Prompt,
    Server,
    Role,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Team => "team",
            Kind::Gateway => "gateway",
            Kind::Tool => "tool",
            Kind::Resource => "resource",
            Kind::Prompt => "prompt",
            Kind::Server => "server",
            Kind::Role => "role",
        }
    }
}

/// What to do with one item.
#[derive(Debug)]
enum Action {
    Create,
    Update(String),
    Rename(String),
    Skip(String),
    /// A role assigned (again: assigning a role held already changes nothing).
    Grant,
}

/// One checked item.
struct Step {
    kind: Kind,
    name: String,
    action: Action,
    /// The `POST` body (credentials opened, `team_id` to be filled in).
    body: Map<String, Value>,
    enabled: bool,
    team: Option<String>,
    /// A server's members, by name.
    refs: [Vec<String>; 3],
}

impl Step {
    fn outcome(&self) -> ItemOutcome {
        let noun = self.kind.noun();
        match &self.action {
            Action::Create => ItemOutcome::new(noun, &self.name, "create"),
            Action::Update(_) => ItemOutcome::new(noun, &self.name, "update"),
            Action::Rename(to) => {
                let mut outcome = ItemOutcome::new(noun, &self.name, "rename");
                outcome.new_name = Some(to.clone());
                outcome
            }
            Action::Skip(why) => ItemOutcome::new(noun, &self.name, "skip").because(why.clone()),
            Action::Grant => ItemOutcome::new(noun, &self.name, "grant"),
        }
    }
}

/// The checked document: every item's action, in the order they are applied.
struct Plan {
    conflict: Conflict,
    sealer: Option<Sealer>,
    /// Existing records by kind: key → id.
    existing: HashMap<Kind, HashMap<String, String>>,
    /// Keys in the document (and discovered through its gateways), by kind.
    named: HashMap<Kind, HashSet<String>>,
    /// Names given to renamed items, by kind: old → new.
    renamed: HashMap<Kind, HashMap<String, String>>,
    steps: Vec<Step>,
    secrets: crate::secrets::SecretBox,
}

impl Plan {
    async fn new(
        services: &Services,
        principal: &Principal,
        conflict: Conflict,
        sealer: Option<Sealer>,
    ) -> Outcome<Self> {
        let mut existing = HashMap::new();
        let teams = teams::list(services, principal).await?;
        existing.insert(
            Kind::Team,
            teams.into_iter().map(|team| (team.name, team.id)).collect(),
        );
        existing.insert(
            Kind::Gateway,
            keys::<Gateways>(services, principal, |row| Some(row.name.clone())).await?,
        );
        existing.insert(
            Kind::Tool,
            keys::<Tools>(services, principal, |row| Some(row.name.clone())).await?,
        );
        existing.insert(
            Kind::Resource,
            keys::<Resources>(services, principal, |row| {
                row.uri.clone().or(row.uri_template.clone())
            })
            .await?,
        );
        existing.insert(
            Kind::Prompt,
            keys::<Prompts>(services, principal, |row| Some(row.name.clone())).await?,
        );
        existing.insert(
            Kind::Server,
            keys::<Servers>(services, principal, |record| Some(record.row.name.clone())).await?,
        );
        Ok(Plan {
            conflict,
            sealer,
            existing,
            named: HashMap::new(),
            renamed: HashMap::new(),
            steps: Vec::new(),
            secrets: services.secrets.clone(),
        })
    }

    /// Checks every item; the first problem is a 422 naming it.
    fn check(&mut self, document: &Document) -> Outcome<()> {
        let mut team_names = HashSet::new();
        for (index, team) in document.teams.iter().enumerate() {
            let field = format!("teams[{index}]");
            crate::registry::validate::required_text(&format!("{field}.name"), &team.name, 200)?;
            if !team_names.insert(team.name.clone()) {
                return Err(invalid(format!("{field}.name"), "appears twice in the file").into());
            }
            let action = match self.existing[&Kind::Team].get(&team.name) {
                Some(_) => Action::Skip("exists: its members are added".into()),
                None => Action::Create,
            };
            self.steps.push(Step::plain(Kind::Team, &team.name, action));
        }
        self.named.insert(Kind::Team, team_names);
        // What the document's upstreams offered: servers may refer to it.
        for gateway in &document.gateways {
            let discovered = gateway.get("discovered").cloned().unwrap_or(Value::Null);
            for (kind, key) in [
                (Kind::Tool, "tools"),
                (Kind::Resource, "resources"),
                (Kind::Prompt, "prompts"),
            ] {
                let names = discovered[key].as_array().into_iter().flatten();
                let set = self.named.entry(kind).or_default();
                set.extend(names.filter_map(Value::as_str).map(str::to_owned));
            }
        }
        self.items::<Gateways>(Kind::Gateway, "gateways", &document.gateways, "name")?;
        self.items::<Tools>(Kind::Tool, "tools", &document.tools, "name")?;
        self.items::<Resources>(Kind::Resource, "resources", &document.resources, "uri")?;
        self.items::<Prompts>(Kind::Prompt, "prompts", &document.prompts, "name")?;
        self.items::<Servers>(Kind::Server, "servers", &document.servers, "name")?;
        for (index, role) in document.roles.iter().enumerate() {
            let field = format!("roles[{index}]");
            if !crate::auth::rbac::ROLES.contains(&role.role.as_str()) {
                return Err(invalid(format!("{field}.role"), "is not a role").into());
            }
            if let Some(team) = &role.team {
                self.team_known(&format!("{field}.team"), team)?;
            }
            let name = format!("{} {}", role.email, role.role);
            self.steps
                .push(Step::plain(Kind::Role, &name, Action::Grant));
        }
        Ok(())
    }

    /// Whether a name may be one an upstream in the file or here offers under its prefix (a
    /// peer export names its federated tools but does not carry them).
    fn offered_upstream(&self, name: &str) -> bool {
        let slug = slugify(name);
        let gateways = self.named.get(&Kind::Gateway).into_iter().flatten();
        gateways
            .chain(self.existing[&Kind::Gateway].keys())
            .any(|gateway| slug.starts_with(&format!("{}-", slugify(gateway))))
    }

    fn team_known(&self, field: &str, team: &str) -> Outcome<()> {
        if self.existing[&Kind::Team].contains_key(team) || self.named[&Kind::Team].contains(team) {
            Ok(())
        } else {
            Err(invalid(field, format!("no team named {team:?} here or in the file")).into())
        }
    }

    /// Checks the items of one kind.
    fn items<E: Managed>(
        &mut self,
        kind: Kind,
        section: &str,
        items: &[Value],
        key_field: &str,
    ) -> Outcome<()> {
        let mut seen = HashSet::new();
        for (index, item) in items.iter().enumerate() {
            let field = format!("{section}[{index}]");
            let Value::Object(item) = item else {
                return Err(invalid(field, "must be an object").into());
            };
            let mut body = item.clone();
            let enabled = match body.remove("enabled") {
                None => true,
                Some(Value::Bool(enabled)) => enabled,
                Some(_) => {
                    return Err(invalid(format!("{field}.enabled"), "must be a boolean").into());
                }
            };
            let team = match body.remove("team") {
                None | Some(Value::Null) => None,
                Some(Value::String(team)) => {
                    self.team_known(&format!("{field}.team"), &team)?;
                    Some(team)
                }
                Some(_) => {
                    return Err(invalid(format!("{field}.team"), "must be a team's name").into());
                }
            };
            body.remove("discovered");
            let mut refs: [Vec<String>; 3] = Default::default();
            if kind == Kind::Server {
                for (slot, (member, of)) in [
                    ("tools", Kind::Tool),
                    ("resources", Kind::Resource),
                    ("prompts", Kind::Prompt),
                ]
                .into_iter()
                .enumerate()
                {
                    let names: Vec<String> = parse(
                        &format!("{field}.{member}"),
                        body.remove(member).unwrap_or(Value::Array(Vec::new())),
                    )?;
                    for (position, name) in names.iter().enumerate() {
                        let known = self.named.get(&of).is_some_and(|set| set.contains(name))
                            || self.existing[&of].contains_key(name)
                            || self.offered_upstream(name);
                        if !known {
                            return Err(invalid(
                                format!("{field}.{member}[{position}]"),
                                format!("no {} {name:?} here or in the file", of.noun()),
                            )
                            .into());
                        }
                    }
                    refs[slot] = names;
                }
            }
            self.open_secrets(&field, &mut body)?;
            // Everything `POST` would check, without storing.
            let input: E::Create = parse(&field, Value::Object(body.clone()))?;
            let change = Change {
                actor_email: "import@check",
                now: crate::db::now(),
                secrets: &self.secrets,
            };
            E::create(input, &change).map_err(|problem| {
                invalid(format!("{field}.{}", problem.field), problem.message)
            })?;
            if kind == Kind::Gateway {
                let auth: GatewayCreate = parse(&field, Value::Object(body.clone()))?;
                if let Some(auth) = auth.auth {
                    auth.headers().map_err(|problem| {
                        invalid(format!("{field}.{}", problem.field), problem.message)
                    })?;
                }
            }
            let key = key_of(&body, key_field);
            if !seen.insert(key.clone()) {
                return Err(
                    invalid(format!("{field}.{key_field}"), "appears twice in the file").into(),
                );
            }
            let action = self.action(kind, &key, &body);
            if let Action::Rename(to) = &action {
                self.renamed
                    .entry(kind)
                    .or_default()
                    .insert(key.clone(), to.clone());
                body.insert("name".into(), to.clone().into());
            }
            self.named.entry(kind).or_default().insert(key.clone());
            self.steps.push(Step {
                kind,
                name: key,
                action,
                body,
                enabled,
                team,
                refs,
            });
        }
        Ok(())
    }

    /// What the conflict strategy makes of an item whose key may exist.
    fn action(&self, kind: Kind, key: &str, body: &Map<String, Value>) -> Action {
        let Some(id) = self.existing[&kind].get(key) else {
            return Action::Create;
        };
        match self.conflict {
            Conflict::Skip => Action::Skip("exists".into()),
            Conflict::Update => Action::Update(id.clone()),
            Conflict::Rename if kind == Kind::Resource => Action::Skip(
                "exists (a resource's URI is its identity: it cannot be renamed)".into(),
            ),
            Conflict::Rename => {
                let name = body.get("name").and_then(Value::as_str).unwrap_or(key);
                let taken = |candidate: &str| {
                    self.existing[&kind].contains_key(candidate)
                        || self
                            .named
                            .get(&kind)
                            .is_some_and(|set| set.contains(candidate))
                };
                let free = (2..)
                    .map(|n| format!("{name}-{n}"))
                    .find(|candidate| !taken(candidate))
                    .unwrap_or_default();
                Action::Rename(free)
            }
        }
    }

    /// Opens the encrypted credentials of an item in place.
    fn open_secrets(&self, field: &str, body: &mut Map<String, Value>) -> Outcome<()> {
        let mut problem = None;
        visit_strings(body, field, &mut |path, value| {
            if problem.is_some() || !Sealer::is_sealed(value) {
                return;
            }
            match self.sealer.as_ref().and_then(|sealer| sealer.open(value)) {
                Some(plain) => *value = plain,
                None => {
                    problem = Some(invalid(
                        path,
                        if self.sealer.is_some() {
                            "the passphrase does not open this credential"
                        } else {
                            "is encrypted, but the file says its credentials are omitted"
                        },
                    ))
                }
            }
        });
        problem.map_or(Ok(()), |problem| Err(problem.into()))
    }
}

impl Step {
    fn plain(kind: Kind, name: &str, action: Action) -> Self {
        Step {
            kind,
            name: name.to_owned(),
            action,
            body: Map::new(),
            enabled: true,
            team: None,
            refs: Default::default(),
        }
    }
}

/// Every string in `body` with its path, changeable.
fn visit_strings(
    body: &mut Map<String, Value>,
    prefix: &str,
    visit: &mut dyn FnMut(&str, &mut String),
) {
    for (key, value) in body.iter_mut() {
        let path = format!("{prefix}.{key}");
        match value {
            Value::String(text) => visit(&path, text),
            Value::Object(inner) => visit_strings(inner, &path, visit),
            _ => {}
        }
    }
}

fn key_of(body: &Map<String, Value>, key_field: &str) -> String {
    let key = body.get(key_field).and_then(Value::as_str);
    let key = key.or_else(|| body.get("uri_template").and_then(Value::as_str));
    key.unwrap_or_default().to_owned()
}

/// Key → id of every record of `E` the principal may see.
async fn keys<E: Managed>(
    services: &Services,
    principal: &Principal,
    key: impl Fn(&E::Record) -> Option<String>,
) -> Outcome<HashMap<String, String>> {
    let records = visible::<E>(services, principal, EXISTING_MAX).await?;
    Ok(records
        .iter()
        .filter_map(|record| Some((key(record)?, E::id(record).to_owned())))
        .collect())
}
