//! Applying a checked document, item by item, through the service operations.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::{Action, Kind, Plan, Step, keys, parse};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::registry::gateways::{GatewayCreate, Gateways, slugify};
use crate::registry::prompts::Prompts;
use crate::registry::resources::Resources;
use crate::registry::servers::Servers;
use crate::registry::tools::Tools;
use crate::service::Services;
use crate::service::identity::{MemberAdd, RoleAssignment, TeamCreate, teams};
use crate::service::registry::{self as registry, Managed};
use crate::service::transfer::document::{Document, ImportReport, ItemOutcome};

impl Plan {
    /// Applies the steps in order; a failed item is reported and the rest go on.
    pub(super) async fn apply(
        &mut self,
        services: &Services,
        principal: &Principal,
        document: &Document,
        report: &mut ImportReport,
    ) {
        let mut team_ids = self.existing[&Kind::Team].clone();
        for team in &document.teams {
            let outcome = apply_team(services, principal, team, &mut team_ids).await;
            report.push(outcome);
            let Some(id) = team_ids.get(&team.name) else {
                continue;
            };
            let present: HashSet<String> = match teams::get(services, principal, id).await {
                Ok(view) => view
                    .members
                    .into_iter()
                    .map(|member| member.email)
                    .collect(),
                Err(_) => HashSet::new(),
            };
            for member in &team.members {
                let name = format!("{} in {}", member.email, team.name);
                if present.contains(&member.email) {
                    report.push(
                        ItemOutcome::new("member", &name, "skip").because("already a member"),
                    );
                    continue;
                }
                let added = teams::join(
                    services,
                    principal,
                    id,
                    MemberAdd {
                        email: member.email.clone(),
                        role: Some(member.role.clone()),
                    },
                )
                .await;
                report.push(match added {
                    Ok(_) => ItemOutcome::new("member", &name, "add"),
                    Err(error) => {
                        ItemOutcome::new("member", &name, "failed").because(error.to_string())
                    }
                });
            }
        }
        let steps = std::mem::take(&mut self.steps);
        // What servers refer to, read once (servers never refer to servers), after every item
        // before them was applied.
        let mut members: Option<Members> = None;
        for mut step in steps {
            if matches!(step.kind, Kind::Team | Kind::Role) {
                continue;
            }
            if let Some(team) = &step.team {
                let id = team_ids.get(team).cloned();
                step.body.insert("team_id".into(), id.into());
            }
            let outcome = match step.kind {
                Kind::Gateway => apply_gateway(services, principal, &step).await,
                Kind::Tool => apply_item::<Tools>(services, principal, &step).await,
                Kind::Resource => apply_item::<Resources>(services, principal, &step).await,
                Kind::Prompt => apply_item::<Prompts>(services, principal, &step).await,
                Kind::Server => {
                    if members.is_none() {
                        members = Some(Members::read(services, principal).await);
                    }
                    let warnings = match &members {
                        Some(found) => self.resolve_members(&found.0, &mut step),
                        None => Vec::new(),
                    };
                    let outcome = apply_item::<Servers>(services, principal, &step).await;
                    match (warnings.is_empty(), outcome.message.is_some()) {
                        (false, false) => outcome.because(warnings.join("; ")),
                        _ => outcome,
                    }
                }
                Kind::Team | Kind::Role => continue,
            };
            report.push(outcome);
        }
        for role in &document.roles {
            let team_id = role
                .team
                .as_ref()
                .and_then(|team| team_ids.get(team).cloned());
            let granted = crate::service::identity::roles::grant(
                services,
                principal,
                &role.email,
                RoleAssignment {
                    role: role.role.clone(),
                    team_id,
                },
            )
            .await;
            let name = format!("{} {}", role.email, role.role);
            report.push(match granted {
                Ok(_) => ItemOutcome::new("role", &name, "grant"),
                Err(error) => ItemOutcome::new("role", &name, "failed").because(error.to_string()),
            });
        }
    }

