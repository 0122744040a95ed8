//! Units of work for sign-in: the atomic failure counter and the outcome of an attempt.

use super::*;

/// What a sign-in attempt found.
#[derive(Clone, Debug)]
pub enum LoginRecord {
    /// The password matched: failures are forgotten.
    Success,
    /// It did not: one more failure, and a lockout of `lockout` after `max_failures`.
    Failure {
        max_failures: i32,
        lockout: chrono::TimeDelta,
    },
}

unit_of_work! {
    /// Records a sign-in attempt; returns the lock's end when this failure locked the account.
    RecordLogin { email: String, record: LoginRecord } -> Option<chrono::NaiveDateTime>,
    "users.record_login", Write, transactional = true,
    |this, conn| {
        let mut conn = conn;
        let target = users::table.find(&this.email);
        match &this.record {
            LoginRecord::Success => {
                let update = diesel::update(target).set((
                    users::failed_logins.eq(0),
                    users::locked_until.eq(None::<chrono::NaiveDateTime>),
                ));
                crate::on_backend!(conn, c => update.execute(c).await)?;
                Ok(None)
            }
            LoginRecord::Failure { max_failures, lockout } => {
                // The attempt was counted when it was claimed.
                let failures = crate::on_backend!(conn.reborrow(), c => {
                    target.select(users::failed_logins).get_result::<i32>(c).await.optional()
                })?;
                let Some(failures) = failures else {
                    return Ok(None);
                };
                if failures >= *max_failures {
                    let until = now() + *lockout;
                    let update = diesel::update(target).set((
                        users::failed_logins.eq(0),
                        users::locked_until.eq(Some(until)),
                    ));
                    crate::on_backend!(conn, c => update.execute(c).await)?;
                    Ok(Some(until))
                } else {
                    Ok(None)
                }
            }
        }
    }
}

/// What counting a sign-in attempt found.
#[derive(Clone, Debug)]
pub enum LoginClaim {
    /// Check the password of this account.
    Proceed(UserRow),
    /// The account is locked (or just became so): refuse without checking.
    Locked,
    /// No such account.
    Unknown,
}

unit_of_work! {
    /// Counts a sign-in attempt *before* its password is checked, with one atomic increment,
    /// so concurrent guesses (on any replica) are all counted: an account whose attempts since
    /// its last success pass `max_failures` is locked for `lockout` and the attempt is refused
    /// unchecked.
    ClaimLogin { email: String, max_failures: i32, lockout: chrono::TimeDelta } -> LoginClaim,
    "users.claim_login", Write, transactional = true,
    |this, conn| {
        let mut conn = conn;
        let at = now();
        let target = users::table.find(&this.email);
        let count = diesel::update(
            target.filter(users::locked_until.is_null().or(users::locked_until.le(at))),
        )
        .set(users::failed_logins.eq(users::failed_logins + 1));
        let counted = crate::on_backend!(conn.reborrow(), c => count.execute(c).await)?;
        let user = crate::on_backend!(conn.reborrow(), c => {
            target.select(UserRow::as_select()).get_result(c).await.optional()
        })?;
        let Some(user) = user else {
            return Ok(LoginClaim::Unknown);
        };
        if counted == 0 {
            return Ok(LoginClaim::Locked);
        }
        if user.failed_logins > this.max_failures {
            let lock = diesel::update(target).set((
                users::failed_logins.eq(0),
                users::locked_until.eq(Some(at + this.lockout)),
            ));
            crate::on_backend!(conn, c => lock.execute(c).await)?;
            return Ok(LoginClaim::Locked);
        }
        Ok(LoginClaim::Proceed(user))
    }
}
