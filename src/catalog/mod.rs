//! The in-memory catalog: an immutable snapshot of every enabled tool, resource, prompt and
//! virtual server. The MCP hot path reads it without touching the database.
//!
//! Its collections are persistent maps (`imbl`): a snapshot is cloned in O(1) and a registry
//! write is applied as a [`CatalogDelta`] in O(log n) — the catalog is not rebuilt, so a write
//! costs the same whatever the registry's size. Full builds from the database happen at start
//! and on the periodic refresh (and after upstream discovery).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use imbl::{HashMap as ImHashMap, OrdMap};

mod build;
mod delta;

pub use self::delta::CatalogDelta;

use self::build::{gateway, prompt, resource, server, tool};
use crate::auth::rbac::Ownership;
use crate::auth::{On, Principal};
use crate::db::catalog::CatalogRows;
use crate::protocol::Encoded;
use crate::registry::prompts::PromptArgument;
use crate::secrets::SecretBox;
use crate::upstream::Target;

/// What a tool call is carried out with.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolTarget {
    /// An HTTP request to a REST endpoint.
    Rest {
        /// GET, POST, PUT, PATCH or DELETE.
        method: crate::db::stored::RequestType,
        /// The URL; `{name}` placeholders are filled from arguments.
        url: String,
        /// Headers sent with each call.
        headers: BTreeMap<String, String>,
        /// Arguments sent as headers instead: (argument, header).
        header_arguments: Vec<(String, String)>,
    },
    /// A tool of an upstream MCP server (federation).
    Upstream {
        /// The gateway it belongs to.
        gateway_id: String,
        /// Its name on the upstream.
        original_name: String,
    },
}

/// An upstream MCP server the catalog's federated items come from.
pub struct Gateway {
    /// Registry id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// How to reach it (credentials decrypted).
    pub target: Arc<Target>,
    /// Who owns it and may see it.
    pub access: Ownership,
}

/// A tool ready to list and call.
pub struct Tool {
    /// Registry id.
    pub id: String,
    /// MCP name.
    pub name: String,
    /// The MCP definition as listed (`name`, `description`, `inputSchema`, …), encoded.
    pub definition: Encoded,
    /// The compiled argument validator.
    pub validator: Option<jsonschema::Validator>,
    /// How it is carried out.
    pub target: ToolTarget,
    /// Who owns it and may see it.
    pub access: Ownership,
}

/// A resource or resource template.
pub struct Resource {
    /// Registry id.
    pub id: String,
    /// The fixed URI, or `None` for a template.
    pub uri: Option<String>,
    /// The URI template, or `None`.
    pub uri_template: Option<String>,
    /// The MCP definition as listed, encoded.
    pub definition: Encoded,
    /// MIME type.
    pub mime_type: Option<String>,
    /// Text content.
    pub content: Option<String>,
    /// The upstream it is read from, when federated.
    pub gateway_id: Option<String>,
    /// Who owns it and may see it.
    pub access: Ownership,
}

/// A prompt with its compiled template.
pub struct Prompt {
    /// Registry id.
    pub id: String,
    /// MCP name.
    pub name: String,
    /// The MCP definition as listed, encoded.
    pub definition: Encoded,
    /// Declared arguments.
    pub arguments: Vec<PromptArgument>,
    /// Its description.
    pub description: Option<String>,
    /// The template's source (Jinja; rendered in the sandbox).
    pub template: String,
    /// The upstream it is fetched from (gateway id, original name), when federated.
    pub upstream: Option<(String, String)>,
    /// Who owns it and may see it.
    pub access: Ownership,
}

/// A virtual server's members, in their configured order.
pub struct Server {
    /// Registry id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    tool_ids: Vec<String>,
    resource_ids: Vec<String>,
    prompt_ids: Vec<String>,
    /// The same members as sets, for lookups.
    members: HashSet<String>,
    /// Who owns it and may see it.
    pub access: Ownership,
}

