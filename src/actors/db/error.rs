//! The DbActor's error type: what a caller of the database can be told.

use std::time::Duration;

/// Why a unit of work did not produce a result.
///
/// The HTTP layer maps each variant once (`crate::http::error`); nothing else inspects database
/// errors.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DbError {
    /// The database cannot be reached or the breaker is open; try again after `retry_after`.
    #[error("database unavailable: {reason}")]
    Unavailable {
        /// The cause, for logs (never shown to clients verbatim).
        reason: String,
        /// How long a client should wait before trying again.
        retry_after: Duration,
    },
    /// The unit did not finish within its deadline; it was detached (and, on PostgreSQL,
    /// cancelled), never dropped mid-query.
    #[error("database work exceeded its deadline of {0:?}")]
    Timeout(Duration),
    /// The row asked for does not exist.
    #[error("not found")]
    NotFound,
    /// A uniqueness constraint refused the write.
    #[error("conflicts with stored data ({constraint})")]
    Conflict {
        /// The constraint or message the database named.
        constraint: String,
    },
    /// The input refers to something that does not exist, or breaks a rule the database keeps.
    #[error("{field}: {message}")]
    Rejected {
        /// The input field at fault.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A bug or an unexpected database answer; the cause is logged where it happened.
    #[error("internal database error: {0}")]
    Internal(String),
}
