//! MySQL and MariaDB connections: what every new connection must set before
//! use, what its server lets writes skip ([`WriteCheck`]), and the ids an
//! INSERT gave its rows where there is no RETURNING.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use diesel::mysql::Mysql;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Text, Unsigned};
use diesel::{ConnectionError, ConnectionResult, QueryResult, QueryableByName};
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl, SimpleAsyncConnection};

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
///   is REPEATABLE READ);
/// - then a query, which a Galera node outside the primary component
///   refuses (1047) while it still takes `SET`.
fn session_setup(isolation: Isolation) -> String {
    let level = match isolation {
        Isolation::ReadCommitted => "READ COMMITTED",
        Isolation::Serializable => "SERIALIZABLE",
    };
    format!(
        "SET time_zone = '+00:00';
         SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,\
         ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION';
         SET SESSION TRANSACTION ISOLATION LEVEL {level};
         SELECT 1;"
    )
}

/// Opens a connection to `url`, set up as [`session_setup`] says: to the
/// first of its hosts ([`hosts`]) that accepts it and answers queries.
///
/// A node of a Galera cluster that has left the primary component accepts
/// connections and `SET`, but refuses queries (1047, "WSREP has not yet
/// prepared node for application use"): the `SELECT 1` of the set-up finds
/// it out, and the next host is tried.
/// What the server lets writes skip is noted in `server`.
pub async fn establish(
    url: &str,
    isolation: Isolation,
    server: &ServerWrites,
) -> ConnectionResult<AsyncMysqlConnection> {
    let hosts = hosts(url);
    if let [(_, only)] = &hosts[..] {
        return establish_one(only, isolation, CONNECT_TIMEOUT, server).await;
    }
    // A host that does not answer at all (a machine gone, not a refused
    // port) must not hold up the others for the whole timeout.
    let per_host = CONNECT_TIMEOUT / u32::try_from(hosts.len()).unwrap_or(u32::MAX);
    let mut failures = Vec::new();
    for (host, host_url) in hosts {
        match establish_one(&host_url, isolation, per_host, server).await {
            Ok(conn) => return Ok(conn),
            Err(error) => failures.push(format!("{host}: {error}")),
        }
    }
    Err(ConnectionError::BadConnection(format!(
        "no host answered: {}",
        failures.join("; ")
    )))
}

async fn establish_one(
    url: &str,
    isolation: Isolation,
    timeout: Duration,
    server: &ServerWrites,
) -> ConnectionResult<AsyncMysqlConnection> {
    let mut conn = tokio::time::timeout(timeout, AsyncMysqlConnection::establish(url))
        .await
        .map_err(|_| {
            ConnectionError::BadConnection(format!("no connection within {timeout:?}"))
        })??;
    conn.batch_execute(&session_setup(isolation))
        .await
        .map_err(ConnectionError::CouldntSetupConfiguration)?;
    let traits = ServerTraits::of(&mut conn)
        .await
        .map_err(ConnectionError::CouldntSetupConfiguration)?;
    if traits.galera {
        conn.batch_execute(GALERA_SETUP)
            .await
            .map_err(ConnectionError::CouldntSetupConfiguration)?;
    }
    server.note(traits.writes(), &traits.version);
    Ok(conn)
}

/// How a write on a MySQL-family server learns and checks what it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WriteCheck {
    /// MariaDB 10.5 or later, not a Galera node: `INSERT .. RETURNING`
    /// hands back the row, and a write that fails says so, so nothing
    /// needs reading back.
    Returning = 1,
    /// MySQL (no RETURNING) or a Galera node (whose rollback of a
    /// transaction can go unreported, [`rolled_back_under_us`]): rows are
    /// named by [`last_insert_id`] and read back after the last write.
    ReadBack = 2,
}

/// The [`WriteCheck`] every connection of a pool allows, learned as they
/// open: [`WriteCheck::ReadBack`] as soon as one needs it (a pool's hosts
/// are one kind of server in practice; if not, the stricter check holds
/// for all). What it learns is logged once, unless it is a lone
/// connection's ([`unlogged`](Self::unlogged)).
#[derive(Debug)]
pub struct ServerWrites {
    check: AtomicU8,
    logged: bool,
}

impl Default for ServerWrites {
    fn default() -> Self {
        Self {
            check: AtomicU8::new(0),
            logged: true,
        }
    }
}

impl ServerWrites {
    /// For a connection outside the pool (the migrations'): says nothing
    /// of what it learns, which the pool will say.
    pub fn unlogged() -> Self {
        Self {
            logged: false,
            ..Self::default()
        }
    }

    fn note(&self, check: WriteCheck, version: &str) {
        let before = self.check.fetch_max(check as u8, Ordering::Relaxed);
        if self.logged && before < check as u8 {
            match check {
                WriteCheck::Returning => tracing::info!(
                    version,
                    "MariaDB outside Galera: creates take their rows from INSERT .. RETURNING"
                ),
                WriteCheck::ReadBack => tracing::info!(
                    version,
                    "Galera node or MySQL: writes read back what they wrote"
                ),
            }
        }
    }