/// Which items a request sees: one virtual server's members, or everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every enabled item (`/mcp`, `/rpc`).
    All,
    /// The members of one virtual server (`/servers/{id}/mcp`).
    Server(String),
}

/// What changed between two snapshots, for list_changed and resource update notifications.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CatalogChange {
    /// The tool list changed.
    pub tools: bool,
    /// The prompt list changed.
    pub prompts: bool,
    /// The resource (or template) list changed.
    pub resources: bool,
    /// Resources whose content or metadata changed.
    pub updated_resources: Vec<String>,
}

impl CatalogChange {
    /// Adds what `other` changed.
    pub fn merge(&mut self, other: CatalogChange) {
        self.tools |= other.tools;
        self.prompts |= other.prompts;
        self.resources |= other.resources;
        for uri in other.updated_resources {
            if !self.updated_resources.contains(&uri) {
                self.updated_resources.push(uri);
            }
        }
    }

    /// Whether anything changed.
    pub fn is_empty(&self) -> bool {
        !self.tools && !self.prompts && !self.resources && self.updated_resources.is_empty()
    }
}

/// How one kind of item is listed: its ordered index, its members in a server, its key (what a
/// cursor names) and who is shown it.
struct Listing<'a, T, S> {
    ordered: &'a OrdMap<String, Arc<T>>,
    by_id: &'a ImHashMap<String, Arc<T>>,
    members: fn(&Server) -> &Vec<String>,
    key: fn(&T) -> &str,
    shown: S,
}

/// One immutable snapshot. Names and URIs are unique in the registry: one entry each.
#[derive(Default, Clone)]
pub struct Catalog {
    /// By name, in name order (`tools/list`).
    tools: OrdMap<String, Arc<Tool>>,
    tools_by_id: ImHashMap<String, Arc<Tool>>,
    /// By URI or template, in that order.
    resources: OrdMap<String, Arc<Resource>>,
    resources_by_id: ImHashMap<String, Arc<Resource>>,
    resources_by_uri: ImHashMap<String, Arc<Resource>>,
    /// By name, in name order.
    prompts: OrdMap<String, Arc<Prompt>>,
    prompts_by_id: ImHashMap<String, Arc<Prompt>>,
    servers: ImHashMap<String, Arc<Server>>,
    gateways: ImHashMap<String, Arc<Gateway>>,
}

impl Catalog {
    /// Builds a snapshot from database rows. CPU-bound (compiles validators and templates):
    /// run it on a blocking thread. Federated items of a disabled (absent) gateway are left
    /// out.
    pub fn build(rows: CatalogRows, secrets: &SecretBox) -> Catalog {
        let gateways: ImHashMap<String, Arc<Gateway>> = rows
            .gateways
            .into_iter()
            .filter_map(|row| gateway(row, secrets).map(|g| (g.id.clone(), Arc::new(g))))
            .collect();
        let live = |gateway_id: &Option<String>| {
            gateway_id
                .as_ref()
                .is_none_or(|id| gateways.contains_key(id))
        };
        let tools: Vec<_> = rows
            .tools
            .into_iter()
            .filter(|row| live(&row.gateway_id))
            .collect();
        let resources: Vec<_> = rows
            .resources
            .into_iter()
            .filter(|row| live(&row.gateway_id))
            .collect();
        let prompts: Vec<_> = rows
            .prompts
            .into_iter()
            .filter(|row| live(&row.gateway_id))
            .collect();
        let mut catalog = Catalog {
            gateways,
            ..Catalog::default()
        };
        for tool in tools.into_iter().filter_map(|row| tool(row, secrets)) {
            catalog.put_tool(Arc::new(tool));
        }
        for row in resources {
            catalog.put_resource(Arc::new(resource(row)));
        }
        for prompt in prompts.into_iter().filter_map(prompt) {
            catalog.put_prompt(Arc::new(prompt));
        }
        for record in rows.servers {
            catalog
                .servers
                .insert(record.row.id.clone(), Arc::new(server(record)));
        }
        catalog
    }

