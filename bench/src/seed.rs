//! `users-bench seed`: fills a running server with the users the finds
//! expect, through CreateUser, as a client would.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use tokio::task::JoinSet;
use users_client::{ClientError, UsersClient};

use crate::connect::connect_all;
use crate::error::BenchError;
use crate::progress;
use crate::workload::{self, MAX_NAMES};

/// `users-bench seed`.
#[derive(Debug, Clone, Args)]
pub struct SeedArgs {
    /// Server URL, e.g. http://127.0.0.1:50061.
    #[arg(long)]
    endpoint: String,
    /// Users to create.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    users: u64,
    /// Distinct names: user i is named `user-NNNNN`, NNNNN = i % names.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_NAMES)))]
    names: u32,
    /// CreateUser calls in flight at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    concurrency: u32,
    /// HTTP/2 connections to spread them over.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    connections: u32,
}

/// What the seeding workers share.
#[derive(Debug)]
struct Seeding {
    users: u64,
    names: u32,
    /// The next user index to create.
    next: AtomicU64,
    /// Users stored so far.
    created: AtomicU64,
    /// Set by the first failure, so that the other workers stop too.
    failed: AtomicBool,
}

async fn worker(seeding: Arc<Seeding>, client: UsersClient) -> Result<(), ClientError> {
    while !seeding.failed.load(Ordering::Relaxed) {
        let i = seeding.next.fetch_add(1, Ordering::Relaxed);
        if i >= seeding.users {
            break;
        }
        if let Err(error) = client
            .create_user(workload::seeded_name(i, seeding.names))
            .await
        {
            seeding.failed.store(true, Ordering::Relaxed);
            return Err(error);
        }
        seeding.created.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Creates the users; stops at the first failed call, since a half-seeded
/// database would make every later number wrong.
pub async fn run(args: &SeedArgs) -> Result<(), BenchError> {
    let clients = connect_all(
        &args.endpoint,
        args.connections.min(args.concurrency),
        Duration::from_secs(30),
    )
    .await?;
    let seeding = Arc::new(Seeding {
        users: args.users,
        names: args.names,
        next: AtomicU64::new(0),
        created: AtomicU64::new(0),
        failed: AtomicBool::new(false),
    });
    let started = Instant::now();
    let mut workers = JoinSet::new();
    for (_, client) in (0..args.concurrency).zip(clients.iter().cycle()) {
        workers.spawn(worker(Arc::clone(&seeding), client.clone()));
    }

    let show = || {
        let created = seeding.created.load(Ordering::Relaxed);
        let rate = created as f64 / started.elapsed().as_secs_f64().max(1e-3);
        format!("seeded {created}/{} users, {rate:.0}/s", args.users)
    };
    let mut ticks = tokio::time::interval(progress::INTERVAL);
    let mut first_error = None;
    loop {
        tokio::select! {
            joined = workers.join_next() => match joined {
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(error))) => { first_error.get_or_insert(error); }
                Some(Err(_)) => return Err(BenchError::WorkerPanicked),
                None => break,
            },
            _ = ticks.tick() => progress::show(&show()),
        }
    }
    progress::show(&show());
    progress::finish();
    let created = seeding.created.load(Ordering::Relaxed);
    if let Some(source) = first_error {
        return Err(BenchError::Seed {
            created,
            total: args.users,
            source,
        });
    }
    eprintln!(
        "seeded {created} users over {} names in {:.1} s",
        u64::from(args.names).min(created),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
