//! `users-bench`: measures the users service and the databases under it.
//!
//! - `seed` fills a running server with users through CreateUser;
//! - `load` drives one RPC against it and reports throughput, latency and
//!   the server's peak memory;
//! - `sqlite-seed` and `sqlite-ceiling` do the same work directly on a
//!   SQLite file, to tell what the database alone can do, and
//!   `mysql-ceiling` the same on MySQL or MariaDB (PostgreSQL's ceiling
//!   comes from pgbench with the scripts in `bench/pgbench/`);
//! - `event-latency` measures how soon a write's change event reaches a
//!   WatchUsers watcher and a NATS subscriber.
//!
//! `bench/run` runs them all and compares; see `bench/README.md`.

mod connect;
mod cpu;
mod error;
mod event_latency;
mod load;
mod mysql_ceiling;
mod progress;
mod report;
mod rss;
mod seed;
mod sqlite_ceiling;
mod sqlite_db;
mod sqlite_seed;
mod workload;

#[cfg(test)]
mod e2e_tests;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::BenchError;

/// Benchmarks for the users service.
#[derive(Debug, Parser)]
#[command(name = "users-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create seed users through CreateUser on a running server.
    Seed(seed::SeedArgs),
    /// Drive one RPC against a running server and report on it.
    Load(load::LoadArgs),
    /// Insert seed users straight into a migrated SQLite database.
    SqliteSeed(sqlite_seed::SqliteSeedArgs),
    /// Measure SQLite itself running the statements behind one RPC.
    SqliteCeiling(sqlite_ceiling::CeilingArgs),
    /// Measure MySQL or MariaDB itself running the statements behind one RPC.
    MysqlCeiling(mysql_ceiling::MysqlCeilingArgs),
    /// Measure how soon change events reach a watcher and NATS.
    EventLatency(event_latency::EventLatencyArgs),
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("users-bench: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

fn run(command: Command) -> Result<(), BenchError> {
    match command {
        Command::Seed(args) => runtime()?.block_on(seed::run(&args)),
        Command::Load(args) => {
            let report = runtime()?.block_on(load::run(&args))?;
            report.print(args.json)?;
            report.ensure_no_failures()
        }
        Command::SqliteSeed(args) => sqlite_seed::run(&args),
        Command::SqliteCeiling(args) => {
            let report = sqlite_ceiling::run(&args)?;
            report.print(args.json)?;
            report.ensure_no_failures()
        }
        Command::EventLatency(args) => {
            let report = runtime()?.block_on(event_latency::run(&args))?;
            report.print(args.json)
        }
        Command::MysqlCeiling(args) => {
            let report = runtime()?.block_on(mysql_ceiling::run(&args))?;
            report.print(args.json)?;
            report.ensure_no_failures()
        }
    }
}

/// The gRPC subcommands' runtime: one worker thread per core, like the
/// server's, so that neither side gets more threads than the machine has.
fn runtime() -> Result<tokio::runtime::Runtime, BenchError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(BenchError::Runtime)
}
