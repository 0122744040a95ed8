//! What counts as transient, and how long to wait before trying again.

use std::time::Duration;

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use rand::Rng;

use super::error::DbError;
use crate::db::WorkError;

/// Where in a unit of work a failure happened; decides whether a retry is safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Opening the transaction: nothing ran yet.
    Begin,
    /// Inside the work: an open transaction is rolled back by the failure.
    Work,
    /// Committing: the outcome is unknown if the connection was lost.
    Commit,
}

/// A classified failure of one attempt.
#[derive(Debug)]
pub enum Failure {
    /// The database or the network failed; the attempt may be retried when `safe_to_retry`
    /// (or when the work is idempotent).
    Transient {
        /// Cause, for logs.
        reason: String,
        /// Whether a retry is safe whatever the work is.
        safe_to_retry: bool,
    },
    /// The pooled connection turned out to be dead (killed, reset) before anything was
    /// committed: a fact about that connection, not about the database. Retried at once on
    /// another connection, and not counted by the breaker (unless it keeps happening).
    ConnectionLost {
        /// Cause, for logs.
        reason: String,
    },
    /// The work did not finish within its deadline.
    Deadline(Duration),
    /// The unit's own code panicked.
    Panicked,
    /// A definite answer (not found, conflict, rejected input, bug): not retried.
    Final(DbError),
}

/// Messages PostgreSQL and SQLite give for failures that go away by themselves.
const TRANSIENT_MESSAGES: &[&str] = &[
    "terminating connection",
    "the database system is shutting down",
    "the database system is starting up",
    "the database system is in recovery mode",
    "server closed the connection",
    "connection closed",
    "connection reset",
    "connection refused",
    "broken pipe",
    "database is locked",
    "database table is locked",
    "database is busy",
    "too many connections",
    "remaining connection slots are reserved",
];

/// Of those, the ones that say this one connection died.
const LOST_CONNECTION_MESSAGES: &[&str] = &[
    "terminating connection",
    "server closed the connection",
    "connection closed",
    "connection reset",
    "broken pipe",
];

/// A dead connection before COMMIT (safe to retry elsewhere); during COMMIT the outcome is
/// unknown, so it is an ordinary transient failure that only idempotent work retries.
fn lost(phase: Phase, reason: String) -> Failure {
    if phase == Phase::Commit {
        Failure::Transient {
            reason,
            safe_to_retry: false,
        }
    } else {
        Failure::ConnectionLost { reason }
    }
}

/// Messages for conflicts that a retry of idempotent work resolves.
const CONTENTION_MESSAGES: &[&str] = &["deadlock detected", "could not serialize access"];

