//! Registry operations, generic over [`Entity`]: list, get, create, update, delete and
//! enable/disable a tool, resource, prompt, server or gateway record as a principal. Who may see
//! an item, change it or create one in a team is decided here, through the one authorization
//! point; the REST API and the console call these and nothing below them.

use std::future::Future;
use std::sync::Arc;

use super::audit::Entry;
use super::{Outcome, Services};
use crate::actors::db::{Db, DbError};
use crate::auth::{Denied, On, Principal};
use crate::catalog::CatalogDelta;
use crate::db::catalog::LoadCatalog;
use crate::db::registry::{
    ApplyChange, DeleteRecord, GatewayRow, GetRecord, HasId, InsertRecord, ListRecords, PromptRow,
    ResourceRow, ServerRecord, SetRecordEnabled, ToolRow, UpdateRecord, Viewer,
};
use crate::db::{UnitOfWork, WorkError, now};
use crate::error::ApiError;
use crate::registry::gateways::Gateways;
use crate::registry::prompts::Prompts;
use crate::registry::resources::Resources;
use crate::registry::servers::Servers;
use crate::registry::tools::Tools;
use crate::registry::{Change, Entity};

/// An entity whose records the DbActor can store: the registry's units of work, for one record
/// type. Every [`Entity`] whose record has them is one.
pub trait Managed: Entity + Cataloged {
    /// Stores a new record.
    fn insert(db: &Db, record: Self::Record)
    -> impl Future<Output = Result<Self::Record, DbError>>;
    /// Loads a record.
    fn fetch(db: &Db, id: &str) -> impl Future<Output = Result<Self::Record, DbError>>;
    /// One page of records after `after`, of those `viewer` may see (`None`: all).
    fn page(
        db: &Db,
        after: Option<String>,
        limit: i64,
        include_inactive: bool,
        viewer: Option<Viewer>,
    ) -> impl Future<Output = Result<Vec<Self::Record>, DbError>>;
    /// Reads, changes and writes back a record in one transaction.
    fn apply(
        db: &Db,
        id: &str,
        apply: ApplyChange<Self::Record>,
    ) -> impl Future<Output = Result<Self::Record, DbError>>;
    /// Deletes a record.
    fn remove(db: &Db, id: &str) -> impl Future<Output = Result<(), DbError>>;
    /// Enables or disables a record (`None` flips it).
    fn enable(
        db: &Db,
        id: &str,
        enabled: Option<bool>,
    ) -> impl Future<Output = Result<Self::Record, DbError>>;
}

/// How a write reaches the in-memory catalog.
pub enum Reach {
    /// Applied in place.
    Delta(Box<CatalogDelta>),
    /// An upstream is served (again): it and its items are read back and applied in place.
    Upstream(String),
}

/// How a stored record of an entity reaches the in-memory catalog: always in place, never by
/// reloading everything.
pub trait Cataloged: Entity {
    /// The record as stored after a write.
    fn stored(record: &Self::Record) -> Reach;
    /// The record with this id was deleted.
    fn deleted(id: &str) -> Reach {
        Reach::Delta(Box::new(CatalogDelta::Deleted(id.to_owned())))
    }
}

impl Cataloged for Tools {
    fn stored(record: &ToolRow) -> Reach {
        Reach::Delta(Box::new(CatalogDelta::Tool(record.clone())))
    }
}

impl Cataloged for Resources {
    fn stored(record: &ResourceRow) -> Reach {
        Reach::Delta(Box::new(CatalogDelta::Resource(record.clone())))
    }
}

impl Cataloged for Prompts {
    fn stored(record: &PromptRow) -> Reach {
        Reach::Delta(Box::new(CatalogDelta::Prompt(record.clone())))
    }
}

impl Cataloged for Servers {
    fn stored(record: &ServerRecord) -> Reach {
        Reach::Delta(Box::new(CatalogDelta::Server(record.clone())))
    }
}

impl Cataloged for Gateways {
    /// A disabled upstream leaves the catalog with its items; an enabled one is read back with
    /// its items (they may have to come back).
    fn stored(record: &GatewayRow) -> Reach {
        if record.enabled {
            Reach::Upstream(record.id.clone())
        } else {
            Reach::Delta(Box::new(CatalogDelta::Gateway(record.clone())))
        }
    }
    // A deleted upstream takes its items with it (the database deleted them too).
}

