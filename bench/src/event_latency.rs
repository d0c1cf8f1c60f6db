//! `users-bench event-latency`: how long a committed write takes to reach
//! a WatchUsers watcher, and, with `--nats-url`, a NATS subscriber of the
//! JetStream subjects the server publishes to.
//!
//! Creates users at a fixed rate (open loop, so the writes do not slow down
//! when delivery does) while one watcher follows WatchUsers from now and
//! one NATS subscription follows `<prefix>.>`. Each event is matched to its
//! create by the user's name; its latency runs from the create's reply
//! (the moment the caller knows the write is committed) to the event's
//! arrival. An event that arrives before the reply counts as 0.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use clap::Args;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde::Serialize;
use users_client::{UserEvent, UsersClient, WatchUsers};

use crate::connect::connect_all;
use crate::error::BenchError;

/// `users-bench event-latency`.
#[derive(Debug, Clone, Args)]
pub struct EventLatencyArgs {
    /// Server URL, e.g. http://127.0.0.1:50061.
    #[arg(long)]
    endpoint: String,
    /// Creates per second.
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// How long to create users, e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// The NATS server the users server publishes to (its
    /// `--events-nats-url`); without it, only the watcher is measured.
    #[arg(long)]
    nats_url: Option<String>,
    /// The server's `--events-nats-subject-prefix`.
    #[arg(long, default_value = "users.v1.events")]
    nats_subject_prefix: String,
    /// Also print the results as one JSON line.
    #[arg(long)]
    pub json: bool,
}

/// Arrival times of events, by user name.
type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

