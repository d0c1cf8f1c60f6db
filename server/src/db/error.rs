//! [`DbError`]: what a unit of work can fail with, and whether it is the
//! database's fault (transient) or ours.

use diesel::result::{DatabaseErrorKind, Error as QueryError};

/// A failed unit of work.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database refused a new connection or could not be reached.
    #[error("database unreachable: {0}")]
    Unreachable(String),
    /// Every connection stayed busy for the whole pool timeout.
    #[error("timed out waiting for a free database connection")]
    PoolTimedOut,
    /// The SQLite writer thread is gone (it stops only with the server).
    #[error("the SQLite writer has stopped")]
    WriterStopped,
    /// A statement failed.
    #[error("query failed: {0}")]
    Query(#[from] QueryError),
}

impl DbError {
    /// Whether trying again later could succeed: the database was
    /// unreachable or saturated, the connection dropped, or SQLite stayed
    /// locked for the whole busy timeout. Anything else is a bug or a broken
    /// schema.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable(_) | Self::PoolTimedOut => true,
            Self::Query(QueryError::DatabaseError(kind, info)) => match kind {
                DatabaseErrorKind::UnableToSendCommand | DatabaseErrorKind::ClosedConnection => {
                    true
                }
                // diesel reports SQLITE_BUSY only through its message.
                DatabaseErrorKind::Unknown => info.message().starts_with("database is locked"),
                _ => false,
            },
            Self::Query(QueryError::BrokenTransactionManager) => true,
            Self::Query(_) | Self::WriterStopped => false,
        }
    }
}