impl<E: Entity + Cataloged> Managed for E
where
    InsertRecord<E::Record>: UnitOfWork<Output = E::Record>,
    GetRecord<E::Record>: UnitOfWork<Output = E::Record>,
    ListRecords<E::Record>: UnitOfWork<Output = Vec<E::Record>>,
    UpdateRecord<E::Record>: UnitOfWork<Output = E::Record>,
    DeleteRecord<E::Record>: UnitOfWork<Output = ()>,
    SetRecordEnabled<E::Record>: UnitOfWork<Output = E::Record>,
{
    fn insert(db: &Db, record: E::Record) -> impl Future<Output = Result<E::Record, DbError>> {
        db.run(InsertRecord { record })
    }

    fn fetch(db: &Db, id: &str) -> impl Future<Output = Result<E::Record, DbError>> {
        db.run(GetRecord::<E::Record>::new(id))
    }

    fn page(
        db: &Db,
        after: Option<String>,
        limit: i64,
        include_inactive: bool,
        viewer: Option<Viewer>,
    ) -> impl Future<Output = Result<Vec<E::Record>, DbError>> {
        db.run(ListRecords::<E::Record>::new(
            after,
            limit,
            include_inactive,
            viewer,
        ))
    }

    fn apply(
        db: &Db,
        id: &str,
        apply: ApplyChange<E::Record>,
    ) -> impl Future<Output = Result<E::Record, DbError>> {
        db.run(UpdateRecord {
            id: id.to_owned(),
            apply,
        })
    }

    fn remove(db: &Db, id: &str) -> impl Future<Output = Result<(), DbError>> {
        db.run(DeleteRecord::<E::Record>::new(id))
    }

    fn enable(
        db: &Db,
        id: &str,
        enabled: Option<bool>,
    ) -> impl Future<Output = Result<E::Record, DbError>> {
        db.run(SetRecordEnabled::<E::Record>::new(id, enabled))
    }
}

/// One page of the records `principal` may see, after the record `after`; `limit + 1` are read
/// so the caller knows whether another page follows.
pub async fn list<E: Managed>(
    services: &Services,
    principal: &Principal,
    after: Option<String>,
    limit: u32,
    include_inactive: bool,
) -> Outcome<Vec<E::Record>> {
    allowed::<E>(principal, "read")?;
    E::page(
        &services.db,
        after,
        i64::from(limit) + 1,
        include_inactive,
        viewer(principal),
    )
    .await
    .map_err(|error| map_db::<E>(error, None))
}

/// Every record of one kind `principal` may see, disabled ones included, read page by page (at
/// most `max`).
pub async fn visible<E: Managed>(
    services: &Services,
    principal: &Principal,
    max: usize,
) -> Outcome<Vec<E::Record>> {
    const PAGE: usize = 500;
    let mut records: Vec<E::Record> = Vec::new();
    loop {
        let after = records.last().map(|record| E::id(record).to_owned());
        let page = E::page(&services.db, after, PAGE as i64, true, viewer(principal))
            .await
            .map_err(|error| map_db::<E>(error, None))?;
        let full = page.len() == PAGE;
        records.extend(page);
        if !full || records.len() >= max {
            return Ok(records);
        }
    }
}

/// What [`visible`] returns, as the API shows it.
pub async fn visible_views<E: Managed>(
    services: &Services,
    principal: &Principal,
    max: usize,
) -> Outcome<Vec<E::View>> {
    let records = visible::<E>(services, principal, max).await?;
    Ok(records.into_iter().map(E::view).collect())
}

/// The record `id`, if `principal` may see it.
pub async fn get<E: Managed>(
    services: &Services,
    principal: &Principal,
    id: &str,
) -> Outcome<E::Record> {
    authorized::<E>(services, principal, id, "read").await
}

