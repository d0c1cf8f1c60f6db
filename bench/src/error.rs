//! [`BenchError`]: why a benchmark could not run or produced no result.
//!
//! Failed calls during a run are not errors here: they are counted by status
//! and reported with the numbers. These are the failures that leave nothing
//! worth reporting, and each becomes one line on stderr and a non-zero exit.

use users_client::ClientError;

/// A failure that stops a subcommand.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The arguments make no sense together (checked beyond what clap can).
    #[error("{0}")]
    InvalidInput(String),
    /// The endpoint is not a valid URL, or nothing answers there.
    #[error("cannot connect to {endpoint}: {detail}")]
    Connect {
        /// The endpoint as given.
        endpoint: String,
        /// What the transport reported, with its causes.
        detail: String,
    },
    /// A CreateUser call failed while seeding; the database is half seeded.
    #[error("seeding stopped after {created} of {total} users: {source}")]
    Seed {
        /// Users stored before the failure.
        created: u64,
        /// Users asked for.
        total: u64,
        /// The failed call.
        #[source]
        source: ClientError,
    },
    /// The SQLite database cannot be opened or queried.
    #[error("{path}: {detail}")]
    Database {
        /// The database file.
        path: String,
        /// What went wrong, and what to do about it if we know.
        detail: String,
    },
    /// Every call of the measured phase failed, so there is no latency or
    /// throughput to report.
    #[error("no call succeeded in the measured phase (errors: {errors})")]
    NothingSucceeded {
        /// The failures, by status.
        errors: String,
    },
    /// The run finished and its report is printed, but some calls failed:
    /// a script must not take these numbers for a clean run.
    #[error("{failed} of {attempted} measured calls failed ({errors})")]
    CallsFailed {
        /// Failed calls.
        failed: u64,
        /// Successful and failed calls.
        attempted: u64,
        /// The failures, by status.
        errors: String,
    },
    /// The tokio runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The JSON line could not be produced.
    #[error("cannot encode the JSON report: {0}")]
    Json(#[from] serde_json::Error),
    /// A benchmark thread panicked (a bug in users-bench).
    #[error("a benchmark thread panicked")]
    WorkerPanicked,
}

impl BenchError {
    /// The process exit code: 3 when the run completed with failed calls
    /// (its report is out, a script may still use it), 1 otherwise. clap
    /// exits with 2 on bad usage.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::CallsFailed { .. } => 3,
            _ => 1,
        }
    }
}

/// `error` and its sources, outermost first: tonic's transport error alone
/// says only "transport error", its causes say "connection refused".
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        // Some errors repeat their source in their own message already.
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
