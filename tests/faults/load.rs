//! [`CreateLoad`]: workers that create users, each with a request id and a
//! name of its own, for as long as a fault test lasts, and record what
//! every call got back.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::task::JoinHandle;
use users_client::UsersClient;

/// A create that was sent: the name is unique to it, so that whether it
/// was stored, and how often, can be read back.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// `<label>-<worker>-<n>`.
    pub name: String,
    /// A fresh UUID.
    pub request_id: String,
}

/// What one call got back.
#[derive(Debug, Clone)]
pub struct Call {
    /// The create.
    pub attempt: Attempt,
    /// When it was sent.
    pub sent: Instant,
    /// How long it took to answer.
    pub latency: Duration,
    /// The user's id, or the status code (`"Unavailable"`, ...) or
    /// `"no answer"` (none within 10 s).
    pub outcome: Result<i64, String>,
}

/// Every call of a load, in the order each worker sent them.
#[derive(Debug, Default)]
pub struct Outcomes {
    /// All calls.
    pub calls: Vec<Call>,
}

impl Outcomes {
    /// The calls answered OK: the creates that must be stored.
    pub fn acknowledged(&self) -> impl Iterator<Item = (&Attempt, i64)> {
        self.calls
            .iter()
            .filter_map(|call| Some((&call.attempt, *call.outcome.as_ref().ok()?)))
    }

    /// The calls that failed: their creates may or may not be stored.
    pub fn unacknowledged(&self) -> impl Iterator<Item = &Call> {
        self.calls.iter().filter(|call| call.outcome.is_err())
    }

    /// Failures by what they got back.
    pub fn failures_by_code(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for call in self.unacknowledged() {
            if let Err(code) = &call.outcome {
                *counts.entry(code.clone()).or_default() += 1;
            }
        }
        counts
    }

    /// The longest a failed call took to fail.
    pub fn slowest_failure(&self) -> Duration {
        self.unacknowledged()
            .map(|call| call.latency)
            .max()
            .unwrap_or_default()
    }

    /// The first call sent at or after `since` that succeeded, and when it
    /// was answered.
    pub fn first_success_since(&self, since: Instant) -> Option<Instant> {
        self.calls
            .iter()
            .filter(|call| call.sent >= since && call.outcome.is_ok())
            .map(|call| call.sent + call.latency)
            .min()
    }
}

/// Workers creating users until [`stop`](Self::stop).
#[derive(Debug)]
pub struct CreateLoad {
    stopping: Arc<AtomicBool>,
    acknowledged: Arc<AtomicUsize>,
    workers: Vec<JoinHandle<Vec<Call>>>,
}

impl CreateLoad {
    /// Starts `workers` workers, each calling through `client` one create
    /// after another, names starting with `label`.
    pub fn start(client: &UsersClient, workers: usize, label: &str) -> Self {
        let stopping = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(AtomicUsize::new(0));
        let workers = (0..workers)
            .map(|worker| {
                let client = client.clone();
                let stopping = Arc::clone(&stopping);
                let acknowledged = Arc::clone(&acknowledged);
                let label = format!("{label}-{worker}");
                tokio::spawn(async move {
                    let mut calls = Vec::new();
                    while !stopping.load(Ordering::Relaxed) {
                        let attempt = Attempt {
                            name: format!("{label}-{}", calls.len()),
                            request_id: uuid::Uuid::new_v4().to_string(),
                        };
                        let call = create(&client, attempt).await;
                        if call.outcome.is_ok() {
                            acknowledged.fetch_add(1, Ordering::Relaxed);
                        } else {
                            // A failing server fails fast; do not spin.
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        calls.push(call);
                    }
                    calls
                })
            })
            .collect();
        Self {
            stopping,
            acknowledged,
            workers,
        }
    }

    /// How many creates have been acknowledged so far.
    pub fn acknowledged(&self) -> usize {
        self.acknowledged.load(Ordering::Relaxed)
    }

    /// Waits until `count` more creates have been acknowledged.
    pub async fn wait_for_acknowledged(&self, count: usize) {
        let target = self.acknowledged() + count;
        let started = Instant::now();
        while self.acknowledged() < target {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the load made no progress: {} of {target} creates acknowledged",
                self.acknowledged()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the workers after their current call; returns every call.
    pub async fn stop(self) -> Outcomes {
        self.stopping.store(true, Ordering::Relaxed);
        let mut outcomes = Outcomes::default();
        for worker in self.workers {
            outcomes
                .calls
                .extend(worker.await.expect("a load worker panicked"));
        }
        outcomes
    }
}

/// Sends one create and records what came back.
pub async fn create(client: &UsersClient, attempt: Attempt) -> Call {
    let sent = Instant::now();
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        client.create_user_with_request_id(&attempt.name, &attempt.request_id),
    )
    .await;
    let outcome = match answer {
        Ok(Ok(user)) => Ok(user.id),
        Ok(Err(error)) => Err(error
            .code()
            .map_or_else(|| "no connection".to_owned(), |code| format!("{code:?}"))),
        Err(_) => Err("no answer".to_owned()),
    };
    Call {
        attempt,
        sent,
        latency: sent.elapsed(),
        outcome,
    }
}