    fn put_tool(&mut self, tool: Arc<Tool>) {
        self.tools_by_id.insert(tool.id.clone(), tool.clone());
        self.tools.insert(tool.name.clone(), tool);
    }

    fn put_resource(&mut self, resource: Arc<Resource>) {
        self.resources_by_id
            .insert(resource.id.clone(), resource.clone());
        if let Some(uri) = &resource.uri {
            self.resources_by_uri.insert(uri.clone(), resource.clone());
        }
        self.resources
            .insert(resource_key(&resource).to_owned(), resource);
    }

    fn put_prompt(&mut self, prompt: Arc<Prompt>) {
        self.prompts_by_id.insert(prompt.id.clone(), prompt.clone());
        self.prompts.insert(prompt.name.clone(), prompt);
    }

    /// The enabled gateway with this id.
    pub fn gateway(&self, id: &str) -> Option<Arc<Gateway>> {
        self.gateways.get(id).cloned()
    }

    /// Every enabled gateway.
    pub fn gateways(&self) -> Vec<Arc<Gateway>> {
        self.gateways.values().cloned().collect()
    }

    /// How many enabled virtual servers a principal may see.
    pub fn servers_seen_by(&self, viewer: &Principal) -> usize {
        self.servers
            .values()
            .filter(|server| viewer.permits("servers.read", On::Item(&server.access)))
            .count()
    }

    /// How many enabled gateways a principal may see.
    pub fn gateways_seen_by(&self, viewer: &Principal) -> usize {
        self.gateways
            .values()
            .filter(|gateway| viewer.permits("gateways.read", On::Item(&gateway.access)))
            .count()
    }

    /// The virtual server with this id, if it exists and is enabled.
    pub fn server(&self, id: &str) -> Option<&Server> {
        self.servers.get(id).map(|server| &**server)
    }

    /// The tools a scope shows a principal: a server's members in their order, or all by
    /// name; only those the principal may see.
    pub fn tools(&self, scope: &Scope, viewer: &Principal) -> Vec<Arc<Tool>> {
        let tools = match scope {
            Scope::All => self.tools.values().cloned().collect(),
            Scope::Server(id) => self.members(id, |s| &s.tool_ids, &self.tools_by_id),
        };
        tools
            .into_iter()
            .filter(|t| viewer.permits("tools.read", On::Item(&t.access)))
            .collect()
    }

    /// The tool named `name` in a scope, if the principal may see it: by index, whatever the
    /// registry's size.
    pub fn tool(&self, scope: &Scope, viewer: &Principal, name: &str) -> Option<Arc<Tool>> {
        let tool = self.tools.get(name)?;
        (self.in_scope(scope, &tool.id) && viewer.sees(&tool.access)).then(|| tool.clone())
    }

    /// Whether an item is in a scope: everything is in `All`; a server holds its members.
    fn in_scope(&self, scope: &Scope, id: &str) -> bool {
        match scope {
            Scope::All => true,
            Scope::Server(server) => self
                .servers
                .get(server)
                .is_some_and(|server| server.members.contains(id)),
        }
    }

    /// Fixed-URI resources a scope shows a principal.
    pub fn resources(&self, scope: &Scope, viewer: &Principal) -> Vec<Arc<Resource>> {
        self.all_resources(scope, viewer)
            .into_iter()
            .filter(|r| r.uri.is_some())
            .collect()
    }

    /// Resource templates a scope shows a principal.
    pub fn templates(&self, scope: &Scope, viewer: &Principal) -> Vec<Arc<Resource>> {
        self.all_resources(scope, viewer)
            .into_iter()
            .filter(|r| r.uri_template.is_some())
            .collect()
    }

