//! Recording calls and printing what they add up to, the same way for the
//! gRPC load and for the SQLite ceiling so their numbers line up.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::cpu::CpuUsed;
use crate::error::BenchError;
use crate::workload::Rpc;

/// Slowest latency the histogram tells apart (one hour); slower calls are
/// recorded as this, which no sane run reaches.
const MAX_TRACKED_MICROS: u64 = 3_600_000_000;

/// Latencies of successful calls and counts of failed ones.
#[derive(Debug, Clone)]
pub struct Recorder {
    /// Microseconds, three significant digits.
    latencies: Histogram<u64>,
    /// By gRPC status name, `wrong_result`, or a database error kind.
    errors: BTreeMap<String, u64>,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        let latencies = Histogram::new_with_bounds(1, MAX_TRACKED_MICROS, 3)
            .expect("constant histogram bounds are valid");
        Self {
            latencies,
            errors: BTreeMap::new(),
        }
    }

    /// A call that returned the expected result after `latency`.
    pub fn success(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        // Under 1 µs rounds up: the histogram's lowest value is 1.
        self.latencies.saturating_record(micros.max(1));
    }

    /// A call that failed, or returned the wrong result, for `reason`.
    pub fn failure(&mut self, reason: &str) {
        *self.errors.entry(reason.to_owned()).or_default() += 1;
    }

    /// Adds everything `other` recorded.
    pub fn merge(&mut self, other: &Self) {
        // Same bounds on both sides; saturating keeps this infallible anyway.
        self.latencies.add(&other.latencies).ok();
        for (reason, count) in &other.errors {
            *self.errors.entry(reason.clone()).or_default() += count;
        }
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

/// How the run was set up: what [`Report`] repeats next to the numbers.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// `load` or `sqlite-ceiling`.
    pub tool: &'static str,
    /// The call measured.
    pub rpc: Rpc,
    /// HTTP/2 connections (load) or SQLite connections, one per thread.
    pub connections: u32,
    /// Calls in flight at most.
    pub concurrency: u32,
    /// Open-loop target rate in calls/s; `None` for a closed loop.
    pub rate: Option<f64>,
}

/// The server's peak resident memory over the measured phase.
#[derive(Debug, Clone, Serialize)]
pub struct PeakRss {
    /// VmHWM in MiB.
    pub mib: f64,
    /// Whether the peak was reset before the measured phase; if not, this is
    /// the peak over the server's whole life.
    pub reset: bool,
    /// Why it could not be reset.
    pub note: Option<String>,
}

/// The results of one run, printed for humans and, as one JSON line, for
/// scripts. The JSON keys are stable; `bench/run` reads them.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `load` or `sqlite-ceiling`.
    pub tool: &'static str,
    /// The call measured.
    pub rpc: Rpc,
    /// Connections used.
    pub connections: u32,
    /// Calls in flight at most.
    pub concurrency: u32,
    /// Measured phase, from its start until its last call returned.
    pub duration_s: f64,
    /// Successful calls (the right result) that started in the measured
    /// phase; failures are counted apart in `errors`.
    pub calls: u64,
    /// `calls / duration_s`.
    pub calls_per_sec: f64,
    /// Latency percentiles of successful calls; `null` without any.
    pub p50_ms: Option<f64>,
    /// 90th percentile.
    pub p90_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// 99.9th percentile.
    pub p999_ms: Option<f64>,
    /// Slowest call.
    pub max_ms: Option<f64>,
    /// Failed calls by reason.
    pub errors: BTreeMap<String, u64>,
    /// Server peak RSS, when `--server-pid` was given and readable.
    pub peak_rss_mib: Option<f64>,
    /// Whether `peak_rss_mib` covers only the measured phase.
    pub peak_rss_reset: Option<bool>,
    /// The server's CPU time per successful call (µs), when
    /// `--server-pid` was given.
    pub server_cpu_us_per_call: Option<f64>,
    /// Which processes `cpu_of_us_per_call` counts (`--cpu-of`).
    pub cpu_of: Option<String>,
    /// Their CPU time per successful call (µs), together.
    pub cpu_of_us_per_call: Option<f64>,
    /// Open-loop target rate; `null` for a closed loop.
    pub rate: Option<f64>,
    /// Anything the reader should know about these numbers.
    pub notes: Vec<String>,
}

