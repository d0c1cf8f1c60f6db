//! [`DbError`]: what a unit of work can fail with, and what that means for
//! its caller: run it again, report the database unavailable, or a bug.

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
    /// Whether the unit lost a conflict with a concurrent transaction and
    /// was rolled back, so that running it again may succeed: a
    /// serialization failure (PostgreSQL 40001) or a deadlock (40P01,
    /// MySQL 1213), or MySQL's lock wait timeout (1205). Retried; when
    /// retries run out, the call is ABORTED.
    pub fn is_conflict(&self) -> bool {
        match self {
            Self::Query(QueryError::DatabaseError(DatabaseErrorKind::SerializationFailure, _)) => {
                true
            }
            // diesel has no kind for these; the databases' messages say
            // them (diesel-async drops MySQL's error number).
            Self::Query(QueryError::DatabaseError(DatabaseErrorKind::Unknown, info)) => {
                let message = info.message();
                message.starts_with("deadlock detected")
                    || message.starts_with("Deadlock found when trying to get lock")
                    || message.starts_with("Lock wait timeout exceeded")
            }
            _ => false,
        }
    }

    /// Whether SQLite stayed locked by another connection for the whole
    /// busy timeout (`SQLITE_BUSY`): nothing was written, and running the
    /// unit again may succeed. Retried; when retries run out, the call is
    /// UNAVAILABLE.
    pub fn is_busy(&self) -> bool {
        // diesel reports SQLITE_BUSY only through its message.
        matches!(
            self,
            Self::Query(QueryError::DatabaseError(DatabaseErrorKind::Unknown, info))
                if info.message().starts_with("database is locked")
        )
    }

    /// Whether the connection broke while the unit ran on it: closed by the
    /// server (a restart, an administrator), or lost. Whether a write was
    /// applied is then unknown, so only reads are run again.
    pub fn is_connection_lost(&self) -> bool {
        match self {
            Self::Query(QueryError::DatabaseError(kind, info)) => match kind {
                DatabaseErrorKind::UnableToSendCommand | DatabaseErrorKind::ClosedConnection => {
                    true
                }
                // PostgreSQL 57P01-57P03: "terminating connection due to
                // administrator command", "the database system is shutting
                // down", ...; MySQL's driver: the socket failed or closed;
                // MySQL 1053, 1927: shutting down, connection killed;
                // Galera 1047 and 1180 at COMMIT ("... Not connected to
                // Primary Component"): the node left the primary component
                // (nothing was applied; the next connection goes to
                // another node).
                DatabaseErrorKind::Unknown => {
                    let message = info.message();
                    message.starts_with("terminating connection")
                        || message.starts_with("the database system is")
                        || message.starts_with("Input/output error")
                        || message.contains("Connection to the server is closed")
                        || message.starts_with("Server shutdown in progress")
                        || message.starts_with("Connection was killed")
                        || message.starts_with("WSREP has not yet prepared node")
                        || message.contains("Not connected to Primary Component")
                }
                _ => false,
            },
            Self::Query(QueryError::BrokenTransactionManager) => true,
            // A row shorter than the statement's columns: the connection no
            // longer answers the statements sent on it (seen on a Galera
            // node rolling back a transaction under it). Dropped, and the
            // call is UNAVAILABLE: whether a write was applied is unknown.
            Self::Query(QueryError::DeserializationError(error)) => {
                error.is::<diesel::result::UnexpectedEndOfRow>()
            }
            _ => false,
        }
    }

    /// Whether trying again later could succeed: the database was
    /// unreachable, saturated or locked, or the connection dropped. Anything
    /// else but a conflict is a bug or a broken schema.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable(_) | Self::PoolTimedOut)
            || self.is_busy()
            || self.is_connection_lost()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database_error(kind: DatabaseErrorKind, message: &str) -> DbError {
        DbError::Query(QueryError::DatabaseError(
            kind,
            Box::new(message.to_owned()),
        ))
    }

    #[test]
    fn serialization_failures_and_deadlocks_are_conflicts() {
        let serialization = database_error(
            DatabaseErrorKind::SerializationFailure,
            "could not serialize access due to concurrent update",
        );
        let deadlock = database_error(DatabaseErrorKind::Unknown, "deadlock detected");
        let mysql_deadlock = database_error(
            DatabaseErrorKind::Unknown,
            "Deadlock found when trying to get lock; try restarting transaction",
        );
        let mysql_lock_wait = database_error(
            DatabaseErrorKind::Unknown,
            "Lock wait timeout exceeded; try restarting transaction",
        );
        for error in [serialization, deadlock, mysql_deadlock, mysql_lock_wait] {
            assert!(error.is_conflict(), "{error}");
            assert!(!error.is_transient(), "{error}");
        }
    }

    #[test]
    fn a_locked_sqlite_database_is_busy_and_transient() {
        let error = database_error(DatabaseErrorKind::Unknown, "database is locked");
        assert!(error.is_busy());
        assert!(error.is_transient());
        assert!(!error.is_conflict());
    }

    #[test]
    fn a_connection_closed_by_the_server_is_lost() {
        for error in [
            database_error(
                DatabaseErrorKind::Unknown,
                "terminating connection due to administrator command",
            ),
            database_error(
                DatabaseErrorKind::Unknown,
                "the database system is shutting down",
            ),
            database_error(DatabaseErrorKind::UnableToSendCommand, "connection closed"),
            database_error(
                DatabaseErrorKind::Unknown,
                "Input/output error: Connection reset by peer (os error 104)",
            ),
            database_error(
                DatabaseErrorKind::Unknown,
                "Driver error: `Connection to the server is closed.'",
            ),
            // Galera, a node outside the primary component.
            database_error(
                DatabaseErrorKind::Unknown,
                "WSREP has not yet prepared node for application use",
            ),
            database_error(
                DatabaseErrorKind::Unknown,
                "Error while appending streaming replication fragment(provider status: Not connected to Primary Component)",
            ),
            // A row that does not fit its statement.
            DbError::Query(QueryError::DeserializationError(Box::new(
                diesel::result::UnexpectedEndOfRow,
            ))),
        ] {
            assert!(error.is_connection_lost(), "{error}");
            assert!(error.is_transient(), "{error}");
        }
    }

    #[test]
    fn a_transaction_rolled_back_without_an_error_is_a_conflict() {
        let error = DbError::Query(crate::db::mysql::rolled_back_under_us("the row is gone"));
        assert!(error.is_conflict(), "{error}");
        assert!(!error.is_connection_lost());
    }

    #[test]
    fn other_errors_are_bugs() {
        let error = database_error(
            DatabaseErrorKind::Unknown,
            "relation \"users\" does not exist",
        );
        assert!(!error.is_conflict());
        assert!(!error.is_busy());
        assert!(!error.is_transient());
    }
}
