//! Fault tests: the real server, often as a process of its own, under load
//! while its database is stopped or crashes, while it is killed, while
//! callers cancel, while its pool is exhausted and while its transactions
//! conflict. Each asserts that nothing acknowledged is lost, and prints
//! what it saw (`cargo test -p users-tests --test faults -- --nocapture`);
//! RELIABILITY.md collects the numbers.
//!
//! Tests that stop PostgreSQL start a cluster of their own
//! ([`users_tests::PrivatePostgres`], with a hot standby for the read
//! replica tests), the PostgreSQL failover test
//! (`pg_failover`) a pg_auto_failover formation of its own
//! ([`users_tests::PgAutoFailover`]: `pg_autoctl`, from the Debian packages
//! pg-auto-failover-cli and postgresql-15-auto-failover),
//! tests that stop MariaDB a server of their own
//! ([`users_tests::PrivateMysql`]), and the Galera test (`galera`) a
//! three-node MariaDB Galera cluster of its own
//! ([`users_tests::GaleraCluster`]: Debian's galera-4 and rsync, both
//! dependencies of mariadb-server), and the change-event test (`events`)
//! a NATS server of its own ([`users_tests::PrivateNats`]); the others use
//! the servers
//! at `USERS_TEST_POSTGRES_URL` and `USERS_TEST_MYSQL_URL`, in a database
//! of their own, and fail, never skip, when it is unreachable.
//!
//! By default each takes seconds, for CI; `USERS_TEST_SOAK=N` makes them
//! soak tests, N times longer (N outages, N kills, N times the calls).

mod cancellation;
mod crash;
mod events;
mod failover;
mod galera;
mod id_numbering;
mod load;
mod outage;
mod pg_failover;
mod pool_exhaustion;
mod read_replicas;
mod reload;
mod retries;
mod server;
mod shutdown;

/// How many times longer than in CI the tests run: `USERS_TEST_SOAK`, or 1.
pub fn soak() -> usize {
    match std::env::var("USERS_TEST_SOAK") {
        Err(_) => 1,
        Ok(text) => text
            .parse()
            .ok()
            .filter(|times| *times > 0)
            .unwrap_or_else(|| panic!("USERS_TEST_SOAK={text:?}: expected a positive number")),
    }
}
