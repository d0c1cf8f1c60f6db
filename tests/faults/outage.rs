//! PostgreSQL stops, or crashes, under load: calls fail fast with
//! UNAVAILABLE while it is down, the server stays up and recovers by itself
//! once it is back, and every acknowledged create is stored.

use std::time::{Duration, Instant};

use users_tests::{PrivatePostgres, StopMode};

use crate::{load::CreateLoad, server::ServerProcess};

/// How long the database stays down.
const OUTAGE: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_under_load_fails_fast_and_recovers_without_a_restart() {
    outage(StopMode::Fast).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_crashed_under_load_fails_fast_and_recovers_without_a_restart() {
    outage(StopMode::Immediate).await;
}

async fn outage(mode: StopMode) {
    let postgres = PrivatePostgres::start();
    let mut server = ServerProcess::start(&postgres.url("postgres"), &["--pool-size", "4"]);
    let client = server.client().await;
    let load = CreateLoad::start(&client, 8, "outage");
    load.wait_for_acknowledged(200).await;

    tokio::task::block_in_place(|| postgres.stop(mode));
    let down_at = Instant::now();
    tokio::time::sleep(OUTAGE).await;
    assert!(server.is_running(), "the server survives the outage");
    let restarted_at = Instant::now();
    tokio::task::block_in_place(|| postgres.start_again());
    let back_at = Instant::now();
    load.wait_for_acknowledged(200).await;
    let outcomes = load.stop().await;

    let during: Vec<_> = outcomes
        .calls
        .iter()
        .filter(|call| call.sent >= down_at && call.sent < restarted_at)
        .collect();
    let recovered_at = outcomes
        .first_success_since(back_at)
        .expect("creates succeed again once PostgreSQL is back");
    println!(
        "outage ({mode:?}): {} calls, {} acknowledged; failures by code {:?}; \
         slowest failure {:?}; {} calls while down, all failed; recovered {:?} after PostgreSQL was back",
        outcomes.calls.len(),
        outcomes.acknowledged().count(),
        outcomes.failures_by_code(),
        outcomes.slowest_failure(),
        during.len(),
        recovered_at - back_at,
    );

    // While down: UNAVAILABLE, fast; never a hang, INTERNAL, or success.
    assert!(
        during.len() > 50,
        "calls kept coming while PostgreSQL was down"
    );
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
        recovered_at - back_at < Duration::from_secs(5),
        "recovered in {:?}",
        recovered_at - back_at
    );
    // The real cause is in the log, not only "unavailable".
    assert!(
        !server.log_lines_with("Connection refused").is_empty(),
        "connection failures are logged with their cause:\n{}",
        server.log_lines_with("WARN").join("\n")
    );

    // Nothing acknowledged is lost.
    let lost = crate::crash::acknowledged_but_not_stored_once(&client, &outcomes).await;
    println!("outage ({mode:?}): acknowledged creates lost or duplicated: {lost}");
    assert_eq!(lost, 0);
    assert!(server.is_running());
}