/// Creates a record as `principal` (the checks of `POST /X`), then refreshes the catalog.
pub async fn create<E: Managed>(
    services: &Services,
    principal: &Principal,
    input: E::Create,
) -> Outcome<E::Record> {
    allowed::<E>(principal, "create")?;
    let change = Change {
        actor_email: &principal.email,
        now: now(),
        secrets: &services.secrets,
    };
    let record = E::create(input, &change)?;
    may_create::<E>(principal, &record)?;
    if let Some(url) = E::egress_url(&record) {
        egress_allows(services, url).await?;
    }
    let stored = stored::<E, _>(services, None, E::insert(&services.db, record), E::stored).await?;
    services.audit(principal, audited::<E>("create", None, Some(&stored)));
    Ok(stored)
}

/// The audit entry of `action` on a record of `E`, from its views before and after.
fn audited<E: Entity>(
    action: &str,
    before: Option<&E::Record>,
    after: Option<&E::Record>,
) -> Entry {
    let mut entry = Entry::new(format!("{}.{action}", E::PATH), E::NOUN);
    if let Some(record) = after.or(before) {
        entry = entry.id(E::id(record));
    }
    if let Some(record) = before {
        entry = entry.before(&E::view(record.clone()));
    }
    if let Some(record) = after {
        entry = entry.after(&E::view(record.clone()));
    }
    entry
}

/// Applies an update as `principal` (the checks of `PUT /X/{id}`, including a move to another
/// team), then refreshes the catalog.
pub async fn update<E: Managed>(
    services: &Services,
    principal: &Principal,
    id: &str,
    input: E::Update,
) -> Outcome<E::Record> {
    let before = authorized::<E>(services, principal, id, "update").await?;
    if let Some(url) = E::egress_url_of_update(&input) {
        egress_allows(services, url).await?;
    }
    let input = Arc::new(input);
    let actor_email = principal.email.clone();
    let changed_at = now();
    let mover = principal.clone();
    let secrets = services.secrets.clone();
    let apply = move |stored: E::Record| {
        let change = Change {
            actor_email: &actor_email,
            now: changed_at,
            secrets: &secrets,
        };
        let before = stored.ownership().team_id;
        let changed = E::update(stored, &input, &change)
            .map_err(|invalid| WorkError::rejected(invalid.field, invalid.message))?;
        // Moving it to another team: one of yours, where you may change such items.
        let after = changed.ownership().team_id;
        if after != before
            && let Some(team) = &after
            && let Err(refused) =
                mover.authorize(&format!("{}.update", E::PATH), On::NewItem(Some(team)))
        {
            return Err(WorkError::rejected("team_id", refused.to_string()));
        }
        Ok(changed)
    };
    let after = stored::<E, _>(
        services,
        Some(id),
        E::apply(&services.db, id, Arc::new(apply)),
        E::stored,
    )
    .await?;
    services.audit(
        principal,
        audited::<E>("update", Some(&before), Some(&after)),
    );
    Ok(after)
}

/// Deletes a record as `principal` (the checks of `DELETE /X/{id}`); returns what was deleted.
pub async fn delete<E: Managed>(
    services: &Services,
    principal: &Principal,
    id: &str,
) -> Outcome<E::Record> {
    let record = authorized::<E>(services, principal, id, "delete").await?;
    stored::<E, _>(services, Some(id), E::remove(&services.db, id), |()| {
        E::deleted(id)
    })
    .await?;
    services.audit(principal, audited::<E>("delete", Some(&record), None));
    Ok(record)
}

/// Enables or disables a record as `principal` (`None` flips it).
pub async fn set_enabled<E: Managed>(
    services: &Services,
    principal: &Principal,
    id: &str,
    activate: Option<bool>,
) -> Outcome<E::Record> {
    let before = authorized::<E>(services, principal, id, "update").await?;
    let after = stored::<E, _>(
        services,
        Some(id),
        E::enable(&services.db, id, activate),
        E::stored,
    )
    .await?;
    let mut entry = audited::<E>("enable", Some(&before), Some(&after));
    if entry.after.as_ref().and_then(|view| view.get("enabled")) == Some(&false.into()) {
        entry.action = format!("{}.disable", E::PATH);
    }
    services.audit(principal, entry);
    Ok(after)
}