    fn all_resources(&self, scope: &Scope, viewer: &Principal) -> Vec<Arc<Resource>> {
        let resources = match scope {
            Scope::All => self.resources.values().cloned().collect(),
            Scope::Server(id) => self.members(id, |s| &s.resource_ids, &self.resources_by_id),
        };
        resources
            .into_iter()
            .filter(|r| viewer.permits("resources.read", On::Item(&r.access)))
            .collect()
    }

    /// The resource with this URI in a scope, if the principal may see it.
    pub fn resource(&self, scope: &Scope, viewer: &Principal, uri: &str) -> Option<Arc<Resource>> {
        let resource = self.resources_by_uri.get(uri)?;
        (self.in_scope(scope, &resource.id)
            && viewer.permits("resources.read", On::Item(&resource.access)))
        .then(|| resource.clone())
    }

    /// Prompts a scope shows a principal.
    pub fn prompts(&self, scope: &Scope, viewer: &Principal) -> Vec<Arc<Prompt>> {
        let prompts = match scope {
            Scope::All => self.prompts.values().cloned().collect(),
            Scope::Server(id) => self.members(id, |s| &s.prompt_ids, &self.prompts_by_id),
        };
        prompts
            .into_iter()
            .filter(|p| viewer.permits("prompts.read", On::Item(&p.access)))
            .collect()
    }

    /// The prompt named `name` in a scope, if the principal may see it.
    pub fn prompt(&self, scope: &Scope, viewer: &Principal, name: &str) -> Option<Arc<Prompt>> {
        let prompt = self.prompts.get(name)?;
        (self.in_scope(scope, &prompt.id)
            && viewer.permits("prompts.read", On::Item(&prompt.access)))
        .then(|| prompt.clone())
    }

    /// One page of the tools a scope shows a principal, after the one named `after` (see
    /// [`Catalog::page`]).
    pub fn tools_page(
        &self,
        scope: &Scope,
        viewer: &Principal,
        after: Option<&str>,
        limit: usize,
    ) -> Option<Vec<Arc<Tool>>> {
        let listing = Listing {
            ordered: &self.tools,
            by_id: &self.tools_by_id,
            members: |s: &Server| &s.tool_ids,
            key: |t: &Tool| t.name.as_str(),
            shown: |t: &Tool| viewer.permits("tools.read", On::Item(&t.access)),
        };
        self.page(scope, listing, after, limit)
    }

    /// One page of the prompts a scope shows a principal, after the one named `after`.
    pub fn prompts_page(
        &self,
        scope: &Scope,
        viewer: &Principal,
        after: Option<&str>,
        limit: usize,
    ) -> Option<Vec<Arc<Prompt>>> {
        let listing = Listing {
            ordered: &self.prompts,
            by_id: &self.prompts_by_id,
            members: |s: &Server| &s.prompt_ids,
            key: |p: &Prompt| p.name.as_str(),
            shown: |p: &Prompt| viewer.permits("prompts.read", On::Item(&p.access)),
        };
        self.page(scope, listing, after, limit)
    }

    /// One page of the fixed-URI resources (`templates`: the resource templates) a scope shows
    /// a principal, after the one whose URI (template) is `after`.
    pub fn resources_page(
        &self,
        scope: &Scope,
        viewer: &Principal,
        templates: bool,
        after: Option<&str>,
        limit: usize,
    ) -> Option<Vec<Arc<Resource>>> {
        let listing = Listing {
            ordered: &self.resources,
            by_id: &self.resources_by_id,
            members: |s: &Server| &s.resource_ids,
            key: resource_key,
            shown: |r: &Resource| {
                r.uri.is_none() == templates
                    && viewer.permits("resources.read", On::Item(&r.access))
            },
        };
        self.page(scope, listing, after, limit)
    }