impl Report {
    /// Adds the CPU time per call the measured phase used, of the server
    /// and of the processes named `cpu_of`.
    pub fn add_cpu(&mut self, used: Option<CpuUsed>, cpu_of: Option<&str>) {
        let Some(used) = used else { return };
        let per_call =
            |seconds: f64| (self.calls > 0).then(|| round3(seconds * 1e6 / self.calls as f64));
        self.server_cpu_us_per_call = used.server_s.and_then(per_call);
        self.cpu_of = cpu_of.map(str::to_owned);
        self.cpu_of_us_per_call = used.named_s.and_then(per_call);
    }

    /// Sums up `recorder` over a measured phase of `elapsed`.
    pub fn new(
        setup: Setup,
        recorder: &Recorder,
        elapsed: Duration,
        peak_rss: Option<PeakRss>,
    ) -> Self {
        let hist = &recorder.latencies;
        let calls = hist.len();
        let duration_s = elapsed.as_secs_f64();
        let quantile = |q: f64| (calls > 0).then(|| micros_to_ms(hist.value_at_quantile(q)));
        let mut notes = Vec::new();
        if let Some(PeakRss {
            note: Some(note), ..
        }) = &peak_rss
        {
            notes.push(note.clone());
        }
        Self {
            tool: setup.tool,
            rpc: setup.rpc,
            connections: setup.connections,
            concurrency: setup.concurrency,
            duration_s: round3(duration_s),
            calls,
            calls_per_sec: if duration_s > 0.0 {
                round3(calls as f64 / duration_s)
            } else {
                0.0
            },
            p50_ms: quantile(0.5),
            p90_ms: quantile(0.9),
            p99_ms: quantile(0.99),
            p999_ms: quantile(0.999),
            max_ms: (calls > 0).then(|| micros_to_ms(hist.max())),
            errors: recorder.errors.clone(),
            peak_rss_mib: peak_rss.as_ref().map(|rss| round3(rss.mib)),
            peak_rss_reset: peak_rss.as_ref().map(|rss| rss.reset),
            server_cpu_us_per_call: None,
            cpu_of: None,
            cpu_of_us_per_call: None,
            rate: setup.rate,
            notes,
        }
    }

    /// Prints the report on stdout, plus one JSON line if `json`.
    pub fn print(&self, json: bool) -> Result<(), BenchError> {
        println!("{self}");
        if json {
            println!("{}", serde_json::to_string(self)?);
        }
        Ok(())
    }

    /// Fails when any call failed ([`BenchError::CallsFailed`]), and all
    /// the more when none succeeded ([`BenchError::NothingSucceeded`]: then
    /// the numbers describe nothing).
    pub fn ensure_no_failures(&self) -> Result<(), BenchError> {
        let failed: u64 = self.errors.values().sum();
        if self.calls == 0 {
            return Err(BenchError::NothingSucceeded {
                errors: errors_text(&self.errors),
            });
        }
        if failed > 0 {
            return Err(BenchError::CallsFailed {
                failed,
                attempted: failed + self.calls,
                errors: errors_text(&self.errors),
            });
        }
        Ok(())
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"));
        let mode = match self.rate {
            Some(rate) => format!("open loop at {rate} calls/s"),
            None => "closed loop".to_owned(),
        };
        writeln!(f, "tool         {}", self.tool)?;
        writeln!(f, "rpc          {} ({mode})", self.rpc)?;
        writeln!(f, "connections  {}", self.connections)?;
        writeln!(f, "concurrency  {}", self.concurrency)?;
        writeln!(f, "duration     {:.3} s", self.duration_s)?;
        writeln!(f, "calls        {}", self.calls)?;
        writeln!(f, "calls/s      {:.1}", self.calls_per_sec)?;
        writeln!(
            f,
            "latency ms   p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            ms(self.p50_ms),
            ms(self.p90_ms),
            ms(self.p99_ms),
            ms(self.p999_ms),
            ms(self.max_ms)
        )?;
        write!(f, "errors       {}", errors_text(&self.errors))?;
        if let Some(mib) = self.peak_rss_mib {
            let scope = if self.peak_rss_reset == Some(true) {
                "measured phase"
            } else {
                "server lifetime"
            };
            write!(f, "\npeak RSS     {mib:.1} MiB ({scope})")?;
        }
        if let Some(us) = self.server_cpu_us_per_call {
            write!(f, "\nserver CPU   {us:.1} µs/call")?;
        }
        if let (Some(name), Some(us)) = (&self.cpu_of, self.cpu_of_us_per_call) {
            write!(f, "\n{name} CPU {us:.1} µs/call")?;
        }
        for note in &self.notes {
            write!(f, "\nnote         {note}")?;
        }
        Ok(())
    }
}