    /// The check for a unit on one of the pool's connections (which has
    /// been noted: it was opened first).
    pub fn check(&self) -> WriteCheck {
        if AtomicU8::load(&self.check, Ordering::Relaxed) == WriteCheck::Returning as u8 {
            WriteCheck::Returning
        } else {
            WriteCheck::ReadBack
        }
    }
}

/// What a new connection's server is, from its variables.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ServerTraits {
    /// `@@version`, e.g. `10.11.6-MariaDB-0+deb12u1`.
    version: String,
    /// A node of a Galera cluster (`wsrep_on`; MySQL has no such variable).
    galera: bool,
    /// `INSERT .. RETURNING` (MariaDB 10.5 and later; MySQL has none).
    returning: bool,
}

impl ServerTraits {
    async fn of(conn: &mut AsyncMysqlConnection) -> QueryResult<Self> {
        #[derive(QueryableByName)]
        struct Variable {
            #[diesel(sql_type = Text, column_name = "Variable_name")]
            name: String,
            #[diesel(sql_type = Text, column_name = "Value")]
            value: String,
        }
        let rows: Vec<Variable> =
            diesel::sql_query("SHOW VARIABLES WHERE Variable_name IN ('wsrep_on', 'version')")
                .load(conn)
                .await?;
        let value = |name: &str| {
            rows.iter()
                .find(|row| row.name.eq_ignore_ascii_case(name))
                .map(|row| row.value.as_str())
        };
        let version = value("version").unwrap_or_default().to_owned();
        Ok(Self {
            galera: value("wsrep_on").is_some_and(|on| on.eq_ignore_ascii_case("ON")),
            returning: mariadb_with_returning(&version),
            version,
        })
    }

    fn writes(&self) -> WriteCheck {
        if self.returning && !self.galera {
            WriteCheck::Returning
        } else {
            WriteCheck::ReadBack
        }
    }
}

/// Whether `version` (`@@version`: `10.11.6-MariaDB-0+deb12u1`, or with
/// the replication prefix `5.5.5-10.11.6-MariaDB`) is a MariaDB that has
/// `INSERT .. RETURNING` (10.5 and later).
fn mariadb_with_returning(version: &str) -> bool {
    let Some((number, _)) = version.split_once("-MariaDB") else {
        return false;
    };
    let number = number.rsplit('-').next().unwrap_or(number);
    let mut parts = number.split('.').map(str::parse::<u32>);
    match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor) >= (10, 5),
        _ => false,
    }
}

/// On a Galera node: reads, updates and deletes first wait until the node
/// has applied every write set the cluster had committed when they began
/// (`wsrep_sync_wait` 1 + 2), so that a call sees what another replica of
/// the service, on another node, acknowledged just before, as on a single
/// server: a user created there, an etag it handed out. Galera's default
/// (0) let a GetUser on one node miss a user created through another (the
/// Galera fault test saw it within 60 rounds). Inserts need no wait: a
/// request id already taken elsewhere fails at certification, and the
/// unit runs again.
const GALERA_SETUP: &str = "SET SESSION wsrep_sync_wait = 3;";

/// The hosts of a `mysql://` URL, each with the URL of that host alone:
/// `mysql://u:p@h1:3306,h2:3307/db?x` names `h1:3306` and `h2:3307` (the
/// form PostgreSQL's driver reads; MySQL's takes one host). A URL with one
/// host is that host's URL.
pub fn hosts(url: &str) -> Vec<(String, String)> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return vec![(url.to_owned(), url.to_owned())];
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (user, hosts) = match authority.rsplit_once('@') {
        Some((user, hosts)) => (format!("{user}@"), hosts),
        None => (String::new(), authority),
    };
    hosts
        .split(',')
        .map(|host| (host.to_owned(), format!("{scheme}://{user}{host}{tail}")))
        .collect()
}

/// The ids MySQL gave the `count` rows the connection's last INSERT
/// stored, in order.
///
/// `LAST_INSERT_ID()` is the first row's id, per connection (concurrent
/// inserts elsewhere never change it). InnoDB numbers the rows of one
/// multi-row INSERT of known size (a "simple insert") in one step, in
/// every `innodb_autoinc_lock_mode`, so they follow it
/// `@@auto_increment_increment` apart (1, unless set otherwise, as a Galera
/// cluster does).
pub async fn inserted_ids(conn: &mut AsyncMysqlConnection, count: usize) -> QueryResult<Vec<i64>> {
    // No row at all is how a transaction rolled back under it (Galera)
    // was seen to answer this SELECT.
    let (first, step): (u64, u64) =
        InsertedIds
            .get_result(conn)
            .await
            .map_err(|error| match error {
                diesel::result::Error::NotFound => {
                    rolled_back_under_us("LAST_INSERT_ID() returned no row")
                }
                error => error,
            })?;
    let beyond_bigint =
        || diesel::result::Error::DeserializationError("an inserted id beyond BIGINT".into());
    (0..count as u64)
        .map(|n| {
            n.checked_mul(step)
                .and_then(|offset| first.checked_add(offset))
                .and_then(|id| i64::try_from(id).ok())
                .ok_or_else(beyond_bigint)
        })
        .collect()
}

