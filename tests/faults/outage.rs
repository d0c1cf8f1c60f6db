//! PostgreSQL stops, or crashes, under load: calls fail fast with
//! UNAVAILABLE while it is down, the server stays up and recovers by itself
//! once it is back, and every acknowledged create is stored.

use std::time::{Duration, Instant};

use users_tests::{PrivatePostgres, StopMode};

use crate::{load::CreateLoad, server::ServerProcess};

/// How long the database stays down each time.
const OUTAGE: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_under_load_fails_fast_and_recovers_without_a_restart() {
    outage(StopMode::Fast, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_crashed_under_load_fails_fast_and_recovers_without_a_restart() {
    // Five crashes: a write caught between its rows and its commit is rare
    // (acknowledging it, before `db::written_row`, lost a create in about
    // one crash in three), and this is where it would show.
    outage(StopMode::Immediate, 5).await;
}

/// `outages` times (times [`crate::soak`]): PostgreSQL goes down under
/// load, stays down for [`OUTAGE`], comes back.
async fn outage(mode: StopMode, outages: usize) {
    let postgres = PrivatePostgres::start();
    let mut server = ServerProcess::start(&postgres.url("postgres"), &["--pool-size", "4"]);
    let client = server.client().await;
    let load = CreateLoad::start(&client, 8, "outage");
    load.wait_for_acknowledged(200).await;

    // Each outage: when PostgreSQL was down, and when it was back.
    let mut windows = Vec::new();
    for _ in 0..outages * crate::soak() {
        tokio::task::block_in_place(|| postgres.stop(mode));
        let down_at = Instant::now();
        tokio::time::sleep(OUTAGE).await;
        assert!(server.is_running(), "the server survives the outage");
        let restarting_at = Instant::now();
        tokio::task::block_in_place(|| postgres.start_again());
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
                .expect("creates succeed again once PostgreSQL is back")
                - *back_at
        })
        .collect();
    let slowest_recovery = recoveries.iter().max().copied().unwrap_or_default();
    println!(
        "outage ({mode:?}) x{}: {} calls, {} acknowledged; failures by code {:?}; \
         slowest failure {:?}; {} calls while down, all failed; recovered {recoveries:?} \
         after PostgreSQL was back",
        windows.len(),
        outcomes.calls.len(),
        outcomes.acknowledged().count(),
        outcomes.failures_by_code(),
        outcomes.slowest_failure(),
        during.len(),
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
        slowest_recovery < Duration::from_secs(5),
        "recovered in {recoveries:?}"
    );
    // The real cause is in the log, not only "unavailable".
    for cause in ["Connection refused", "PostgreSQL connection lost"] {
        if let Some(line) = server.log_lines_with(cause).first() {
            println!("outage ({mode:?}), server log: {line}");
        }
    }
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
