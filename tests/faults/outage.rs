//! PostgreSQL or MariaDB stops, or crashes, under load: calls fail fast
//! with UNAVAILABLE while it is down, the server stays up and recovers by
//! itself once it is back, and every acknowledged create is stored.

use std::time::{Duration, Instant};

use users_tests::{PrivateMysql, PrivatePostgres, StopMode};

use crate::{load::CreateLoad, server::ServerProcess};

/// How long the database stays down each time.
const OUTAGE: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_under_load_fails_fast_and_recovers_without_a_restart() {
    outage::<PrivatePostgres>(StopMode::Fast, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_crashed_under_load_fails_fast_and_recovers_without_a_restart() {
    // Five crashes: a write caught between its rows and its commit is rare
    // (acknowledging it, before `db::written_row`, lost a create in about
    // one crash in three), and this is where it would show.
    outage::<PrivatePostgres>(StopMode::Immediate, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_stopped_under_load_fails_fast_and_recovers_without_a_restart() {
    outage::<PrivateMysql>(StopMode::Fast, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_crashed_under_load_fails_fast_and_recovers_without_a_restart() {
    // Five kill -9s, as for PostgreSQL: a commit caught by the crash is
    // rare, and InnoDB's recovery runs each time.
    outage::<PrivateMysql>(StopMode::Immediate, 5).await;
}

/// A database server of the test's own, which it may stop and start again.
pub trait PrivateDatabase: Sized {
    /// Its name, in messages.
    const NAME: &str;
    /// What the server logs about it while it is down, the first always
    /// (a refused connection), the others when they happen.
    const CAUSES: &[&str];
    /// Starts it; the URL of an empty database on it, for the server.
    fn start_with_database() -> (Self, String);
    /// Stops it as `mode` says; returns once it is down.
    fn go_down(&self, mode: StopMode);
    /// Starts it again; returns once it answers.
    fn come_back(&self);
}

impl PrivateDatabase for PrivatePostgres {
    const NAME: &str = "PostgreSQL";
    const CAUSES: &[&str] = &["Connection refused", "PostgreSQL connection lost"];

    fn start_with_database() -> (Self, String) {
        let postgres = Self::start();
        let url = postgres.url("postgres");
        (postgres, url)
    }

    fn go_down(&self, mode: StopMode) {
        self.stop(mode);
    }

    fn come_back(&self) {
        self.start_again();
    }
}

impl PrivateDatabase for PrivateMysql {
    const NAME: &str = "MariaDB";
    // The driver's texts (mysql_async): a refused connection is
    // "Input/output error: Connection refused (os error 111)"; a pooled
    // connection MariaDB closed, "Driver error: `Connection to the server
    // is closed.'" (no "Server shutdown in progress" arrives first).
    const CAUSES: &[&str] = &["Connection refused", "Connection to the server is closed"];

    fn start_with_database() -> (Self, String) {
        let mysql = Self::start();
        mysql.create_database("users");
        let url = mysql.url("users");
        (mysql, url)
    }

    fn go_down(&self, mode: StopMode) {
        self.stop(mode);
    }

    fn come_back(&self) {
        self.start_again();
    }
}

/// `outages` times (times [`crate::soak`]): the database goes down under
/// load, stays down for [`OUTAGE`], comes back.
async fn outage<D: PrivateDatabase>(mode: StopMode, outages: usize) {
    let name = D::NAME;
    let (database, url) = tokio::task::block_in_place(D::start_with_database);
    let mut server = ServerProcess::start(&url, &["--pool-size", "4"]);
    let client = server.client().await;
    let load = CreateLoad::start(&client, 8, "outage");
    load.wait_for_acknowledged(200).await;

    // Each outage: when the database was down, and when it was back; and
    // how long it took to start again (crash recovery included).
    let mut windows = Vec::new();
    let mut restarts = Vec::new();
    for _ in 0..outages * crate::soak() {
        tokio::task::block_in_place(|| database.go_down(mode));
        let down_at = Instant::now();
        tokio::time::sleep(OUTAGE).await;
        assert!(server.is_running(), "the server survives the outage");
        let restarting_at = Instant::now();
        tokio::task::block_in_place(|| database.come_back());
        restarts.push(restarting_at.elapsed());
        windows.push((down_at..restarting_at, Instant::now()));
        load.wait_for_acknowledged(200).await;
    }
    let outcomes = load.stop().await;

    let during: Vec<_> = outcomes
        .calls
        .iter()
        .filter(|call| windows.iter().any(|(down, _)| down.contains(&call.sent)))
        .collect();
    let recoveries: Vec<Duration> = windows
        .iter()
        .map(|(_, back_at)| {
            outcomes
                .first_success_since(*back_at)
                .unwrap_or_else(|| panic!("creates succeed again once {name} is back"))
                - *back_at
        })
        .collect();
    let slowest_recovery = recoveries.iter().max().copied().unwrap_or_default();
    println!(
        "outage ({name}, {mode:?}) x{}: {} calls, {} acknowledged; failures by code {:?}; \
         slowest failure {:?}; {} calls while down, all failed; {name} took {restarts:?} \
         to start again; recovered {recoveries:?} after it was back",
        windows.len(),
        outcomes.calls.len(),
        outcomes.acknowledged().count(),
        outcomes.failures_by_code(),
        outcomes.slowest_failure(),
        during.len(),
    );

    // While down: UNAVAILABLE, fast; never a hang, INTERNAL, or success.
    assert!(during.len() > 50, "calls kept coming while {name} was down");
    for call in &during {
        assert_eq!(call.outcome, Err("Unavailable".to_owned()), "{call:?}");
    }
    for (code, _) in outcomes.failures_by_code() {
        assert_eq!(code, "Unavailable", "every failure is UNAVAILABLE");
    }
    assert!(
        outcomes.slowest_failure() < Duration::from_secs(1),
        "failures are fast: {:?}",
        outcomes.slowest_failure()
    );
    // Back: the pools replaced their broken connections by themselves.
    assert!(
        slowest_recovery < Duration::from_secs(5),
        "recovered in {recoveries:?}"
    );
    // The real cause is in the log, not only "unavailable".
    for cause in D::CAUSES {
        if let Some(line) = server.log_lines_with(cause).first() {
            println!("outage ({name}, {mode:?}), server log: {line}");
        }
    }
    assert!(
        !server.log_lines_with(D::CAUSES[0]).is_empty(),
        "connection failures are logged with their cause:\n{}",
        server.log_lines_with("WARN").join("\n")
    );

    // Nothing acknowledged is lost.
    let lost = crate::crash::acknowledged_but_not_stored_once(&client, &outcomes).await;
    println!("outage ({name}, {mode:?}): acknowledged creates lost or duplicated: {lost}");
    assert_eq!(lost, 0);
    assert!(server.is_running());
}
