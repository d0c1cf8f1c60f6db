//! The primary of a pg_auto_failover formation (two PostgreSQL nodes,
//! synchronous replication, [`users_tests::PgAutoFailover`]) is killed with
//! SIGKILL under write load, the server connected to both nodes through a
//! multi-host URL (`target_session_attrs=read-write`). While no node
//! accepts writes, calls fail fast with UNAVAILABLE and health is
//! NOT_SERVING; once the standby is promoted, writes resume by themselves,
//! without restarting the server; every acknowledged create is stored
//! exactly once on the new primary, and the creates that got no answer,
//! sent again with their request ids, are stored once too.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use users_tests::PgAutoFailover;

use crate::{
    crash::{acknowledged_but_not_stored_once, stored_users},
    load::{self, CreateLoad, Outcomes},
    server::ServerProcess,
};

/// How long the formation may take to promote the standby after a kill:
/// about 9 s with the harness's monitor settings, more on a loaded
/// machine.
const FAILOVER_BOUND: Duration = Duration::from_secs(90);

/// The server's `--health-check-interval`: short, to watch health follow
/// the formation.
const HEALTH_CHECK_INTERVAL: &str = "200ms";

/// A failed call may take this long at most: it must fail fast, never hang
/// on a node that is gone or on a commit that waits for one.
const SLOWEST_FAILURE: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_primary_killed_under_load_fails_over_and_loses_no_acknowledged_create() {
    let test_started = Instant::now();
    let mut formation = tokio::task::block_in_place(PgAutoFailover::start);
    let formation_took = test_started.elapsed();
    let replication = tokio::task::block_in_place(|| formation.replication_settings());
    println!(
        "pg_auto_failover: formation up in {formation_took:?} (monitor, 2 nodes): {}; {replication}",
        tokio::task::block_in_place(|| formation.describe_states())
    );
    assert!(
        replication.contains("ANY 1 (pgautofailover_standby_"),
        "the primary commits only once its standby has the commit: {replication}"
    );

    let mut server = ServerProcess::start(
        &formation.url(),
        &[
            "--pool-size",
            "4",
            "--health-check-interval",
            HEALTH_CHECK_INTERVAL,
        ],
    );
    let client = server.client().await;
    let health = HealthLog::start(&server).await;
    let load = CreateLoad::start(&client, 8, "pg-failover");
    load.wait_for_acknowledged(200).await;

    let mut kills = Vec::new();
    for kill in 0..crate::soak() {
        if kill > 0 {
            // The node killed last time comes back as the standby; the
            // next kill is of the node that took over.
            tokio::task::block_in_place(|| formation.restart_killed_node());
            load.wait_for_acknowledged(200).await;
        }
        let (killed, killed_at) = tokio::task::block_in_place(|| formation.kill_primary());
        let failover = tokio::task::block_in_place(|| formation.wait_for_failover(FAILOVER_BOUND));
        let transitions = formation.transitions().to_vec();
        // Synchronous replication off on the new primary, or its commits
        // would wait for a standby that is gone.
        let replication = tokio::task::block_in_place(|| formation.replication_settings());
        load.wait_for_acknowledged(200).await;
        kills.push(Kill {
            node: killed.name,
            at: killed_at,
            failover,
            transitions,
            replication,
        });
    }
    let outcomes = load.stop().await;
    assert!(server.is_running(), "the server survives the failover");

    let mut slowest_recovery = Duration::ZERO;
    for (number, kill) in kills.iter().enumerate() {
        let first_ok = outcomes
            .first_success_since(kill.at)
            .unwrap_or_else(|| panic!("creates succeed again after kill {}", number + 1));
        let recovered = first_ok - kill.at;
        slowest_recovery = slowest_recovery.max(recovered);
        // The calls sent after the kill and answered before the first
        // success: those that met no node accepting writes.
        let during: Vec<_> = outcomes
            .calls
            .iter()
            .filter(|call| call.sent >= kill.at && call.sent + call.latency < first_ok)
            .collect();
        let slowest_during = during
            .iter()
            .map(|call| call.latency)
            .max()
            .unwrap_or_default();
        let (not_serving, serving) = health.around(kill.at);
        let transitions: Vec<String> = kill
            .transitions
            .iter()
            .map(|(after, states)| format!("{:.1}s {states}", after.as_secs_f64()))
            .collect();
        println!(
            "pg_auto_failover kill -9 #{} of {} (primary): monitor [{}]; new primary writable \
             {:?} after the kill ({}), first create acknowledged {recovered:?} after it; {} \
             calls answered meanwhile, failed: {}, slowest {slowest_during:?}; health \
             NOT_SERVING {:?} and SERVING {:?} after the kill",
            number + 1,
            kill.node,
            transitions.join(", "),
            kill.failover,
            kill.replication,
            during.len(),
            during.iter().filter(|call| call.outcome.is_err()).count(),
            not_serving.map(|at| at - kill.at),
            serving.map(|at| at - kill.at),
        );
        assert!(
            during.len() > 20,
            "calls kept coming while no node accepted writes"
        );
        for call in &during {
            assert_eq!(call.outcome, Err("Unavailable".to_owned()), "{call:?}");
        }
        let not_serving = not_serving.unwrap_or_else(|| {
            panic!(
                "health turns NOT_SERVING after kill {}: {:?}; server log:\n{}",
                number + 1,
                health.describe(kill.at),
                server.log_lines_with("health").join("\n")
            )
        });
        assert!(
            serving.is_some_and(|serving| serving > not_serving),
            "health turns SERVING again after kill {}: {:?}; server log:\n{}",
            number + 1,
            health.describe(kill.at),
            server.log_lines_with("health").join("\n")
        );
    }
    let failures = outcomes.failures_by_code();
    let slowest_failure = outcomes.slowest_failure();

    // Nothing acknowledged is lost, nor stored twice; the creates that got
    // no answer, sent again under their request ids, end up stored once.
    let failed_connects = server.log_lines_with("cannot connect to PostgreSQL").len();
    let lost = acknowledged_but_not_stored_once(&client, &outcomes).await;
    let (unanswered, stored_before_retry, not_once) = retry_unanswered(&client, &outcomes).await;
    println!(
        "pg_auto_failover x{}: {} calls, {} acknowledged; failures by code {failures:?}, \
         slowest after {slowest_failure:?}; slowest recovery {slowest_recovery:?}; server \
         never restarted; connection attempts that failed (logged): {failed_connects}; \
         acknowledged creates lost or duplicated: {lost}; {unanswered} \
         unanswered, {stored_before_retry} of them stored before they were sent again, \
         not stored exactly once after: {not_once}",
        kills.len(),
        outcomes.calls.len(),
        outcomes.acknowledged().count(),
    );
    // What the server saw: its connections to the killed primary closed,
    // then no host accepting writes (the standby is skipped), then the new
    // primary.
    for cause in ["PostgreSQL connection lost", "cannot connect to PostgreSQL"] {
        if let Some(line) = server.log_lines_with(cause).first() {
            println!("pg_auto_failover, server log: {line}");
        }
    }

    for code in failures.keys() {
        assert_eq!(
            code,
            "Unavailable",
            "every failure is UNAVAILABLE (never INTERNAL, never a hang): {failures:?}\n{}",
            server.log_tail(30)
        );
    }
    assert!(
        slowest_failure < SLOWEST_FAILURE,
        "failures are fast: {slowest_failure:?}\n{}",
        server.log_tail(30)
    );
    assert_eq!(lost, 0);
    assert_eq!(not_once, 0);
    assert!(server.is_running());
    assert_eq!(
        server.log_lines_with("applied migrations").len(),
        1,
        "one server process throughout"
    );

    drop(health);
    drop(server);
    drop(formation);
    println!(
        "pg_auto_failover: whole test {:?}, formation stopped and removed",
        test_started.elapsed()
    );
}

