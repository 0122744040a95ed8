//! The AuthActor's list of revoked token ids: loaded at start, read again periodically and
//! when the replica bus reconnects, and told of each revocation (here or on another replica).

use std::sync::atomic::Ordering;

use actix::prelude::*;

use super::AuthActor;
use crate::db::tokens::LoadRevocations;

impl AuthActor {
    /// Loads revocations newer than the watermark (all on the first run).
    pub(super) fn load_revocations(&mut self) -> impl ActorFuture<Self, Output = ()> + use<> {
        self.refreshing = true;
        // Clocks of replicas differ a little: look back a few seconds past the watermark.
        let since = self
            .watermark
            .map(|watermark| watermark - chrono::TimeDelta::seconds(5));
        let db = self.db.clone();
        let load = async move { db.run(LoadRevocations { since }).await };
        load.into_actor(self).map(|outcome, actor, _ctx| {
            actor.refreshing = false;
            actor.revocations_known.store(true, Ordering::Release);
            match outcome {
                Ok(rows) => {
                    for (jti, revoked_at) in rows {
                        actor.watermark = actor.watermark.max(Some(revoked_at));
                        actor.revoked.insert(jti);
                    }
                }
                Err(error) => tracing::warn!(%error, "could not refresh the token revocation list"),
            }
        })
    }
}

/// A token id revoked on this replica: refused from now on.
pub struct Revoked(pub String);

impl Message for Revoked {
    type Result = ();
}

impl Handler<Revoked> for AuthActor {
    type Result = ();

    fn handle(&mut self, message: Revoked, _ctx: &mut Context<Self>) {
        self.revoked.insert(message.0);
    }
}

/// Read the revocation list again (after the replica bus reconnected: some may have been
/// missed).
pub struct RefreshRevocations;

impl Message for RefreshRevocations {
    type Result = ();
}

impl Handler<RefreshRevocations> for AuthActor {
    type Result = ();

    fn handle(&mut self, _message: RefreshRevocations, ctx: &mut Context<Self>) {
        if !self.refreshing {
            ctx.spawn(self.load_revocations());
        }
    }
}
