//! MySQL and MariaDB connections: what every new connection must set before
//! use.

use std::time::Duration;

use diesel::{ConnectionError, ConnectionResult};
use diesel_async::{AsyncConnection, AsyncMysqlConnection, SimpleAsyncConnection};

use super::Isolation;

/// How long opening a connection may take at most, handshake included: a
/// database that does not answer must turn into UNAVAILABLE, not into
/// calls that hang (as for PostgreSQL).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What every connection sets before use:
/// - the time zone UTC, so that `NOW()` and any TIMESTAMP agree with the
///   UTC the server writes (the columns are DATETIME, stored as given);
/// - a strict SQL mode: a value that does not fit is an error, never
///   silently truncated or zeroed (MariaDB's default is strict too, but a
///   server's configuration may say otherwise);
/// - the isolation level of `--isolation` for every transaction, the
///   implicit one around a lone statement included (InnoDB's own default
///   is REPEATABLE READ).
fn session_setup(isolation: Isolation) -> String {
    let level = match isolation {
        Isolation::ReadCommitted => "READ COMMITTED",
        Isolation::Serializable => "SERIALIZABLE",
    };
    format!(
        "SET time_zone = '+00:00';
         SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,\
         ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION';
         SET SESSION TRANSACTION ISOLATION LEVEL {level};"
    )
}

/// Opens a connection to `url`, set up as [`session_setup`] says.
pub async fn establish(url: &str, isolation: Isolation) -> ConnectionResult<AsyncMysqlConnection> {
    let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, AsyncMysqlConnection::establish(url))
        .await
        .map_err(|_| {
            ConnectionError::BadConnection(format!(
                "no connection within {} s",
                CONNECT_TIMEOUT.as_secs()
            ))
        })??;
    conn.batch_execute(&session_setup(isolation))
        .await
        .map_err(ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_runs_at_the_configured_isolation_level() {
        assert!(
            session_setup(Isolation::ReadCommitted).contains("ISOLATION LEVEL READ COMMITTED;")
        );
        assert!(session_setup(Isolation::Serializable).contains("ISOLATION LEVEL SERIALIZABLE;"));
    }
}
