//! The AuthActor: answers "who is this request" from the signing keys it owns.
//!
//! Verification is CPU-only today (HS256 signature, expiry, issuer, audience); the identity
//! work adds its principal cache and revocation list here, behind the same message.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::auth::jwt::JwtKeys;
use crate::auth::{AuthError, Principal};

/// How long a handler waits for the actor before answering 503.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// The actor; owns the JWT keys.
pub struct AuthActor {
    keys: Arc<JwtKeys>,
}

impl Actor for AuthActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(4096);
    }
}

impl Supervised for AuthActor {}

/// Verify a bearer token and return its principal.
pub struct Authenticate {
    /// The token, without the `Bearer ` prefix.
    pub bearer: String,
}

impl Message for Authenticate {
    type Result = Result<Principal, AuthError>;
}

impl Handler<Authenticate> for AuthActor {
    type Result = Result<Principal, AuthError>;

    fn handle(&mut self, message: Authenticate, _ctx: &mut Context<Self>) -> Self::Result {
        self.keys.verify(&message.bearer)
    }
}

/// A handle to the AuthActor.
#[derive(Clone)]
pub struct Auth {
    addr: Addr<AuthActor>,
}

impl Auth {
    /// Starts the supervised actor with these keys.
    pub fn start(keys: Arc<JwtKeys>) -> Self {
        let addr = Supervisor::start(move |_| AuthActor { keys });
        Auth { addr }
    }

    /// Verifies a bearer token.
    pub async fn authenticate(&self, bearer: String) -> Result<Principal, AuthError> {
        self.addr
            .send(Authenticate { bearer })
            .timeout(REPLY_TIMEOUT)
            .await
            .map_err(|_| AuthError::Unavailable)?
    }
}
