//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default `info`).

use std::io::IsTerminal;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

/// Keeps the log writer thread alive; dropping it flushes the lines still
/// queued. Hold it until the process exits.
#[must_use = "dropping the guard stops logging"]
#[derive(Debug)]
pub struct LogGuard {
    _worker: Option<WorkerGuard>,
}

/// Installs the global subscriber. Lines are written by a thread of their
/// own, so a call never waits on stderr (a slow terminal or pipe would
/// otherwise stall the async workers, once per call). If the queue fills
/// up, lines are dropped rather than calls slowed.
///
/// Safe to call more than once: later calls install nothing.
pub fn init() -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        .try_init()
        .is_ok();
    LogGuard {
        _worker: installed.then_some(guard),
    }
}
