//! Registry writes applied to a snapshot in place: a [`CatalogDelta`] per write, O(log n) on
//! the persistent maps, instead of a rebuild from the database.

use std::sync::Arc;

use super::build::{gateway, prompt, resource, server, tool};
use super::{Catalog, CatalogChange, ToolTarget, resource_key};
use crate::secrets::SecretBox;

/// One registry write, as the catalog takes it: the stored row after the write (an item that
/// is disabled, or whose upstream is not live, leaves the catalog), or the id of a deleted one.
#[derive(Clone, Debug)]
pub enum CatalogDelta {
    /// A tool as stored now.
    Tool(crate::db::registry::ToolRow),
    /// A resource as stored now.
    Resource(crate::db::registry::ResourceRow),
    /// A prompt as stored now.
    Prompt(crate::db::registry::PromptRow),
    /// A virtual server and its members as stored now.
    Server(crate::db::registry::ServerRecord),
    /// An upstream as stored now (its items follow in their own deltas).
    Gateway(crate::db::registry::GatewayRow),
    /// An item, virtual server or upstream was deleted (an upstream with its items).
    Deleted(String),
}

impl Catalog {
    /// This snapshot with several writes applied in order (a gateway's sync: the gateway, then
    /// what changed among its items), and everything they changed for clients.
    pub fn apply_all(
        &self,
        deltas: Vec<CatalogDelta>,
        secrets: &SecretBox,
    ) -> (Catalog, CatalogChange) {
        let mut catalog = self.clone();
        let mut change = CatalogChange::default();
        for delta in deltas {
            let (next, changed) = catalog.apply(delta, secrets);
            catalog = next;
            change.merge(changed);
        }
        (catalog, change)
    }

    /// This snapshot with one registry write applied (O(log n)), and what it changed for
    /// clients. Building a tool compiles its input schema and opens its sealed headers, as a
    /// full build does.
    pub fn apply(&self, delta: CatalogDelta, secrets: &SecretBox) -> (Catalog, CatalogChange) {
        let mut next = self.clone();
        let mut change = CatalogChange::default();
        let live = |gateway_id: &Option<String>| {
            gateway_id
                .as_ref()
                .is_none_or(|id| self.gateways.contains_key(id))
        };
        match delta {
            CatalogDelta::Tool(row) => {
                next.remove_item(&row.id, &mut change);
                let keep = row.enabled && live(&row.gateway_id);
                if let Some(tool) = keep.then(|| tool(row, secrets)).flatten() {
                    next.put_tool(Arc::new(tool));
                }
                change.tools = true;
            }
            CatalogDelta::Resource(row) => {
                let before = self.resources_by_id.get(&row.id).cloned();
                next.remove_item(&row.id, &mut change);
                if row.enabled && live(&row.gateway_id) {
                    let resource = Arc::new(resource(row));
                    if let (Some(before), Some(uri)) = (&before, &resource.uri)
                        && before.uri.as_ref() == Some(uri)
                        && (before.content != resource.content
                            || before.definition != resource.definition)
                    {
                        change.updated_resources.push(uri.clone());
                    }
                    next.put_resource(resource);
                }
                change.resources = true;
            }
            CatalogDelta::Prompt(row) => {
                next.remove_item(&row.id, &mut change);
                let keep = row.enabled && live(&row.gateway_id);
                if let Some(prompt) = keep.then(|| prompt(row)).flatten() {
                    next.put_prompt(Arc::new(prompt));
                }
                change.prompts = true;
            }
            CatalogDelta::Server(record) => {
                next.servers.remove(&record.row.id);
                if record.row.enabled {
                    next.servers
                        .insert(record.row.id.clone(), Arc::new(server(record)));
                }
                // Its clients' lists may all have changed.
                change.tools = true;
                change.resources = true;
                change.prompts = true;
            }
            CatalogDelta::Gateway(row) => {
                let id = row.id.clone();
                let before = next.gateways.remove(&id);
                let after = row.enabled.then(|| gateway(row, secrets)).flatten();
                match after {
                    Some(gateway) => {
                        next.gateways.insert(id, Arc::new(gateway));
                    }
                    // An upstream that is no longer served takes its items with it.
                    None if before.is_some() => next.remove_items_of(&id, &mut change),
                    None => {}
                }
            }
            CatalogDelta::Deleted(id) => {
                next.remove_item(&id, &mut change);
                if next.servers.remove(&id).is_some() {
                    change.tools = true;
                    change.resources = true;
                    change.prompts = true;
                }
                if next.gateways.remove(&id).is_some() {
                    next.remove_items_of(&id, &mut change);
                }
            }
        }
        (next, change)
    }