/// Waits for a change to be stored, then has the catalog serve it, in place (a reload only if
/// an upstream served again cannot be read back).
async fn stored<E: Entity, T>(
    services: &Services,
    id: Option<&str>,
    change: impl Future<Output = Result<T, DbError>>,
    reach: impl FnOnce(&T) -> Reach,
) -> Outcome<T> {
    let stored = change.await.map_err(|error| map_db::<E>(error, id))?;
    match reach(&stored) {
        Reach::Delta(delta) => {
            // An upstream deleted or disabled: what the gateway holds open for it (a session,
            // a stdio process) ends once the catalog no longer serves it.
            let released = match delta.as_ref() {
                CatalogDelta::Deleted(id) if E::PATH == Gateways::PATH => Some(id.clone()),
                CatalogDelta::Gateway(row) => Some(row.id.clone()),
                _ => None,
            };
            services.catalog.apply(*delta).await;
            if let Some(gateway_id) = released {
                services.federation.release(&gateway_id).await;
            }
        }
        Reach::Upstream(gateway_id) => {
            match services.db.run(LoadCatalog::upstream(&gateway_id)).await {
                Ok(rows) => services.catalog.apply_all(rows.into_deltas()).await,
                Err(error) => {
                    tracing::warn!(%error, "could not read an upstream back; reloading the catalog");
                    services.catalog.refresh().await;
                }
            }
        }
    }
    Ok(stored)
}

/// Refuses a URL the egress policy would refuse to connect to (422 naming the rule); every
/// connection is checked again when it is made.
async fn egress_allows(services: &Services, url: &str) -> Outcome<()> {
    services
        .settings
        .federation
        .egress
        .check_url_now(url.trim())
        .await
        .map_err(|denied| ApiError::InvalidField {
            field: "url".into(),
            message: denied.to_string(),
        })
}

/// Refuses a new record in a team the principal does not belong to (422) or may not create
/// in (403).
pub fn may_create<E: Entity>(principal: &Principal, record: &E::Record) -> Outcome<()> {
    let team = record.ownership().team_id;
    match principal.authorize(&format!("{}.create", E::PATH), On::NewItem(team.as_deref())) {
        Ok(()) => Ok(()),
        Err(Denied::NotMember { .. }) => Err(ApiError::InvalidField {
            field: "team_id".into(),
            message: "you are not a member of this team".into(),
        }),
        Err(denied) => Err(ApiError::from_auth(denied.into())),
    }
}

/// What a principal's lists show: everything for platform admins, else what they may see.
fn viewer(principal: &Principal) -> Option<Viewer> {
    (!principal.sees_every_item()).then(|| Viewer {
        email: principal.email.clone(),
        teams: principal.team_ids().map(str::to_owned).collect(),
    })
}

/// Loads the record `id` if the principal may see it (else 404, as if it did not exist) and
/// may `action` it in its team (else 403).
pub async fn authorized<E: Managed>(
    services: &Services,
    principal: &Principal,
    id: &str,
    action: &str,
) -> Outcome<E::Record> {
    allowed::<E>(principal, action)?;
    let record = E::fetch(&services.db, id)
        .await
        .map_err(|error| map_db::<E>(error, Some(id)))?;
    let ownership = record.ownership();
    match principal.authorize(&format!("{}.{action}", E::PATH), On::Item(&ownership)) {
        Ok(()) => {}
        Err(Denied::NotVisible) => {
            return Err(map_db::<E>(DbError::NotFound, Some(id)));
        }
        Err(Denied::NotOwner { owner }) => {
            return Err(ApiError::from_auth(crate::auth::AuthError::Forbidden(
                format!(
                    "this {} belongs to {owner}; only its owner, its team or a platform admin may change it",
                    E::NOUN,
                ),
            )));
        }
        Err(denied) => return Err(ApiError::from_auth(denied.into())),
    }
    Ok(record)
}

/// Refuses unless the principal's roles grant `<entity>.<action>` (`tools.create`, …).
pub fn allowed<E: Entity>(principal: &Principal, action: &str) -> Outcome<()> {
    principal
        .authorize(&format!("{}.{action}", E::PATH), On::Anywhere)
        .map_err(|denied| ApiError::from_auth(denied.into()))
}

/// Maps a database error for an entity (conflicts get the entity's message).
pub fn map_db<E: Entity>(error: DbError, id: Option<&str>) -> ApiError {
    match error {
        DbError::Conflict { constraint } => ApiError::Conflict(E::conflict_message(&constraint)),
        other => ApiError::from_db(other, E::NOUN, id),
    }
}