    /// Turns a server's member names into ids (as they are after the items before it were
    /// applied); names that do not resolve are left out and reported.
    fn resolve_members(
        &self,
        lookups: &[HashMap<String, String>; 3],
        step: &mut Step,
    ) -> Vec<String> {
        let mut warnings = Vec::new();
        for (slot, ((field, kind), lookup)) in [
            ("tool_ids", Kind::Tool),
            ("resource_ids", Kind::Resource),
            ("prompt_ids", Kind::Prompt),
        ]
        .into_iter()
        .zip(lookups)
        .enumerate()
        {
            let renamed = self.renamed.get(&kind);
            let by_slug: HashMap<String, &String> =
                lookup.iter().map(|(key, id)| (slugify(key), id)).collect();
            let mut ids = Vec::new();
            for name in &step.refs[slot] {
                let name = renamed.and_then(|map| map.get(name)).unwrap_or(name);
                let found = lookup
                    .get(name)
                    .or_else(|| by_slug.get(&slugify(name)).copied());
                match found {
                    Some(id) => ids.push(Value::from(id.clone())),
                    None => warnings.push(format!(
                        "{} {name:?} was not found, so it is not part of the server",
                        kind.noun()
                    )),
                }
            }
            step.body.insert(field.into(), Value::Array(ids));
        }
        warnings
    }
}

/// Key → id of the tools, resources and prompts a server may hold.
struct Members([HashMap<String, String>; 3]);

impl Members {
    async fn read(services: &Services, principal: &Principal) -> Self {
        Members([
            keys::<Tools>(services, principal, |row| Some(row.name.clone()))
                .await
                .unwrap_or_default(),
            keys::<Resources>(services, principal, |row| {
                row.uri.clone().or(row.uri_template.clone())
            })
            .await
            .unwrap_or_default(),
            keys::<Prompts>(services, principal, |row| Some(row.name.clone()))
                .await
                .unwrap_or_default(),
        ])
    }
}

async fn apply_team(
    services: &Services,
    principal: &Principal,
    team: &crate::service::transfer::document::TeamItem,
    team_ids: &mut HashMap<String, String>,
) -> ItemOutcome {
    if team_ids.contains_key(&team.name) {
        return ItemOutcome::new("team", &team.name, "skip")
            .because("exists: its members are added");
    }
    let created = teams::create(
        services,
        principal,
        TeamCreate {
            name: team.name.clone(),
            description: team.description.clone(),
        },
    )
    .await;
    match created {
        Ok(view) => {
            team_ids.insert(team.name.clone(), view.id);
            ItemOutcome::new("team", &team.name, "create")
        }
        Err(error) => ItemOutcome::new("team", &team.name, "failed").because(error.to_string()),
    }
}

async fn apply_gateway(services: &Services, principal: &Principal, step: &Step) -> ItemOutcome {
    if !matches!(step.action, Action::Create | Action::Rename(_)) {
        return apply_item::<Gateways>(services, principal, step).await;
    }
    let outcome = step.outcome();
    let input: GatewayCreate = match parse("", Value::Object(step.body.clone())) {
        Ok(input) => input,
        Err(error) => return failed(outcome, &error),
    };
    match crate::service::gateways::register(services, principal, input, None).await {
        Ok(registered) => {
            if !step.enabled
                && let Err(error) = registry::set_enabled::<Gateways>(
                    services,
                    principal,
                    &registered.gateway.id,
                    Some(false),
                )
                .await
            {
                return failed(outcome, &error);
            }
            outcome
        }
        Err(error) => failed(outcome, &error),
    }
}

/// Creates, renames or updates one registry item through the service layer.
async fn apply_item<E: Managed>(
    services: &Services,
    principal: &Principal,
    step: &Step,
) -> ItemOutcome {
    let outcome = step.outcome();
    let mut body = step.body.clone();
    let stored = match &step.action {
        Action::Skip(_) | Action::Grant => return outcome,
        Action::Create | Action::Rename(_) => match parse::<E::Create>("", Value::Object(body)) {
            Ok(input) => registry::create::<E>(services, principal, input).await,
            Err(error) => Err(error),
        },
        Action::Update(id) => {
            // Fields only `POST` takes: an update keeps what is stored.
            for only_on_create in ["prefix_tool_names", "auth"] {
                body.remove(only_on_create);
            }
            match parse::<E::Update>("", Value::Object(body)) {
                Ok(input) => registry::update::<E>(services, principal, id, input).await,
                Err(error) => Err(error),
            }
        }
    };
    let stored = match stored {
        Ok(stored) => stored,
        Err(error) => return failed(outcome, &error),
    };
    let id = E::id(&stored).to_owned();
    let enabled = serde_json::to_value(E::view(stored))
        .ok()
        .and_then(|view| view.get("enabled").and_then(Value::as_bool));
    if enabled != Some(step.enabled)
        && let Err(error) =
            registry::set_enabled::<E>(services, principal, &id, Some(step.enabled)).await
    {
        return failed(outcome, &error);
    }
    outcome
}

fn failed(mut outcome: ItemOutcome, error: &ApiError) -> ItemOutcome {
    outcome.action = "failed".into();
    outcome.because(error.to_string())
}