diesel::define_sql_function! {
    /// `LAST_INSERT_ID()`: the first id the connection's last INSERT into
    /// a table with an `AUTO_INCREMENT` column gave, per connection. Within
    /// a statement it is the previous statement's (an `INSERT .. SELECT`
    /// reads the id before its own rows take new ones), so the statements
    /// after an insert can name its row without asking for the id first.
    /// (MySQL's type is unsigned; ids fit BIGINT, and it is only compared.)
    fn last_insert_id() -> BigInt;
}

/// The error for a transaction that finds its own writes gone: a Galera
/// node rolled it back under it (a brute-force abort, for a conflicting
/// write another node certified first) and the deadlock error (1213) that
/// should have said so never came, a known class of wsrep bugs (the abort
/// is reported to the statement running when it lands, and lost when that
/// statement is a write). Reported as the serialization failure it is, so
/// that the unit runs again, whole: nothing it wrote was kept.
///
/// The Galera fault test saw it: creates whose own row, read back in their
/// transaction, was not there; renames acknowledged with another rename's
/// row.
pub fn rolled_back_under_us(what: &str) -> diesel::result::Error {
    diesel::result::Error::DatabaseError(
        diesel::result::DatabaseErrorKind::SerializationFailure,
        Box::new(format!(
            "{what}: the transaction was rolled back by the database without an error (Galera)"
        )),
    )
}

/// `SELECT LAST_INSERT_ID(), @@auto_increment_increment`: a query type of
/// its own, rather than `sql`, so that diesel keeps it prepared (it never
/// caches raw SQL), as it runs after every insert.
#[derive(Debug, Clone, Copy, QueryId)]
pub struct InsertedIds;

impl Query for InsertedIds {
    type SqlType = (Unsigned<BigInt>, Unsigned<BigInt>);
}

impl QueryFragment<Mysql> for InsertedIds {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Mysql>) -> QueryResult<()> {
        out.push_sql("SELECT LAST_INSERT_ID(), @@auto_increment_increment");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returning_is_mariadb_from_10_5() {
        assert!(mariadb_with_returning("10.11.6-MariaDB-0+deb12u1"));
        assert!(mariadb_with_returning("5.5.5-10.5.0-MariaDB"));
        assert!(mariadb_with_returning("11.4.2-MariaDB-log"));
        assert!(!mariadb_with_returning("10.4.32-MariaDB"));
        assert!(!mariadb_with_returning("8.0.35"));
        assert!(!mariadb_with_returning("8.4.0-0ubuntu0.24.04.1"));
    }

    #[test]
    fn a_galera_node_reads_back_whatever_its_version() {
        let traits = |galera, returning| ServerTraits {
            version: String::new(),
            galera,
            returning,
        };
        assert_eq!(traits(true, true).writes(), WriteCheck::ReadBack, "Galera");
        assert_eq!(traits(false, false).writes(), WriteCheck::ReadBack, "MySQL");
        assert_eq!(
            traits(false, true).writes(),
            WriteCheck::Returning,
            "MariaDB"
        );
    }

    #[test]
    fn one_connection_that_needs_a_read_back_makes_the_pool_read_back() {
        let server = ServerWrites::default();
        assert_eq!(server.check(), WriteCheck::ReadBack, "nothing known yet");
        server.note(WriteCheck::Returning, "10.11.6-MariaDB");
        assert_eq!(server.check(), WriteCheck::Returning);
        server.note(WriteCheck::ReadBack, "10.11.6-MariaDB");
        server.note(WriteCheck::Returning, "10.11.6-MariaDB");
        assert_eq!(server.check(), WriteCheck::ReadBack);
    }

    #[test]
    fn the_inserted_ids_query_is_one_diesel_keeps_prepared() {
        const { assert!(<InsertedIds as QueryId>::HAS_STATIC_QUERY_ID) };
        assert_eq!(InsertedIds.is_safe_to_cache_prepared(&Mysql), Ok(true));
    }

    #[test]
    fn several_hosts_are_tried_one_by_one() {
        let two = hosts("mysql://app:pw@10.0.0.1:3306,10.0.0.2:3307/users?ssl-mode=disabled");
        assert_eq!(
            two,
            [
                (
                    "10.0.0.1:3306".to_owned(),
                    "mysql://app:pw@10.0.0.1:3306/users?ssl-mode=disabled".to_owned()
                ),
                (
                    "10.0.0.2:3307".to_owned(),
                    "mysql://app:pw@10.0.0.2:3307/users?ssl-mode=disabled".to_owned()
                ),
            ]
        );
        let one = "mysql://root@127.0.0.1:3306/test";
        assert_eq!(hosts(one), [("127.0.0.1:3306".to_owned(), one.to_owned())]);
    }

    #[test]
    fn the_session_runs_at_the_configured_isolation_level() {
        assert!(
            session_setup(Isolation::ReadCommitted).contains("ISOLATION LEVEL READ COMMITTED;")
        );
        assert!(session_setup(Isolation::Serializable).contains("ISOLATION LEVEL SERIALIZABLE;"));
    }
}
