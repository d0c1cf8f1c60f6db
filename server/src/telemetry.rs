//! Logging: `tracing` to stderr, as text or JSON lines, filtered by
//! `RUST_LOG` (default `info`).

use std::io::IsTerminal;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

/// How log lines are written, as `--log-format` sets it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line per event for people to read, with the fields of the call
    /// it belongs to (`call{method=.. request_id=..}`) in front.
    #[default]
    Text,
    /// One JSON object per line, for log collectors: the event's fields at
    /// the top level, the call's fields under `span`.
    Json,
}

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
pub fn init(format: LogFormat) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let installed = match format {
        LogFormat::Text => logs
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
            .is_ok(),
        // The innermost span is the call's (the only one we open), so its
        // fields suffice; the list of all spans would repeat them.
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
            .is_ok(),
    };
    LogGuard {
        _worker: installed.then_some(guard),
    }
}