    /// Removes every item federated from the upstream `gateway_id` (a scan: upstreams leave
    /// rarely).
    fn remove_items_of(&mut self, gateway_id: &str, change: &mut CatalogChange) {
        let of_gateway = |target: Option<&str>| target == Some(gateway_id);
        let mut ids: Vec<String> = self
            .tools_by_id
            .values()
            .filter(|tool| {
                of_gateway(match &tool.target {
                    ToolTarget::Upstream { gateway_id, .. } => Some(gateway_id),
                    ToolTarget::Rest { .. } => None,
                })
            })
            .map(|tool| tool.id.clone())
            .collect();
        ids.extend(
            self.resources_by_id
                .values()
                .filter(|resource| of_gateway(resource.gateway_id.as_deref()))
                .map(|resource| resource.id.clone()),
        );
        ids.extend(
            self.prompts_by_id
                .values()
                .filter(|prompt| {
                    of_gateway(
                        prompt
                            .upstream
                            .as_ref()
                            .map(|(gateway, _)| gateway.as_str()),
                    )
                })
                .map(|prompt| prompt.id.clone()),
        );
        for id in ids {
            self.remove_item(&id, change);
        }
    }

    /// Removes the tool, resource or prompt with this id, noting which list changed.
    fn remove_item(&mut self, id: &str, change: &mut CatalogChange) {
        if let Some(tool) = self.tools_by_id.remove(id) {
            self.tools.remove(&tool.name);
            change.tools = true;
        }
        if let Some(resource) = self.resources_by_id.remove(id) {
            self.resources.remove(resource_key(&resource));
            if let Some(uri) = &resource.uri {
                self.resources_by_uri.remove(uri);
            }
            change.resources = true;
        }
        if let Some(prompt) = self.prompts_by_id.remove(id) {
            self.prompts.remove(&prompt.name);
            change.prompts = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::db::registry::ToolRow;

    fn row(id: &str, name: &str, enabled: bool) -> ToolRow {
        let at = chrono::DateTime::from_timestamp(0, 0).unwrap().naive_utc();
        ToolRow {
            id: id.into(),
            name: name.into(),
            description: None,
            integration_type: crate::db::stored::IntegrationType::Rest,
            url: Some("https://api.example/items".into()),
            request_type: Some(crate::db::stored::RequestType::Get),
            headers: "{}".into(),
            input_schema: r#"{"type":"object"}"#.into(),
            output_schema: None,
            annotations: "{}".into(),
            tags: "[]".into(),
            gateway_id: None,
            original_name: None,
            enabled,
            owner_email: None,
            team_id: None,
            visibility: crate::auth::rbac::Visibility::Public,
            created_at: at,
            updated_at: at,
            passthrough: "{}".into(),
        }
    }

    fn names(catalog: &Catalog) -> Vec<&str> {
        catalog.tools.keys().map(String::as_str).collect()
    }

    /// A write lands in a new snapshot (the old one is untouched), under its new name only;
    /// disabling or deleting takes it out of every index; an upstream's tool whose gateway is
    /// not live stays out.
    #[test]
    fn deltas_apply_in_place_and_keep_the_indexes_consistent() {
        let secrets = SecretBox::new("a test secret of some length");
        let empty = Catalog::default();
        let (one, change) = empty.apply(CatalogDelta::Tool(row("t1", "alpha", true)), &secrets);
        assert!(change.tools && !change.prompts && !change.resources);
        assert_eq!(names(&one), ["alpha"]);
        assert!(
            empty.tools.is_empty(),
            "the published snapshot is not changed"
        );

        let (renamed, _) = one.apply(CatalogDelta::Tool(row("t1", "beta", true)), &secrets);
        assert_eq!(names(&renamed), ["beta"]);
        assert_eq!(renamed.tools_by_id.len(), 1);

        let (disabled, change) =
            renamed.apply(CatalogDelta::Tool(row("t1", "beta", false)), &secrets);
        assert!(change.tools);
        assert!(disabled.tools.is_empty() && disabled.tools_by_id.is_empty());

        let (two, _) = renamed.apply(CatalogDelta::Tool(row("t2", "gamma", true)), &secrets);
        assert_eq!(names(&two), ["beta", "gamma"]);
        let (deleted, change) = two.apply(CatalogDelta::Deleted("t1".into()), &secrets);
        assert!(change.tools);
        assert_eq!(names(&deleted), ["gamma"]);
        assert!(!deleted.tools_by_id.contains_key("t1"));

        let mut federated = row("t3", "delta", true);
        federated.gateway_id = Some("not-live".into());
        let (same, _) = deleted.apply(CatalogDelta::Tool(federated), &secrets);
        assert_eq!(names(&same), ["gamma"]);
    }

    fn gateway_row(id: &str, enabled: bool) -> crate::db::registry::GatewayRow {
        let at = chrono::DateTime::from_timestamp(0, 0).unwrap().naive_utc();
        crate::db::registry::GatewayRow {
            id: id.into(),
            name: "upstream".into(),
            slug: "upstream".into(),
            url: "http://127.0.0.1:9/mcp".into(),
            transport: crate::db::stored::Transport::Streamablehttp,
            description: None,
            tags: "[]".into(),
            enabled,
            owner_email: None,
            team_id: None,
            visibility: crate::auth::rbac::Visibility::Public,
            created_at: at,
            updated_at: at,
            prefix_tool_names: false,
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
            command: None,
        }
    }

    /// A gateway's sync arrives as one batch (the gateway, then its changed items): its items
    /// become live with it, and leave with it when it is no longer served.
    #[test]
    fn a_gateway_sync_applies_as_one_batch() {
        let secrets = SecretBox::new("a test secret of some length");
        let mut federated = row("t1", "upstream-echo", true);
        federated.integration_type = crate::db::stored::IntegrationType::Mcp;
        federated.gateway_id = Some("g1".into());
        federated.original_name = Some("echo".into());
        let local = row("t2", "local", true);
        let (synced, change) = Catalog::default().apply_all(
            vec![
                CatalogDelta::Tool(local),
                CatalogDelta::Gateway(gateway_row("g1", true)),
                CatalogDelta::Tool(federated.clone()),
            ],
            &secrets,
        );
        assert!(change.tools);
        assert_eq!(names(&synced), ["local", "upstream-echo"]);
        assert!(synced.gateway("g1").is_some());

        // A refresh that changed nothing but the gateway row leaves the items alone.
        let (refreshed, change) = synced.apply_all(
            vec![CatalogDelta::Gateway(gateway_row("g1", true))],
            &secrets,
        );
        assert!(!change.tools);
        assert_eq!(names(&refreshed), ["local", "upstream-echo"]);

        // A vanished tool goes; a disabled gateway takes the rest of its items with it.
        let (vanished, _) = refreshed.apply_all(vec![CatalogDelta::Deleted("t1".into())], &secrets);
        assert_eq!(names(&vanished), ["local"]);
        let (again, _) = vanished.apply_all(vec![CatalogDelta::Tool(federated)], &secrets);
        assert_eq!(names(&again), ["local", "upstream-echo"]);
        let (disabled, change) = again.apply_all(
            vec![CatalogDelta::Gateway(gateway_row("g1", false))],
            &secrets,
        );
        assert!(change.tools);
        assert_eq!(names(&disabled), ["local"]);
        assert!(disabled.gateway("g1").is_none());

        // A deleted gateway takes its items with it.
        let (deleted, change) = again.apply_all(vec![CatalogDelta::Deleted("g1".into())], &secrets);
        assert!(change.tools);
        assert_eq!(names(&deleted), ["local"]);
        assert!(deleted.gateway("g1").is_none() && !deleted.tools_by_id.contains_key("t1"));
    }
}
