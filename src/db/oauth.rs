//! Units of work for the built-in OAuth 2.1 authorization server: clients, consents,
//! single-use authorization codes and grants whose refresh token rotates — a refresh token
//! presented twice revokes its grant, and every access token id a revocation ends goes into
//! `revoked_tokens` in the same transaction.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::{
    oauth_clients, oauth_codes, oauth_consents, oauth_grants, oauth_used_refresh, revoked_tokens,
    users,
};
use super::{DbConn, WorkResult};
use crate::unit_of_work;

/// A registered client.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = oauth_clients)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct ClientRow {
    pub client_id: String,
    pub client_name: Option<String>,
    /// JSON array of the registered redirect URIs.
    pub redirect_uris: String,
    /// The registration as accepted (JSON), answered to the client.
    pub metadata: String,
    /// `dynamic` (RFC 7591) or `metadata_document` (a client ID metadata document).
    pub source: String,
    pub created_at: NaiveDateTime,
}

/// An authorization code, by its hash.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = oauth_codes)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct CodeRow {
    pub code_hash: String,
    pub client_id: String,
    pub user_email: String,
    pub redirect_uri: String,
    /// The S256 challenge.
    pub code_challenge: String,
    /// The MCP endpoint the token will be for.
    pub resource: String,
    pub scope: Option<String>,
    pub expires_at: NaiveDateTime,
    pub used_at: Option<NaiveDateTime>,
    /// The grant it was exchanged for.
    pub grant_id: Option<String>,
}

/// A grant: what one authorization gave one client.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = oauth_grants)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct GrantRow {
    pub id: String,
    pub client_id: String,
    pub user_email: String,
    pub resource: String,
    pub scope: Option<String>,
    /// The current refresh token's hash.
    pub refresh_hash: String,
    /// The current access token's id.
    pub access_jti: String,
    pub created_at: NaiveDateTime,
    pub refreshed_at: NaiveDateTime,
    /// When the refresh token stops working.
    pub expires_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
    pub revoked_reason: Option<String>,
}

/// Revokes grant `id` and refuses its access token from now on (in the caller's transaction).
async fn revoke_grant(
    mut conn: DbConn<'_>,
    grant: &GrantRow,
    reason: &str,
    at: NaiveDateTime,
) -> WorkResult<()> {
    let revoke = diesel::update(oauth_grants::table.find(&grant.id))
        .filter(oauth_grants::revoked_at.is_null())
        .set((
            oauth_grants::revoked_at.eq(Some(at)),
            oauth_grants::revoked_reason.eq(Some(reason)),
        ));
    crate::on_backend!(conn.reborrow(), c => revoke.execute(c).await)?;
    let refuse = diesel::insert_into(revoked_tokens::table)
        .values((
            revoked_tokens::jti.eq(&grant.access_jti),
            revoked_tokens::revoked_at.eq(at),
            revoked_tokens::expires_at.eq(None::<NaiveDateTime>),
        ))
        .on_conflict_do_nothing();
    crate::on_backend!(conn, c => refuse.execute(c).await)?;
    Ok(())
}

unit_of_work! {
    /// Stores a client.
    RegisterClient { row: ClientRow } -> (),
    "oauth.register", Write, transactional = true,
    |this, conn| {
        let insert = diesel::insert_into(oauth_clients::table).values(&this.row);
        crate::on_backend!(conn, c => insert.execute(c).await)?;
        Ok(())
    }
}

unit_of_work! {
    /// Stores (or replaces) the record of a client whose id is its metadata document's URL.
    StoreDocumentClient { row: ClientRow } -> (),
    "oauth.store_document_client", Write, transactional = true,
    |this, conn| {
        let upsert = diesel::insert_into(oauth_clients::table)
            .values(&this.row)
            .on_conflict(oauth_clients::client_id)
            .do_update()
            .set((
                oauth_clients::client_name.eq(this.row.client_name.clone()),
                oauth_clients::redirect_uris.eq(this.row.redirect_uris.clone()),
                oauth_clients::metadata.eq(this.row.metadata.clone()),
                oauth_clients::source.eq(this.row.source.clone()),
            ));
        crate::on_backend!(conn, c => upsert.execute(c).await)?;
        Ok(())
    }
}

unit_of_work! {
    /// A client, if registered.
    GetClient { client_id: String } -> Option<ClientRow>,
    "oauth.client", Read, transactional = false,
    |this, conn| {
        Ok(crate::on_backend!(conn, c => {
            oauth_clients::table
                .find(&this.client_id)
                .select(ClientRow::as_select())
                .first(c)
                .await
                .optional()
        })?)
    }
}

