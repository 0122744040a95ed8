//! Units of work for users' own tokens for upstreams that authenticate each user with OAuth
//! (sealed by the caller; this module never sees them in clear).

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::upstream_tokens;
use crate::unit_of_work;

unit_of_work! {
    /// A user's sealed token for an upstream, if they connected.
    GetUpstreamToken { gateway_id: String, user_email: String } -> Option<String>,
    "upstream_tokens.get", Read, transactional = false,
    |this, conn| {
        let query = upstream_tokens::table
            .find((&this.gateway_id, &this.user_email))
            .select(upstream_tokens::sealed);
        Ok(crate::on_backend!(conn, c => query.get_result::<String>(c).await.optional())?)
    }
}

unit_of_work! {
    /// Stores (or replaces) a user's sealed token for an upstream.
    PutUpstreamToken { gateway_id: String, user_email: String, sealed: String } -> (),
    "upstream_tokens.put", Write, transactional = true,
    |this, conn| {
        let mut conn = conn;
        let now = super::now();
        let gone = diesel::delete(upstream_tokens::table.find((&this.gateway_id, &this.user_email)));
        crate::on_backend!(conn.reborrow(), c => gone.execute(c).await)?;
        let insert = diesel::insert_into(upstream_tokens::table).values((
            upstream_tokens::gateway_id.eq(&this.gateway_id),
            upstream_tokens::user_email.eq(&this.user_email),
            upstream_tokens::sealed.eq(&this.sealed),
            upstream_tokens::updated_at.eq(now),
        ));
        crate::on_backend!(conn, c => insert.execute(c).await)?;
        Ok(())
    }
}

unit_of_work! {
    /// Forgets a user's token for an upstream (disconnected, or no longer refreshable); whether
    /// there was one.
    DeleteUpstreamToken { gateway_id: String, user_email: String } -> bool,
    "upstream_tokens.delete", Write, transactional = true,
    |this, conn| {
        let gone = diesel::delete(upstream_tokens::table.find((&this.gateway_id, &this.user_email)));
        Ok(crate::on_backend!(conn, c => gone.execute(c).await)? == 1)
    }
}

unit_of_work! {
    /// The upstreams a user connected to (their ids).
    ConnectedUpstreams { user_email: String } -> Vec<String>,
    "upstream_tokens.connected", Read, transactional = false,
    |this, conn| {
        let query = upstream_tokens::table
            .filter(upstream_tokens::user_email.eq(&this.user_email))
            .select(upstream_tokens::gateway_id)
            .order(upstream_tokens::gateway_id);
        Ok(crate::on_backend!(conn, c => query.load::<String>(c).await)?)
    }
}
