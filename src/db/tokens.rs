//! Units of work for API tokens (stored as a SHA-256 hash, never in clear) and revoked token
//! ids.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::{api_tokens, revoked_tokens};
use super::{WorkError, now};
use crate::unit_of_work;

/// An API token row.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_tokens)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct ApiTokenRow {
    pub id: String,
    pub name: String,
    pub owner_email: String,
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    pub jti: String,
    pub server_id: Option<String>,
    /// The kept permissions (JSON array), if restricted.
    pub permissions: Option<String>,
    /// JSON array of addresses and networks.
    pub ip_restrictions: String,
    /// JSON time window, if any.
    pub time_restrictions: Option<String>,
    pub expires_at: Option<chrono::NaiveDateTime>,
    pub created_at: chrono::NaiveDateTime,
    pub revoked_at: Option<chrono::NaiveDateTime>,
    /// When it was last used, to the minute (written in batches).
    pub last_used_at: Option<chrono::NaiveDateTime>,
}

unit_of_work! {
    /// Notes when tokens were used: each `(jti, at)` moves `last_used_at` forward, never back.
    TouchTokens { uses: Vec<(String, chrono::NaiveDateTime)> } -> usize,
    "tokens.touch", Write, transactional = true,
    |this, conn| {
        let mut conn = conn;
        let mut touched = 0;
        for (jti, at) in &this.uses {
            let touch = diesel::update(
                api_tokens::table
                    .filter(api_tokens::jti.eq(jti))
                    .filter(api_tokens::last_used_at.is_null().or(api_tokens::last_used_at.lt(*at))),
            )
            .set(api_tokens::last_used_at.eq(Some(*at)));
            touched += crate::on_backend!(conn.reborrow(), c => touch.execute(c).await)?;
        }
        Ok(touched)
    }
}

unit_of_work! {
    /// Stores a new token; a name its owner already uses is a conflict.
    InsertToken { row: ApiTokenRow } -> (),
    "tokens.insert", Write, transactional = true,
    |this, conn| {
        let mut conn = conn;
        let taken = crate::on_backend!(conn.reborrow(), c => {
            api_tokens::table
                .filter(api_tokens::owner_email.eq(&this.row.owner_email))
                .filter(api_tokens::name.eq(&this.row.name))
                .count()
                .get_result::<i64>(c)
                .await
        })?;
        if taken > 0 {
            return Err(WorkError::Conflict(format!(
                "you already have a token named {:?}",
                this.row.name
            )));
        }
        let insert = diesel::insert_into(api_tokens::table).values(&this.row);
        crate::on_backend!(conn, c => insert.execute(c).await)?;
        Ok(())
    }
}

unit_of_work! {
    /// Tokens in creation order: one owner's, or everyone's (`owner: None`).
    ListTokens { owner: Option<String> } -> Vec<ApiTokenRow>,
    "tokens.list", Read, transactional = false,
    |this, conn| {
        let rows = crate::on_backend!(conn, c => {
            let mut query = api_tokens::table
                .select(ApiTokenRow::as_select())
                .order(api_tokens::created_at.asc())
                .into_boxed();
            if let Some(owner) = &this.owner {
                query = query.filter(api_tokens::owner_email.eq(owner.clone()));
            }
            query.load(c).await
        })?;
        Ok(rows)
    }
}

unit_of_work! {
    /// Revokes a token (its owner's, unless `owner` is `None`): marks it and records its id in
    /// the revocation list. `None` when there is no such token; revoking twice is harmless.
    RevokeToken { id: String, owner: Option<String> } -> Option<ApiTokenRow>,
    "tokens.revoke", Write, transactional = true,
    |this, conn| {
        let mut conn = conn;
        let row = crate::on_backend!(conn.reborrow(), c => {
            let mut query = api_tokens::table
                .filter(api_tokens::id.eq(this.id.clone()))
                .select(ApiTokenRow::as_select())
                .into_boxed();
            if let Some(owner) = &this.owner {
                query = query.filter(api_tokens::owner_email.eq(owner.clone()));
            }
            query.first(c).await.optional()
        })?;
        let Some(mut row) = row else {
            return Ok(None);
        };
        if row.revoked_at.is_none() {
            let at = now();
            let mark = diesel::update(api_tokens::table.find(&row.id)).set(api_tokens::revoked_at.eq(Some(at)));
            crate::on_backend!(conn.reborrow(), c => mark.execute(c).await)?;
            row.revoked_at = Some(at);
        }
        let record = diesel::insert_into(revoked_tokens::table)
            .values((
                revoked_tokens::jti.eq(&row.jti),
                revoked_tokens::revoked_at.eq(row.revoked_at.unwrap_or_else(now)),
                revoked_tokens::expires_at.eq(row.expires_at),
            ))
            .on_conflict_do_nothing();
        crate::on_backend!(conn, c => record.execute(c).await)?;
        Ok(Some(row))
    }
}

unit_of_work! {
    /// Adds a token id to the revocation list (signing out a sign-in token).
    RevokeJti { jti: String, expires_at: Option<chrono::NaiveDateTime> } -> (),
    "tokens.revoke_jti", Write, transactional = true,
    |this, conn| {
        let record = diesel::insert_into(revoked_tokens::table)
            .values((
                revoked_tokens::jti.eq(&this.jti),
                revoked_tokens::revoked_at.eq(now()),
                revoked_tokens::expires_at.eq(this.expires_at),
            ))
            .on_conflict_do_nothing();
        crate::on_backend!(conn, c => record.execute(c).await)?;
        Ok(())
    }
}

unit_of_work! {
    /// Revoked ids still worth knowing (not yet expired), revoked after `since` when given.
    LoadRevocations { since: Option<chrono::NaiveDateTime> } -> Vec<(String, chrono::NaiveDateTime)>,
    "tokens.revocations", Read, transactional = false,
    |this, conn| {
        let current = now();
        let rows = crate::on_backend!(conn, c => {
            let mut query = revoked_tokens::table
                .filter(
                    revoked_tokens::expires_at
                        .is_null()
                        .or(revoked_tokens::expires_at.gt(current)),
                )
                .select((revoked_tokens::jti, revoked_tokens::revoked_at))
                .into_boxed();
            if let Some(since) = this.since {
                query = query.filter(revoked_tokens::revoked_at.ge(since));
            }
            query.load::<(String, chrono::NaiveDateTime)>(c).await
        })?;
        Ok(rows)
    }
}