unit_of_work! {
    /// Whether `email` consented to `client_id`.
    HasConsent { email: String, client_id: String } -> bool,
    "oauth.consent", Read, transactional = false,
    |this, conn| {
        let count = crate::on_backend!(conn, c => {
            oauth_consents::table
                .filter(oauth_consents::user_email.eq(&this.email))
                .filter(oauth_consents::client_id.eq(&this.client_id))
                .count()
                .get_result::<i64>(c)
                .await
        })?;
        Ok(count > 0)
    }
}

unit_of_work! {
    /// Remembers that `email` consented to `client_id`, and stores the code issued with it.
    IssueCode { consent: bool, code: CodeRow } -> (),
    "oauth.code", Write, transactional = true,
    |this, conn| {
        let mut conn = conn;
        if this.consent {
            let remember = diesel::insert_into(oauth_consents::table)
                .values((
                    oauth_consents::user_email.eq(&this.code.user_email),
                    oauth_consents::client_id.eq(&this.code.client_id),
                    oauth_consents::created_at.eq(super::now()),
                ))
                .on_conflict_do_nothing();
            crate::on_backend!(conn.reborrow(), c => remember.execute(c).await)?;
        }
        let store = diesel::insert_into(oauth_codes::table).values(&this.code);
        crate::on_backend!(conn, c => store.execute(c).await)?;
        Ok(())
    }
}

/// A code exchange as the client sent it, and what to store if it is accepted.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub client_id: String,
    pub redirect_uri: String,
    /// The S256 challenge of the verifier sent.
    pub challenge: String,
    /// The resource asked for (none: the code's).
    pub resource: Option<String>,
    /// The new grant's id, refresh token hash and access token id.
    pub grant_id: String,
    pub refresh_hash: String,
    pub access_jti: String,
    pub refresh_expires_at: NaiveDateTime,
}

impl Exchange {
    /// Why `code` does not fit this exchange, if it does not.
    pub fn problem(&self, code: &CodeRow, now: NaiveDateTime) -> Option<&'static str> {
        if code.client_id != self.client_id {
            Some("the code was issued to another client")
        } else if code.redirect_uri != self.redirect_uri {
            Some("redirect_uri is not the one the code was issued for")
        } else if code.expires_at <= now {
            Some("the code has expired; authorize again")
        } else if code.code_challenge != self.challenge {
            Some("code_verifier does not match the code_challenge (PKCE)")
        } else if self
            .resource
            .as_ref()
            .is_some_and(|resource| *resource != code.resource)
        {
            Some("resource is not the one the code was issued for")
        } else {
            None
        }
    }
}