/// `none`, or `UNAVAILABLE 3, wrong_result 1`.
fn errors_text(errors: &BTreeMap<String, u64>) -> String {
    if errors.is_empty() {
        return "none".to_owned();
    }
    errors
        .iter()
        .map(|(reason, count)| format!("{reason} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn micros_to_ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// Three decimals are all the precision the numbers have (µs, ms).
fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> Setup {
        Setup {
            tool: "load",
            rpc: Rpc::FindName,
            connections: 8,
            concurrency: 64,
            rate: None,
        }
    }

    #[test]
    fn percentiles_and_rate_come_from_the_recorded_calls() {
        let mut recorder = Recorder::new();
        for micros in 1..=1000 {
            recorder.success(Duration::from_micros(micros));
        }
        let mut other = Recorder::new();
        other.failure("UNAVAILABLE");
        other.failure("wrong_result");
        other.failure("UNAVAILABLE");
        recorder.merge(&other);

        let report = Report::new(setup(), &recorder, Duration::from_secs(2), None);
        assert_eq!(report.calls, 1000);
        assert_eq!(report.calls_per_sec, 500.0);
        assert_eq!(report.p50_ms, Some(0.5));
        assert_eq!(report.max_ms, Some(1.0));
        assert_eq!(report.errors["UNAVAILABLE"], 2);
        assert_eq!(report.errors["wrong_result"], 1);
        let failed = report.ensure_no_failures().unwrap_err();
        assert_eq!(failed.exit_code(), 3);
        assert_eq!(
            failed.to_string(),
            "3 of 1003 measured calls failed (UNAVAILABLE 2, wrong_result 1)"
        );
        assert!(report.to_string().contains("UNAVAILABLE 2, wrong_result 1"));
    }

    #[test]
    fn json_has_the_stable_keys_and_nulls_when_nothing_succeeded() {
        let mut recorder = Recorder::new();
        recorder.failure("UNAVAILABLE");
        let report = Report::new(setup(), &recorder, Duration::from_secs(1), None);
        let json: serde_json::Value = serde_json::to_value(&report).unwrap();
        for key in [
            "rpc",
            "connections",
            "concurrency",
            "duration_s",
            "calls",
            "calls_per_sec",
            "p50_ms",
            "p90_ms",
            "p99_ms",
            "p999_ms",
            "max_ms",
            "errors",
            "peak_rss_mib",
            "rate",
        ] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
        assert_eq!(json["rpc"], "find-name");
        assert!(json["p50_ms"].is_null());
        assert!(json["peak_rss_mib"].is_null());
        assert_eq!(json["errors"]["UNAVAILABLE"], 1);
        let nothing = report.ensure_no_failures().unwrap_err();
        assert!(matches!(nothing, BenchError::NothingSucceeded { .. }));
        assert_eq!(nothing.exit_code(), 1);
        let clean = Report::new(setup(), &Recorder::new(), Duration::from_secs(1), None);
        assert!(clean.ensure_no_failures().is_err());
        let mut one = Recorder::new();
        one.success(Duration::from_millis(1));
        let clean = Report::new(setup(), &one, Duration::from_secs(1), None);
        assert!(clean.ensure_no_failures().is_ok());
    }
}
