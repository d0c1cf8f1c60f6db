//! `users-bench load`: drives one RPC against a running server and measures
//! throughput and latency.
//!
//! M workers share N HTTP/2 connections (worker i uses connection i % N).
//! In a closed loop each worker issues its next call when the previous one
//! returns, so the offered load adapts to the server. With `--rate` the
//! calls follow a fixed schedule instead (open loop) and each latency is
//! measured from the call's *intended* start: when the server stalls, the
//! calls that should have gone out meanwhile count the stall too, instead of
//! silently not being made (coordinated omission). Either way at most M calls
//! are in flight.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clap::Args;
use tokio::task::JoinSet;
use users_client::{ClientError, FindUsers, UsersClient, pb};

use crate::connect::{connect_all, failure_reason};
use crate::cpu::CpuProbe;
use crate::error::BenchError;
use crate::progress::{self, Phases, Progress};
use crate::report::{Recorder, Report, Setup};
use crate::rss::PeakRssProbe;
use crate::workload::{self, Keys, PAGE_SIZE, Rpc, check};

/// `users-bench load`.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Server URL, e.g. http://127.0.0.1:50061.
    #[arg(long)]
    endpoint: String,
    /// The call to measure.
    #[arg(long, value_enum)]
    rpc: Rpc,
    /// Separate HTTP/2 connections to spread the calls over.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    connections: u32,
    /// Calls in flight at most, across all connections.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    concurrency: u32,
    /// Length of the measured phase, e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = parse_positive_duration)]
    duration: Duration,
    /// Unrecorded calls before the measured phase, to warm caches and pools.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Open loop: this many calls per second in total, on a fixed schedule.
    #[arg(long, value_parser = parse_rate)]
    rate: Option<f64>,
    /// Distinct names the database was seeded with.
    #[arg(long, default_value_t = 10_000)]
    names: u32,
    /// Users the database was seeded with (`get` asks for ids 1 to this).
    #[arg(long, default_value_t = 100_000)]
    users: u32,
    /// The server's process id, to report its peak RSS and its CPU time
    /// per call over the measured phase.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Also report the CPU time per call of every process with this
    /// command name (`postgres`: the database's backends).
    #[arg(long, value_name = "NAME")]
    cpu_of: Option<String>,
    /// Deadline of each call; a call past it counts as DEADLINE_EXCEEDED.
    #[arg(long, default_value = "30s", value_parser = parse_positive_duration)]
    timeout: Duration,
    /// Also print the results as one JSON line.
    #[arg(long)]
    pub json: bool,
}

/// When each call starts.
#[derive(Debug)]
enum Schedule {
    /// As soon as the worker's previous call returns.
    Closed,
    /// Call n at `start + n / rate`, by whichever worker is free then.
    Open { rate: f64, next: AtomicU64 },
}

/// What every worker shares.
#[derive(Debug)]
struct Run {
    rpc: Rpc,
    keys: Keys,
    schedule: Schedule,
    phases: Phases,
    progress: Progress,
    /// Numbers the `create` calls' names.
    created: AtomicU64,
    /// One histogram for all workers: a lock per call costs far less than
    /// the call, and M per-worker histograms would cost M times the memory.
    recorder: Mutex<Recorder>,
}

impl Run {
    /// The intended start of this worker's next call, or `None` once the
    /// measured phase is over. Waits for it in an open loop.
    async fn next_start(&self) -> Option<Instant> {
        let intended = match &self.schedule {
            Schedule::Closed => Instant::now(),
            Schedule::Open { rate, next } => {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let offset = Duration::try_from_secs_f64(n as f64 / rate).ok()?;
                self.phases.start.checked_add(offset)?
            }
        };
        // Also stop on the clock: an overloaded open loop would otherwise
        // run on past the end, working off its backlog of scheduled calls.
        if intended >= self.phases.end || Instant::now() >= self.phases.end {
            return None;
        }
        // Only an open loop waits; a closed loop's start is now, and even an
        // elapsed timer would cost a trip through tokio's timer wheel.
        if intended > Instant::now() {
            tokio::time::sleep_until(intended.into()).await;
            // Ahead of schedule, the call starts when our own timer fires:
            // tokio's timers have millisecond resolution, and that lateness
            // is the load generator's, not the server's. Behind schedule
            // (no wait), the latency counts from the intended start, so a
            // server stall still shows in full.
            return Some(Instant::now());
        }
        Some(intended)
    }

    /// Makes one call; `Err` holds the reason it counts as failed.
    async fn call(&self, client: &UsersClient) -> Result<(), &'static str> {
        let page_size = usize::try_from(PAGE_SIZE).unwrap_or(usize::MAX);
        match self.rpc {
            Rpc::Create => {
                let n = self.created.fetch_add(1, Ordering::Relaxed);
                let request = pb::CreateUserRequest {
                    name: workload::bench_name(n),
                    request_id: String::new(),
                };
                client
                    .raw()
                    .create_user(request)
                    .await
                    .map(drop)
                    .map_err(|status| failure_reason(&ClientError::from(status)))
            }
            Rpc::CreateWithRequestId => {
                let n = self.created.fetch_add(1, Ordering::Relaxed);
                client
                    .create_user(workload::bench_name(n))
                    .await
                    .map(drop)
                    .map_err(|error| failure_reason(&error))
            }
            Rpc::Get => {
                let id = i64::from(self.keys.pick()) + 1;
                let user = client
                    .get_user(id)
                    .await
                    .map_err(|error| failure_reason(&error))?;
                check(user.id == id)
            }
            Rpc::FindName => {
                let query = FindUsers::new()
                    .name(workload::name(self.keys.pick()))
                    .page_size(PAGE_SIZE);
                let page = client
                    .find_users(&query)
                    .await
                    .map_err(|error| failure_reason(&error))?;
                check(page.users.len() == page_size)
            }
            Rpc::FindPrefix => {
                let query = FindUsers::new()
                    .name_prefix(workload::prefix(self.keys.pick()))
                    .page_size(PAGE_SIZE);
                let page = client
                    .find_users(&query)
                    .await
                    .map_err(|error| failure_reason(&error))?;
                check(page.users.len() == page_size && page.next_page_token.is_some())
            }
        }
    }

    fn record(&self, outcome: Result<(), &'static str>, latency: Duration) {
        self.progress.count(outcome.is_ok());
        let mut recorder = self.recorder.lock().unwrap_or_else(PoisonError::into_inner);
        match outcome {
            Ok(()) => recorder.success(latency),
            Err(reason) => recorder.failure(reason),
        }
    }
}