/// One kill of the primary.
struct Kill {
    node: String,
    at: Instant,
    /// From the kill until the other node was primary and took a write.
    failover: Duration,
    transitions: Vec<(Duration, String)>,
    /// The replication settings once the other node took over.
    replication: String,
}

/// Sends each create that got no answer again, with its request id; how
/// many there were, how many had been stored before, and how many are not
/// stored exactly once after.
async fn retry_unanswered(
    client: &users_client::UsersClient,
    outcomes: &Outcomes,
) -> (usize, usize, usize) {
    let unanswered: Vec<_> = outcomes.unacknowledged().collect();
    let before = stored_users(client).await;
    let stored_before = unanswered
        .iter()
        .filter(|call| before.contains_key(&call.attempt.name))
        .count();
    for call in &unanswered {
        let retried = load::create(client, call.attempt.clone()).await;
        assert!(retried.outcome.is_ok(), "{retried:?}");
    }
    let after = stored_users(client).await;
    let not_once = unanswered
        .iter()
        .filter(|call| after.get(&call.attempt.name).map(Vec::len) != Some(1))
        .count();
    (unanswered.len(), stored_before, not_once)
}

/// Every status `grpc.health.v1.Health/Watch` reported for the users
/// service, and when, recorded by a task of its own until dropped.
struct HealthLog {
    changes: Arc<Mutex<Vec<(Instant, ServingStatus)>>>,
    /// Why the Watch stream ended, if it did.
    ended: Arc<Mutex<Option<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl HealthLog {
    /// Starts watching; returns once the first status (SERVING) is in.
    async fn start(server: &ServerProcess) -> Self {
        let channel = Channel::from_shared(format!("http://{}", server.addr))
            .expect("the server's address is a URI")
            .connect()
            .await
            .expect("cannot connect to the server");
        let mut health = HealthClient::new(channel);
        let mut updates = health
            .watch(HealthCheckRequest {
                service: "users.v1.UserService".to_owned(),
            })
            .await
            .expect("Watch")
            .into_inner();
        let first = tokio::time::timeout(Duration::from_secs(5), updates.next())
            .await
            .expect("a first status")
            .expect("the Watch stream goes on")
            .expect("a status");
        assert_eq!(first.status(), ServingStatus::Serving);
        let changes = Arc::new(Mutex::new(vec![(Instant::now(), first.status())]));
        let ended = Arc::new(Mutex::new(None));
        let task = tokio::spawn({
            let changes = Arc::clone(&changes);
            let ended = Arc::clone(&ended);
            async move {
                // Kept alive with the stream.
                let _health = health;
                let why = loop {
                    match updates.next().await {
                        Some(Ok(update)) => changes
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push((Instant::now(), update.status())),
                        Some(Err(status)) => break format!("{status}"),
                        None => break "the stream ended".to_owned(),
                    }
                };
                *ended.lock().unwrap_or_else(PoisonError::into_inner) = Some(why);
            }
        });
        Self {
            changes,
            ended,
            task,
        }
    }

    /// The statuses so far, and why the stream ended if it did.
    fn changes(&self) -> (Vec<(Instant, ServingStatus)>, Option<String>) {
        (
            self.changes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            self.ended
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }

    /// The statuses, each with its time since `kill` (negative: before
    /// it), and why the stream ended if it did: for a failure message.
    fn describe(&self, kill: Instant) -> String {
        let (changes, ended) = self.changes();
        let changes: Vec<String> = changes
            .iter()
            .map(|(at, status)| match at.checked_duration_since(kill) {
                Some(after) => format!("{status:?} {after:?} after the kill"),
                None => format!("{status:?} {:?} before the kill", kill - *at),
            })
            .collect();
        format!("{changes:?}, stream ended: {ended:?}")
    }

    /// When health first turned NOT_SERVING after `kill`, and when it next
    /// turned SERVING after that.
    fn around(&self, kill: Instant) -> (Option<Instant>, Option<Instant>) {
        let (changes, _) = self.changes();
        let not_serving = changes
            .iter()
            .find(|(at, status)| *at >= kill && *status == ServingStatus::NotServing)
            .map(|(at, _)| *at);
        let serving = not_serving.and_then(|since| {
            changes
                .iter()
                .find(|(at, status)| *at > since && *status == ServingStatus::Serving)
                .map(|(at, _)| *at)
        });
        (not_serving, serving)
    }
}

impl Drop for HealthLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}
