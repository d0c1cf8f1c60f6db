//! `users-bench sqlite-ceiling`: how fast SQLite itself does the work of
//! each RPC, in one process with no gRPC, no async runtime and no pool.
//!
//! Each thread owns one connection, configured as the server configures
//! its connections, and runs the server's statements in a tight loop, each
//! statement its own transaction. The ratio of the service to this number is
//! what the service costs. The service's writer commits concurrent creates
//! in groups, which this loop does not (it would have to run them in a
//! group too: `--group`), so the service can beat it on creates.

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use clap::Args;
use diesel::SqliteConnection;

use crate::error::BenchError;
use crate::load::parse_positive_duration;
use crate::progress::{self, Phases, Progress};
use crate::report::{Recorder, Report, Setup};
use crate::sqlite_db::{self, FIND_LIMIT};
use crate::workload::{self, Keys, PAGE_SIZE, Rpc, check};

/// `users-bench sqlite-ceiling`.
#[derive(Debug, Clone, Args)]
pub struct CeilingArgs {
    /// A database file that users-server has migrated and that is seeded.
    #[arg(long)]
    database: PathBuf,
    /// Which RPC's statement to run.
    #[arg(long, value_enum)]
    rpc: Rpc,
    /// Threads, each with its own connection (create: 1, since SQLite
    /// serializes writes and the server has a single writer too).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: u32,
    /// Length of the measured phase, e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = parse_positive_duration)]
    duration: Duration,
    /// Unrecorded statements before the measured phase, to warm the caches.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// create: inserts per transaction (1: each insert commits alone, the
    /// way one client's statements would). Each insert in a group counts
    /// as a call, with the group's latency.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    group: u32,
    /// Users the database was seeded with (`get` asks for ids 1 to this).
    #[arg(long, default_value_t = 100_000)]
    users: u32,
    /// Distinct names the database was seeded with.
    #[arg(long, default_value_t = 10_000)]
    names: u32,
    /// Also print the results as one JSON line.
    #[arg(long)]
    pub json: bool,
}

/// Runs the statements and reports on the measured phase.
pub fn run(args: &CeilingArgs) -> Result<Report, BenchError> {
    if matches!(args.rpc, Rpc::Create | Rpc::CreateWithRequestId) && args.threads != 1 {
        return Err(BenchError::InvalidInput(format!(
            "create runs on one thread: SQLite takes one writer at a time, \
             as does the server (got --threads {})",
            args.threads
        )));
    }
    let keys = match args.rpc {
        Rpc::Get => Keys::ids(args.users)?,
        rpc => Keys::new(rpc, args.names)?,
    };
    // All connections first, so that a bad database fails before any work.
    let connections = (0..args.threads)
        .map(|_| sqlite_db::open(&args.database))
        .collect::<Result<Vec<_>, _>>()?;

    let phases = Phases::starting_now(args.warmup, args.duration)?;
    let progress = Progress::default();

    let finished = thread::scope(|scope| {
        let threads: Vec<_> = connections
            .into_iter()
            .map(|conn| scope.spawn(|| worker(conn, args, keys, phases, &progress)))
            .collect();
        let mut next_line = phases.start + progress::INTERVAL;
        while threads.iter().any(|thread| !thread.is_finished()) {
            thread::sleep(Duration::from_millis(50));
            let now = Instant::now();
            if now >= next_line {
                progress::show(&progress.line(now, &phases));
                next_line += progress::INTERVAL;
            }
        }
        threads
            .into_iter()
            .map(|thread| thread.join())
            .collect::<Result<Vec<_>, _>>()
    })
    .map_err(|_| BenchError::WorkerPanicked)?;
    progress::finish();

    let mut recorder = Recorder::new();
    let mut last_done = phases.measure_start;
    for (thread_recorder, done) in &finished {
        recorder.merge(thread_recorder);
        last_done = last_done.max(*done);
    }
    let setup = Setup {
        tool: "sqlite-ceiling",
        rpc: args.rpc,
        connections: args.threads,
        concurrency: args.threads,
        rate: None,
    };
    Ok(Report::new(
        setup,
        &recorder,
        last_done - phases.measure_start,
        None,
    ))
}

/// One thread's loop; returns what it recorded and when it stopped.
fn worker(
    mut conn: SqliteConnection,
    args: &CeilingArgs,
    keys: Keys,
    phases: Phases,
    progress: &Progress,
) -> (Recorder, Instant) {
    let mut recorder = Recorder::new();
    let mut created = 0;
    let group = if args.rpc == Rpc::Create {
        args.group
    } else {
        1
    };
    loop {
        let started = Instant::now();
        if started >= phases.end {
            return (recorder, started);
        }
        let outcome = if group == 1 {
            statement(&mut conn, args.rpc, keys, &mut created)
        } else {
            conn.immediate_transaction(|conn| {
                for _ in 0..group {
                    statement(conn, args.rpc, keys, &mut created).map_err(GroupFailed)?;
                }
                Ok::<_, GroupFailed>(())
            })
            .map_err(|failed| failed.0)
        };
        let latency = started.elapsed();
        if started >= phases.measure_start {
            for _ in 0..group {
                progress.count(outcome.is_ok());
                match outcome {
                    Ok(()) => recorder.success(latency),
                    Err(reason) => recorder.failure(reason),
                }
            }
        }
    }
}

/// Why a group of statements was rolled back.
#[derive(Debug)]
struct GroupFailed(&'static str);

impl From<diesel::result::Error> for GroupFailed {
    fn from(error: diesel::result::Error) -> Self {
        Self(sqlite_db::failure_reason(&error))
    }
}

/// One statement, judged as the service would judge the RPC's result.
fn statement(
    conn: &mut SqliteConnection,
    rpc: Rpc,
    keys: Keys,
    created: &mut u64,
) -> Result<(), &'static str> {
    let full_page = usize::try_from(PAGE_SIZE).unwrap_or(usize::MAX);
    let reason = |error: diesel::result::Error| sqlite_db::failure_reason(&error);
    match rpc {
        Rpc::Create => {
            *created += 1;
            sqlite_db::insert(conn, &workload::bench_name(*created)).map_err(reason)?;
            Ok(())
        }
        Rpc::CreateWithRequestId => {
            *created += 1;
            let request_id = uuid::Uuid::new_v4().to_string();
            sqlite_db::insert_with_request_id(conn, &workload::bench_name(*created), &request_id)
                .map_err(reason)?;
            Ok(())
        }
        Rpc::Get => {
            let id = i64::from(keys.pick()) + 1;
            let row = sqlite_db::get(conn, id).map_err(reason)?;
            check(row.0 == id)
        }
        // The service returns min(rows, 10) users: a full page when at
        // least 10 rows came back.
        Rpc::FindName => {
            let rows =
                sqlite_db::find_by_name(conn, &workload::name(keys.pick())).map_err(reason)?;
            check(rows.len() >= full_page)
        }
        // A full page and a next-page token: all 11 rows.
        Rpc::FindPrefix => {
            let (low, high) = workload::prefix_bounds(keys.pick());
            let rows = sqlite_db::find_by_name_range(conn, &low, &high).map_err(reason)?;
            check(i64::try_from(rows.len()) == Ok(FIND_LIMIT))
        }
    }
}
