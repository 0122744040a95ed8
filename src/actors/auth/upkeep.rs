//! The AuthActor's upkeep: writing when API tokens were last used, and dropping spent OAuth
//! codes and ended grants.

use std::time::Duration;

use actix::prelude::*;

use super::AuthActor;

/// How often the uses of API tokens are written.
pub(super) const USAGE_FLUSH_EVERY: Duration = Duration::from_secs(5);

/// How often spent authorization codes and ended OAuth grants are dropped.
pub(super) const OAUTH_PURGE_EVERY: Duration = Duration::from_secs(3600);

impl AuthActor {
    /// Writes when API tokens were last used; a failed write is let go (the next use notes it
    /// again within a minute).
    pub(super) fn write_usage(&mut self, ctx: &mut Context<Self>) {
        let uses = self.usage.take(chrono::Utc::now());
        if uses.is_empty() {
            return;
        }
        let db = self.db.clone();
        ctx.spawn(
            async move {
                if let Err(error) = db.run(crate::db::tokens::TouchTokens { uses }).await {
                    tracing::debug!(%error, "noting when API tokens were used failed");
                }
            }
            .into_actor(self),
        );
    }
}

impl AuthActor {
    /// Drops codes a day past their expiry and grants thirty days after they ended.
    pub(super) fn purge_oauth(&mut self, ctx: &mut Context<Self>) {
        let now = crate::db::now();
        let purge = crate::db::oauth::PurgeOAuth {
            codes_before: now - chrono::TimeDelta::days(1),
            grants_before: now - chrono::TimeDelta::days(30),
        };
        let db = self.db.clone();
        ctx.spawn(
            async move {
                match db.run(purge).await {
                    Ok(0) => {}
                    Ok(purged) => {
                        tracing::info!(purged, "spent OAuth codes and ended grants purged")
                    }
                    Err(error) => {
                        tracing::warn!(%error, "purging spent OAuth codes and grants failed")
                    }
                }
            }
            .into_actor(self),
        );
    }
}
