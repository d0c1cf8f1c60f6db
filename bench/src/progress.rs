//! The phases of a run, and the once-a-second progress line on stderr,
//! rewritten in place with `\r` so that a long run shows it is alive
//! without scrolling.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::BenchError;

/// A warmup, whose calls are not recorded, then the measured phase.
#[derive(Debug, Clone, Copy)]
pub struct Phases {
    /// When the warmup starts.
    pub start: Instant,
    /// When the warmup ends and the measured phase starts.
    pub measure_start: Instant,
    /// When the measured phase ends: no call starts after it.
    pub end: Instant,
}

impl Phases {
    /// A run starting now.
    pub fn starting_now(warmup: Duration, duration: Duration) -> Result<Self, BenchError> {
        let start = Instant::now();
        let measure_start = start.checked_add(warmup);
        match measure_start.and_then(|at| Some((at, at.checked_add(duration)?))) {
            Some((measure_start, end)) => Ok(Self {
                start,
                measure_start,
                end,
            }),
            None => Err(BenchError::InvalidInput(
                "--warmup and --duration are too long".to_owned(),
            )),
        }
    }
}

/// Counters the workers bump and the progress printer reads. Relaxed
/// atomics: the line is approximate by nature.
#[derive(Debug, Default)]
pub struct Progress {
    calls: AtomicU64,
    errors: AtomicU64,
}

impl Progress {
    /// Counts one measured call.
    pub fn count(&self, ok: bool) {
        let counter = if ok { &self.calls } else { &self.errors };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The line for `now` in a run with `phases`.
    pub fn line(&self, now: Instant, phases: &Phases) -> String {
        if now < phases.measure_start {
            let left = phases.measure_start - now;
            return format!("warming up, {:.0} s left", left.as_secs_f64().ceil());
        }
        let elapsed = now.min(phases.end) - phases.measure_start;
        let total = phases.end - phases.measure_start;
        if elapsed < Duration::from_millis(100) {
            return format!("measuring for {:.0} s", total.as_secs_f64());
        }
        let calls = self.calls.load(Ordering::Relaxed);
        let errors = self.errors.load(Ordering::Relaxed);
        let rate = calls as f64 / elapsed.as_secs_f64().max(1e-3);
        format!(
            "{:>4.0}/{:.0} s  {rate:>9.0} calls/s  {calls} calls  {errors} errors",
            elapsed.as_secs_f64(),
            total.as_secs_f64()
        )
    }
}

/// How often the line is rewritten.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Rewrites the progress line with `text`.
pub fn show(text: &str) {
    let mut stderr = std::io::stderr().lock();
    // Trailing spaces wipe what a longer previous line left behind. A
    // closed stderr is no reason to stop a benchmark.
    let _ = write!(stderr, "\r{text:<70}");
    let _ = stderr.flush();
}

/// Ends the progress line so that what follows starts on a fresh one.
pub fn finish() {
    eprintln!();
}