/// What presenting a code found.
#[derive(Clone, Debug)]
pub enum Redeemed {
    /// No such code.
    Unknown,
    /// Used before: the grant it gave (if any) is now revoked; its access token id.
    Replayed(Option<String>),
    /// First use, but the exchange does not fit it (the code is spent all the same).
    Refused(&'static str),
    /// First use: the grant made from it.
    Granted(Box<GrantRow>),
}

unit_of_work! {
    /// Spends a code and, when the exchange fits it, stores the grant made from it. A code
    /// presented again revokes the grant it gave.
    RedeemCode { code_hash: String, exchange: Exchange } -> Redeemed,
    "oauth.redeem", Write, transactional = true,
    |this, conn| {
        let mut conn = conn;
        let code = crate::on_backend!(conn.reborrow(), c => {
            oauth_codes::table
                .find(&this.code_hash)
                .select(CodeRow::as_select())
                .first(c)
                .await
                .optional()
        })?;
        let Some(code) = code else { return Ok(Redeemed::Unknown) };
        let now = super::now();
        if code.used_at.is_some() {
            if let Some(grant_id) = &code.grant_id {
                let grant = crate::on_backend!(conn.reborrow(), c => {
                    oauth_grants::table
                        .find(grant_id)
                        .select(GrantRow::as_select())
                        .first(c)
                        .await
                        .optional()
                })?;
                if let Some(grant) = grant {
                    revoke_grant(conn.reborrow(), &grant, "authorization code replayed", now).await?;
                    return Ok(Redeemed::Replayed(Some(grant.access_jti)));
                }
            }
            return Ok(Redeemed::Replayed(None));
        }
        let problem = this.exchange.problem(&code, now);
        let exchange = &this.exchange;
        let spend = diesel::update(oauth_codes::table.find(&this.code_hash)).set((
            oauth_codes::used_at.eq(Some(now)),
            oauth_codes::grant_id.eq(problem.is_none().then_some(&exchange.grant_id)),
        ));
        crate::on_backend!(conn.reborrow(), c => spend.execute(c).await)?;
        if let Some(problem) = problem {
            return Ok(Redeemed::Refused(problem));
        }
        let grant = GrantRow {
            id: exchange.grant_id.clone(),
            client_id: code.client_id,
            user_email: code.user_email,
            resource: code.resource,
            scope: code.scope,
            refresh_hash: exchange.refresh_hash.clone(),
            access_jti: exchange.access_jti.clone(),
            created_at: now,
            refreshed_at: now,
            expires_at: exchange.refresh_expires_at,
            revoked_at: None,
            revoked_reason: None,
        };
        let store = diesel::insert_into(oauth_grants::table).values(&grant);
        crate::on_backend!(conn, c => store.execute(c).await)?;
        Ok(Redeemed::Granted(Box::new(grant)))
    }
}

/// What presenting a refresh token found.
#[derive(Clone, Debug)]
pub enum Refreshed {
    /// Not a refresh token of this client.
    Unknown,
    /// Its grant was revoked, or it expired.
    Ended,
    /// Used before: its grant is now revoked; its access token id.
    Reused(String),
    /// Rotated: the grant as it now stands.
    Rotated(Box<GrantRow>),
}

unit_of_work! {
    /// Exchanges refresh token `refresh_hash` of `client_id` for `new_refresh_hash` and access
    /// token `new_access_jti`; the old one is kept as used, so presenting it again revokes the
    /// grant.
    RotateRefresh {
        client_id: String,
        refresh_hash: String,
        new_refresh_hash: String,
        new_access_jti: String
    } -> Refreshed,
    "oauth.refresh", Write, transactional = true,
    |this, conn| {
        let mut conn = conn;
        let now = super::now();
        let current = crate::on_backend!(conn.reborrow(), c => {
            oauth_grants::table
                .filter(oauth_grants::refresh_hash.eq(&this.refresh_hash))
                .filter(oauth_grants::client_id.eq(&this.client_id))
                .select(GrantRow::as_select())
                .first(c)
                .await
                .optional()
        })?;
        let Some(grant) = current else {
            let used = crate::on_backend!(conn.reborrow(), c => {
                oauth_used_refresh::table
                    .find(&this.refresh_hash)
                    .select(oauth_used_refresh::grant_id)
                    .first::<String>(c)
                    .await
                    .optional()
            })?;
            let Some(grant_id) = used else { return Ok(Refreshed::Unknown) };
            let grant = crate::on_backend!(conn.reborrow(), c => {
                oauth_grants::table
                    .find(&grant_id)
                    .select(GrantRow::as_select())
                    .first(c)
                    .await
                    .optional()
            })?;
            match grant {
                Some(grant) if grant.client_id == this.client_id => {
                    revoke_grant(conn, &grant, "refresh token reused", now).await?;
                    return Ok(Refreshed::Reused(grant.access_jti));
                }
                _ => return Ok(Refreshed::Unknown),
            }
        };
        if grant.revoked_at.is_some() || grant.expires_at <= now {
            return Ok(Refreshed::Ended);
        }
        // Like a sign-in, a grant ends with its account: deleted, disabled, or its password
        // changed since the user consented.
        let account = crate::on_backend!(conn.reborrow(), c => {
            users::table
                .find(&grant.user_email)
                .select((users::is_active, users::tokens_valid_after, users::created_at))
                .first::<(bool, Option<NaiveDateTime>, NaiveDateTime)>(c)
                .await
                .optional()
        })?;
        // An account made again with the same email is another person's.
        let ended = account.is_none_or(|(active, valid_after, created)| {
            !active
                || created > grant.created_at
                || valid_after.is_some_and(|after| after > grant.created_at)
        });
        if ended {
            let reason = "the account was disabled or deleted, or its password changed";
            revoke_grant(conn, &grant, reason, now).await?;
            return Ok(Refreshed::Ended);
        }
        let keep = diesel::insert_into(oauth_used_refresh::table).values((
            oauth_used_refresh::refresh_hash.eq(&this.refresh_hash),
            oauth_used_refresh::grant_id.eq(&grant.id),
            oauth_used_refresh::used_at.eq(now),
        ));
        crate::on_backend!(conn.reborrow(), c => keep.execute(c).await)?;
        let rotate = diesel::update(oauth_grants::table.find(&grant.id)).set((
            oauth_grants::refresh_hash.eq(&this.new_refresh_hash),
            oauth_grants::access_jti.eq(&this.new_access_jti),
            oauth_grants::refreshed_at.eq(now),
        ));
        crate::on_backend!(conn, c => rotate.execute(c).await)?;
        Ok(Refreshed::Rotated(Box::new(GrantRow {
            refresh_hash: this.new_refresh_hash.clone(),
            access_jti: this.new_access_jti.clone(),
            refreshed_at: now,
            ..grant
        })))
    }
}

unit_of_work! {
    /// The grants of `email` that are still in force, newest first.
    ListGrants { email: String } -> Vec<GrantRow>,
    "oauth.grants", Read, transactional = false,
    |this, conn| {
        Ok(crate::on_backend!(conn, c => {
            oauth_grants::table
                .filter(oauth_grants::user_email.eq(&this.email))
                .filter(oauth_grants::revoked_at.is_null())
                .order(oauth_grants::created_at.desc())
                .select(GrantRow::as_select())
                .load(c)
                .await
        })?)
    }
}

unit_of_work! {
    /// Disconnects `client_id` from `email`: its grants are revoked (their access tokens
    /// refused) and the consent forgotten. Answers the access token ids refused.
    Disconnect { email: String, client_id: String } -> Vec<String>,
    "oauth.disconnect", Write, transactional = true,
    |this, conn| {
        let mut conn = conn;
        let grants = crate::on_backend!(conn.reborrow(), c => {
            oauth_grants::table
                .filter(oauth_grants::user_email.eq(&this.email))
                .filter(oauth_grants::client_id.eq(&this.client_id))
                .filter(oauth_grants::revoked_at.is_null())
                .select(GrantRow::as_select())
                .load(c)
                .await
        })?;
        let now = super::now();
        for grant in &grants {
            revoke_grant(conn.reborrow(), grant, "disconnected by the user", now).await?;
        }
        let forget = diesel::delete(
            oauth_consents::table
                .filter(oauth_consents::user_email.eq(&this.email))
                .filter(oauth_consents::client_id.eq(&this.client_id)),
        );
        crate::on_backend!(conn, c => forget.execute(c).await)?;
        Ok(grants.into_iter().map(|grant| grant.access_jti).collect())
    }
}

unit_of_work! {
    /// Drops what the authorization server no longer needs: codes expired before `codes_before`
    /// (a replay of one is then merely unknown), grants that ended (revoked or expired) before
    /// `grants_before` with the refresh tokens they used, and clients from metadata documents
    /// first fetched before then that no consent, grant or code uses. Answers how many rows
    /// went.
    PurgeOAuth { codes_before: NaiveDateTime, grants_before: NaiveDateTime } -> usize,
    "oauth.purge", Write, transactional = true,
    |this, conn| {
        let mut conn = conn;
        let codes = diesel::delete(
            oauth_codes::table.filter(oauth_codes::expires_at.lt(this.codes_before)),
        );
        let mut purged = crate::on_backend!(conn.reborrow(), c => codes.execute(c).await)?;
        let ended = oauth_grants::table
            .filter(
                oauth_grants::revoked_at
                    .lt(this.grants_before)
                    .or(oauth_grants::expires_at.lt(this.grants_before)),
            )
            .select(oauth_grants::id);
        let used = diesel::delete(
            oauth_used_refresh::table.filter(oauth_used_refresh::grant_id.eq_any(ended)),
        );
        purged += crate::on_backend!(conn.reborrow(), c => used.execute(c).await)?;
        let grants = diesel::delete(
            oauth_grants::table.filter(
                oauth_grants::revoked_at
                    .lt(this.grants_before)
                    .or(oauth_grants::expires_at.lt(this.grants_before)),
            ),
        );
        purged += crate::on_backend!(conn.reborrow(), c => grants.execute(c).await)?;
        // Clients whose metadata documents nobody uses any more (fetched again when asked for).
        let unused = diesel::delete(
            oauth_clients::table
                .filter(oauth_clients::source.eq("metadata_document"))
                .filter(oauth_clients::created_at.lt(this.grants_before))
                .filter(oauth_clients::client_id.ne_all(oauth_grants::table.select(oauth_grants::client_id)))
                .filter(oauth_clients::client_id.ne_all(oauth_consents::table.select(oauth_consents::client_id)))
                .filter(oauth_clients::client_id.ne_all(oauth_codes::table.select(oauth_codes::client_id))),
        );
        purged += crate::on_backend!(conn, c => unused.execute(c).await)?;
        Ok(purged)
    }
}