/// Classifies the failure of a unit of work in a given phase.
pub fn classify(phase: Phase, error: WorkError) -> Failure {
    let error = match error {
        WorkError::Rejected { field, message } => {
            return Failure::Final(DbError::Rejected { field, message });
        }
        WorkError::Conflict(message) => {
            return Failure::Final(DbError::Conflict {
                constraint: message,
            });
        }
        WorkError::Query(error) => error,
    };
    // A lost connection during COMMIT leaves the outcome unknown; earlier it is safe.
    let connection_loss_is_safe = phase != Phase::Commit;
    match error {
        DieselError::NotFound => Failure::Final(DbError::NotFound),
        DieselError::DatabaseError(kind, info) => {
            let message = info.message().to_owned();
            let lowered = message.to_ascii_lowercase();
            match kind {
                DatabaseErrorKind::UniqueViolation => Failure::Final(DbError::Conflict {
                    constraint: info.constraint_name().unwrap_or(&message).to_owned(),
                }),
                DatabaseErrorKind::ForeignKeyViolation => Failure::Final(DbError::Rejected {
                    field: "id".into(),
                    message: "refers to an item that does not exist".into(),
                }),
                DatabaseErrorKind::NotNullViolation | DatabaseErrorKind::CheckViolation => {
                    Failure::Final(DbError::Rejected {
                        field: info.column_name().unwrap_or("input").to_owned(),
                        message: format!("breaks a stored rule: {message}"),
                    })
                }
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand => {
                    lost(phase, format!("connection lost: {message}"))
                }
                DatabaseErrorKind::SerializationFailure => Failure::Transient {
                    reason: format!("serialization failure: {message}"),
                    safe_to_retry: false,
                },
                _ if lowered.contains("statement timeout") => Failure::Deadline(Duration::ZERO),
                _ if CONTENTION_MESSAGES.iter().any(|m| lowered.contains(m)) => {
                    Failure::Transient {
                        reason: message,
                        safe_to_retry: false,
                    }
                }
                _ if LOST_CONNECTION_MESSAGES.iter().any(|m| lowered.contains(m)) => {
                    lost(phase, message)
                }
                _ if TRANSIENT_MESSAGES.iter().any(|m| lowered.contains(m)) => {
                    Failure::Transient {
                        reason: message,
                        // SQLite's "locked" never commits partially; PostgreSQL shutdown
                        // messages arrive before or instead of a commit acknowledgement.
                        safe_to_retry: connection_loss_is_safe || lowered.contains("locked"),
                    }
                }
                _ => Failure::Final(DbError::Internal(message)),
            }
        }
        DieselError::BrokenTransactionManager => Failure::Transient {
            reason: "the connection's transaction state is broken".into(),
            safe_to_retry: connection_loss_is_safe,
        },
        other => Failure::Final(DbError::Internal(other.to_string())),
    }
}

/// The wait before retry number `retry` (1-based): `interval · 2^(retry-1)`, capped at `max`,
/// then spread by ±25 % so clients that failed together do not retry together.
pub fn backoff(retry: u32, interval: Duration, max: Duration) -> Duration {
    let exponent = retry.saturating_sub(1).min(20);
    let base = interval.saturating_mul(1u32 << exponent).min(max);
    let jitter = rand::rng().random_range(0.75..=1.25);
    base.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters_within_a_quarter() {
        let interval = Duration::from_millis(100);
        let max = Duration::from_millis(1000);
        for _ in 0..100 {
            let first = backoff(1, interval, max);
            assert!(first >= Duration::from_millis(75) && first <= Duration::from_millis(125));
            let third = backoff(3, interval, max);
            assert!(third >= Duration::from_millis(300) && third <= Duration::from_millis(500));
            let capped = backoff(30, interval, max);
            assert!(capped >= Duration::from_millis(750) && capped <= Duration::from_millis(1250));
        }
    }

    #[test]
    fn constraint_violations_are_final() {
        let error = DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            Box::new("duplicate key".to_owned()),
        );
        assert!(matches!(
            classify(Phase::Work, error.into()),
            Failure::Final(DbError::Conflict { .. })
        ));
    }

    #[test]
    fn lost_connections_move_to_another_connection_but_not_at_commit() {
        let lost = || {
            DieselError::DatabaseError(
                DatabaseErrorKind::UnableToSendCommand,
                Box::new("connection closed".to_owned()),
            )
        };
        assert!(matches!(
            classify(Phase::Begin, lost().into()),
            Failure::ConnectionLost { .. }
        ));
        let terminated = DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("terminating connection due to administrator command".to_owned()),
        );
        assert!(matches!(
            classify(Phase::Work, terminated.into()),
            Failure::ConnectionLost { .. }
        ));
        assert!(matches!(
            classify(Phase::Commit, lost().into()),
            Failure::Transient {
                safe_to_retry: false,
                ..
            }
        ));
    }

    #[test]
    fn busy_sqlite_is_transient() {
        let error = DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("database is locked".to_owned()),
        );
        assert!(matches!(
            classify(Phase::Commit, error.into()),
            Failure::Transient {
                safe_to_retry: true,
                ..
            }
        ));
    }
}