    /// At most `limit + 1` items of a list after the one keyed `after` (so the caller knows
    /// whether more follow): a range of the ordered index for `All` (no scan of what comes
    /// before), the server's own order for a server. `None` when a server has no member keyed
    /// `after` (the cursor is stale); in `All` a key that is gone still marks a place.
    fn page<T, S: Fn(&T) -> bool>(
        &self,
        scope: &Scope,
        listing: Listing<'_, T, S>,
        after: Option<&str>,
        limit: usize,
    ) -> Option<Vec<Arc<T>>> {
        use std::ops::Bound::{Excluded, Unbounded};
        let shown = |item: &&Arc<T>| (listing.shown)(item);
        match scope {
            Scope::All => {
                let from = after.map_or(Unbounded, Excluded);
                Some(
                    listing
                        .ordered
                        .range::<_, str>((from, Unbounded))
                        .map(|(_, item)| item)
                        .filter(shown)
                        .take(limit + 1)
                        .cloned()
                        .collect(),
                )
            }
            Scope::Server(id) => {
                let Some(server) = self.servers.get(id) else {
                    return Some(Vec::new());
                };
                let mut members = (listing.members)(server)
                    .iter()
                    .filter_map(|id| listing.by_id.get(id));
                if let Some(after) = after {
                    members.find(|item| (listing.key)(item) == after)?;
                }
                Some(members.filter(shown).take(limit + 1).cloned().collect())
            }
        }
    }

    fn members<T>(
        &self,
        server_id: &str,
        ids: impl Fn(&Server) -> &Vec<String>,
        by_id: &ImHashMap<String, Arc<T>>,
    ) -> Vec<Arc<T>> {
        match self.servers.get(server_id) {
            Some(server) => ids(server)
                .iter()
                .filter_map(|id| by_id.get(id).cloned())
                .collect(),
            None => Vec::new(),
        }
    }

    /// What differs from an older snapshot.
    pub fn changes_since(&self, old: &Catalog) -> CatalogChange {
        let definitions = |items: &OrdMap<String, Arc<Tool>>| {
            items
                .values()
                .map(|t| t.definition.clone())
                .collect::<Vec<_>>()
        };
        let prompt_definitions = |items: &OrdMap<String, Arc<Prompt>>| {
            items
                .values()
                .map(|p| p.definition.clone())
                .collect::<Vec<_>>()
        };
        let resource_definitions = |items: &OrdMap<String, Arc<Resource>>| {
            items
                .values()
                .map(|r| r.definition.clone())
                .collect::<Vec<_>>()
        };
        let membership = |catalog: &Catalog| {
            let mut servers: Vec<String> = catalog
                .servers
                .iter()
                .map(|(id, s)| {
                    format!(
                        "{id}:{:?}:{:?}:{:?}",
                        s.tool_ids, s.resource_ids, s.prompt_ids
                    )
                })
                .collect();
            servers.sort();
            servers
        };
        let members_changed = membership(self) != membership(old);
        let old_content: HashMap<&str, (&Option<String>, &Encoded)> = old
            .resources
            .values()
            .filter_map(|r| {
                r.uri
                    .as_deref()
                    .map(|uri| (uri, (&r.content, &r.definition)))
            })
            .collect();
        let updated_resources = self
            .resources
            .values()
            .filter_map(|r| {
                let uri = r.uri.as_deref()?;
                let before = old_content.get(uri)?;
                (before.0 != &r.content || before.1 != &r.definition).then(|| uri.to_owned())
            })
            .collect();
        CatalogChange {
            tools: members_changed || definitions(&self.tools) != definitions(&old.tools),
            prompts: members_changed
                || prompt_definitions(&self.prompts) != prompt_definitions(&old.prompts),
            resources: members_changed
                || resource_definitions(&self.resources) != resource_definitions(&old.resources),
            updated_resources,
        }
    }
}

fn resource_key(resource: &Resource) -> &str {
    resource
        .uri
        .as_deref()
        .or(resource.uri_template.as_deref())
        .unwrap_or_default()
}
