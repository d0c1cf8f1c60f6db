//! `users-bench sqlite-seed`: writes the seed rows straight into a SQLite
//! database, in one transaction: seconds instead of a minute of CreateUser
//! calls, with the same names and the same kind of timestamps.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use diesel::prelude::*;

use crate::error::BenchError;
use crate::sqlite_db::{self, users};
use crate::workload::{self, MAX_NAMES};

/// `users-bench sqlite-seed`.
#[derive(Debug, Clone, Args)]
pub struct SqliteSeedArgs {
    /// A database file that users-server has migrated.
    #[arg(long)]
    database: PathBuf,
    /// Users to create.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    users: u64,
    /// Distinct names: user i is named `user-NNNNN`, NNNNN = i % names.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_NAMES)))]
    names: u32,
}

/// Inserts the users, all or none.
pub fn run(args: &SqliteSeedArgs) -> Result<(), BenchError> {
    let mut conn = sqlite_db::open(&args.database)?;
    let started = Instant::now();
    let total = conn
        .immediate_transaction(|conn| {
            for i in 0..args.users {
                let now = sqlite_db::now();
                diesel::insert_into(users::table)
                    .values((
                        users::name.eq(workload::seeded_name(i, args.names)),
                        users::create_time.eq(now),
                        users::update_time.eq(now),
                    ))
                    .execute(conn)?;
            }
            users::table.count().get_result::<i64>(conn)
        })
        .map_err(|error| BenchError::Database {
            path: args.database.display().to_string(),
            detail: format!("seeding failed, nothing stored: {error}"),
        })?;
    eprintln!(
        "seeded {} users over {} names in {:.1} s; the table holds {total} users",
        args.users,
        u64::from(args.names).min(args.users),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