async fn worker(run: Arc<Run>, client: UsersClient) {
    while let Some(intended) = run.next_start().await {
        // A call belongs to the measured phase if it goes out in it. (Not
        // if it was *scheduled* in it: an overloaded open loop falls ever
        // further behind its schedule and would never get there.)
        let measured = Instant::now() >= run.phases.measure_start;
        let outcome = run.call(&client).await;
        if measured {
            run.record(outcome, intended.elapsed());
        }
    }
}

/// Runs the load described by `args` and reports on the measured phase.
pub async fn run(args: &LoadArgs) -> Result<Report, BenchError> {
    let keys = match args.rpc {
        Rpc::Get => Keys::ids(args.users)?,
        rpc => Keys::new(rpc, args.names)?,
    };
    // More connections than calls in flight would sit idle.
    let connections = args.connections.min(args.concurrency);
    let clients = connect_all(&args.endpoint, connections, args.timeout).await?;

    let phases = Phases::starting_now(args.warmup, args.duration)?;
    let run = Arc::new(Run {
        rpc: args.rpc,
        keys,
        schedule: match args.rate {
            Some(rate) => Schedule::Open {
                rate,
                next: AtomicU64::new(0),
            },
            None => Schedule::Closed,
        },
        phases,
        progress: Progress::default(),
        created: AtomicU64::new(0),
        recorder: Mutex::new(Recorder::new()),
    });

    let mut workers = JoinSet::new();
    for (_, client) in (0..args.concurrency).zip(clients.iter().cycle()) {
        workers.spawn(worker(Arc::clone(&run), client.clone()));
    }

    let mut ticks = tokio::time::interval_at(
        (phases.start + progress::INTERVAL).into(),
        progress::INTERVAL,
    );
    let measuring = tokio::time::sleep_until(phases.measure_start.into());
    tokio::pin!(measuring);
    let mut pid = args.server_pid;
    let mut probe = None;
    let mut cpu = None;
    loop {
        tokio::select! {
            joined = workers.join_next() => match joined {
                Some(result) => result.map_err(|_| BenchError::WorkerPanicked)?,
                None => break,
            },
            // The peak RSS is reset as the measured phase starts, so that
            // the warmup's peak does not count.
            () = &mut measuring, if cpu.is_none() => {
                cpu = Some(CpuProbe::start(pid, args.cpu_of.as_deref()));
                probe = pid.take().map(PeakRssProbe::start);
            }
            now = ticks.tick() => {
                progress::show(&run.progress.line(now.into(), &phases));
            }
        }
    }
    // Until the last measured call returned: a fair denominator for the calls
    // that started before the end.
    let elapsed = phases.measure_start.elapsed();
    progress::finish();
    let peak_rss = probe.and_then(PeakRssProbe::read);
    let cpu_used = cpu.map(|cpu| cpu.read());

    let recorder = run.recorder.lock().unwrap_or_else(PoisonError::into_inner);
    let setup = Setup {
        tool: "load",
        rpc: args.rpc,
        connections,
        concurrency: args.concurrency,
        rate: args.rate,
    };
    let mut report = Report::new(setup, &recorder, elapsed, peak_rss);
    report.add_cpu(cpu_used, args.cpu_of.as_deref());
    if let Some(rate) = args.rate {
        let attempted = report.calls + report.errors.values().sum::<u64>();
        let achieved = attempted as f64 / elapsed.as_secs_f64();
        if achieved < 0.95 * rate {
            report.notes.push(format!(
                "the server kept up with {:.0}% of the target rate; \
                 latencies include the wait behind the schedule",
                100.0 * achieved / rate
            ));
        }
    }
    Ok(report)
}

/// A humantime duration above zero (a zero-length phase has no rate).
pub fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|error| error.to_string())?;
    if duration.is_zero() {
        return Err("must be longer than zero".to_owned());
    }
    Ok(duration)
}

fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text.parse().map_err(|_| format!("not a number: {text}"))?;
    if !(0.001..=1e7).contains(&rate) {
        return Err("must be between 0.001 and 10000000 calls/s".to_owned());
    }
    Ok(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_rates_are_checked() {
        assert_eq!(parse_positive_duration("3s"), Ok(Duration::from_secs(3)));
        assert!(parse_positive_duration("0s").is_err());
        assert!(parse_positive_duration("soon").is_err());
        assert_eq!(parse_rate("1500"), Ok(1500.0));
        for bad in ["0", "-5", "NaN", "inf", "fast"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}