/// One receiver's latencies.
#[derive(Debug, Serialize)]
pub struct Latencies {
    /// Events matched to a create.
    pub events: u64,
    /// Creates whose event never arrived (within 30 s of the last create).
    pub missing: u64,
    /// Microseconds from the create's reply to the event's arrival.
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// The results.
#[derive(Debug, Serialize)]
pub struct EventLatencyReport {
    pub creates: u64,
    pub create_p50_us: u64,
    pub create_p99_us: u64,
    pub watcher: Latencies,
    pub nats: Option<Latencies>,
}

impl EventLatencyReport {
    /// Prints a table, and the JSON line if asked.
    pub fn print(&self, json: bool) -> Result<(), BenchError> {
        println!(
            "{} creates at a fixed rate: the create itself p50 {} us, p99 {} us",
            self.creates, self.create_p50_us, self.create_p99_us
        );
        println!("from the create's reply to the event's arrival:");
        println!("  receiver    events  missing     p50 us     p90 us     p99 us     max us");
        let row = |name: &str, latencies: &Latencies| {
            println!(
                "  {name:<10} {:>7} {:>8} {:>10} {:>10} {:>10} {:>10}",
                latencies.events,
                latencies.missing,
                latencies.p50_us,
                latencies.p90_us,
                latencies.p99_us,
                latencies.max_us
            );
        };
        row("WatchUsers", &self.watcher);
        if let Some(nats) = &self.nats {
            row("JetStream", nats);
        }
        if json {
            let line = serde_json::to_string(self)
                .map_err(|error| BenchError::InvalidInput(error.to_string()))?;
            println!("{line}");
        }
        Ok(())
    }
}

/// Runs the measurement.
pub async fn run(args: &EventLatencyArgs) -> Result<EventLatencyReport, BenchError> {
    if !(args.rate > 0.0 && args.rate.is_finite()) {
        return Err(BenchError::InvalidInput(format!(
            "--rate must be a positive number (got {})",
            args.rate
        )));
    }
    let clients = connect_all(&args.endpoint, 4, Duration::from_secs(30)).await?;
    let label = uuid::Uuid::new_v4().simple().to_string();

    let watched: Arrivals = Arc::default();
    let watcher = {
        let watched = Arc::clone(&watched);
        let mut events = Box::pin(clients[0].watch_users(WatchUsers::new().name_prefix(&label)));
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                if let Ok(event) = event {
                    arrived(&watched, &event);
                }
            }
        })
    };
    let published: Arrivals = Arc::default();
    let subscriber = match &args.nats_url {
        None => None,
        Some(url) => {
            let client =
                async_nats::connect(url.as_str())
                    .await
                    .map_err(|error| BenchError::Connect {
                        endpoint: url.clone(),
                        detail: error.to_string(),
                    })?;
            let mut messages = client
                .subscribe(format!("{}.>", args.nats_subject_prefix))
                .await
                .map_err(|error| BenchError::Connect {
                    endpoint: url.clone(),
                    detail: error.to_string(),
                })?;
            client.flush().await.map_err(|error| BenchError::Connect {
                endpoint: url.clone(),
                detail: error.to_string(),
            })?;
            let published = Arc::clone(&published);
            Some(tokio::spawn(async move {
                let _client = client;
                while let Some(message) = messages.next().await {
                    if let Ok(event) = UserEvent::decode(&message.payload) {
                        arrived(&published, &event);
                    }
                }
            }))
        }
    };
    // Let the watch reach the server before the first write.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let replies: Arc<Mutex<HashMap<String, (Instant, Duration)>>> = Arc::default();
    let total = (args.rate * args.duration.as_secs_f64()).ceil() as u64;
    let started = Instant::now();
    let mut calls = tokio::task::JoinSet::new();
    for n in 0..total {
        let due = started + Duration::from_secs_f64(n as f64 / args.rate);
        tokio::time::sleep_until(due.into()).await;
        let client: UsersClient = clients[(n as usize) % clients.len()].clone();
        let name = format!("{label}-{n}");
        let replies = Arc::clone(&replies);
        calls.spawn(async move {
            let sent = Instant::now();
            if client.create_user(name.as_str()).await.is_ok() {
                let replied = Instant::now();
                replies
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(name, (replied, replied - sent));
            }
        });
    }
    while calls.join_next().await.is_some() {}
    let replies = std::mem::take(&mut *replies.lock().unwrap_or_else(PoisonError::into_inner));

    // Wait for every event, or 30 s.
    let wait_until = Instant::now() + Duration::from_secs(30);
    let all_in = |arrivals: &Arrivals| {
        let arrivals = arrivals.lock().unwrap_or_else(PoisonError::into_inner);
        replies.keys().all(|name| arrivals.contains_key(name))
    };
    while Instant::now() < wait_until
        && !(all_in(&watched) && (subscriber.is_none() || all_in(&published)))
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    watcher.abort();
    if let Some(subscriber) = &subscriber {
        subscriber.abort();
    }

    let mut creates = histogram();
    for (_, took) in replies.values() {
        let _ = creates.record(micros(*took));
    }
    Ok(EventLatencyReport {
        creates: replies.len() as u64,
        create_p50_us: creates.value_at_quantile(0.5),
        create_p99_us: creates.value_at_quantile(0.99),
        watcher: latencies(&replies, &watched),
        nats: subscriber.map(|_| latencies(&replies, &published)),
    })
}

fn arrived(arrivals: &Arrivals, event: &UserEvent) {
    let now = Instant::now();
    arrivals
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(event.user.name.clone())
        .or_insert(now);
}

fn latencies(replies: &HashMap<String, (Instant, Duration)>, arrivals: &Arrivals) -> Latencies {
    let arrivals = arrivals.lock().unwrap_or_else(PoisonError::into_inner);
    let mut histogram = histogram();
    let mut missing = 0;
    for (name, (replied, _)) in replies {
        match arrivals.get(name) {
            Some(arrived) => {
                let _ = histogram.record(micros(arrived.saturating_duration_since(*replied)));
            }
            None => missing += 1,
        }
    }
    Latencies {
        events: histogram.len(),
        missing,
        p50_us: histogram.value_at_quantile(0.5),
        p90_us: histogram.value_at_quantile(0.9),
        p99_us: histogram.value_at_quantile(0.99),
        max_us: histogram.max(),
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, 60_000_000)
}
