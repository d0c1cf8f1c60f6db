//! Running a unit of work again when it lost to a concurrent one, with
//! backoff, within the caller's deadline.
//!
//! Databases that give transactions serializable isolation (PostgreSQL at
//! `--isolation serializable`, and Postgres-compatible distributed engines
//! such as CockroachDB and YugabyteDB at any level) resolve conflicts by
//! rolling one transaction back and expecting the client to run it again.
//! So every unit of work here is a closure that can run again from the
//! start, on a fresh transaction.

use std::{future::Future, time::Duration};

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder},
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use rand::Rng;
use tokio::time::Instant;

use super::DbError;

tokio::task_local! {
    /// When the caller of the RPC being served stops waiting.
    static DEADLINE: Instant;
}

/// Runs `call` knowing that its caller gives up at `deadline`: a retry
/// whose backoff would end past it is not attempted.
pub async fn with_deadline<F: Future>(deadline: Option<Instant>, call: F) -> F::Output {
    match deadline {
        Some(deadline) => DEADLINE.scope(deadline, call).await,
        None => call.await,
    }
}

/// The deadline of the call being served, if it has one.
fn deadline() -> Option<Instant> {
    DEADLINE.try_with(|deadline| *deadline).ok()
}

/// How late a sleep may wake: tokio's timers fire on millisecond ticks,
/// so a backoff that would end just before the deadline can end on it.
const TIMER_TICK: Duration = Duration::from_millis(1);

/// How often, and how patiently, a unit of work is run again.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Runs at most, the first included.
    pub attempts: u32,
    /// The backoff before the first retry, doubled before each next one...
    pub first_backoff: Duration,
    /// ...up to this.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// Ten runs, waiting up to 5, 10, 20, ... 640 ms (about 1.3 s in all at
    /// most) between them.
    fn default() -> Self {
        Self {
            attempts: 10,
            first_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(640),
        }
    }
}

/// Which failures a unit of work is run again after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Conflicts and a locked SQLite: nothing was applied.
    Conflicts,
    /// Those, and a connection lost in the middle: for units that only
    /// read, which may run twice.
    ConflictsAndLostConnections,
}

impl Retry {
    fn applies_to(self, error: &DbError) -> bool {
        error.is_conflict()
            || error.is_busy()
            || (self == Self::ConflictsAndLostConnections && error.is_connection_lost())
    }
}

/// `users_db_transaction_retries_total{reason}`: units of work run again,
/// by why. Cheap to clone: clones count together.
#[derive(Debug, Clone)]
pub struct RetryCounter(Family<ReasonLabel, Counter>);

impl Default for RetryCounter {
    /// Every reason's series, at 0: a series that appears only with the
    /// first retry would hide its rate's start from `rate()`, and from
    /// dashboards until then.
    fn default() -> Self {
        let family = Family::default();
        for reason in [Reason::Conflict, Reason::Busy, Reason::ConnectionLost] {
            drop(family.get_or_create(&ReasonLabel { reason }));
        }
        Self(family)
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: Reason,
}

/// Why a unit of work was run again.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
enum Reason {
    /// It lost a conflict with a concurrent transaction (40001, 40P01).
    Conflict,
    /// SQLite was locked by another writer.
    Busy,
    /// Its connection broke (units that only read).
    ConnectionLost,
}

impl RetryCounter {
    /// Adds the counters to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "users_db_transaction_retries",
            "Units of work run again after a conflict, a locked SQLite or a lost connection, by reason",
            self.0.clone(),
        );
    }

    fn count(&self, error: &DbError) {
        let reason = if error.is_conflict() {
            Reason::Conflict
        } else if error.is_busy() {
            Reason::Busy
        } else {
            Reason::ConnectionLost
        };
        self.0.get_or_create(&ReasonLabel { reason }).inc();
    }
}

impl EncodeLabelValue for Reason {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        let name = match self {
            Self::Conflict => "conflict",
            Self::Busy => "busy",
            Self::ConnectionLost => "connection_lost",
        };
        EncodeLabelValue::encode(&name, encoder)
    }
}

impl RetryPolicy {
    /// Runs `attempt` until it succeeds, fails with an error `retry` does
    /// not cover, runs out of attempts, or would have to wait past the
    /// caller's deadline; returns the last result. Each run again is
    /// counted in `retried`.
    ///
    /// Waits are "full jitter" (AWS Architecture Blog, "Exponential Backoff
    /// and Jitter"): a random time up to the exponential bound, so that the
    /// transactions that just collided do not collide again.
    pub async fn run<R, F, Fut>(
        &self,
        retry: Retry,
        retried: &RetryCounter,
        mut attempt: F,
    ) -> Result<R, DbError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<R, DbError>>,
    {
        let mut attempts = 1;
        loop {
            let error = match attempt().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            if !retry.applies_to(&error) || attempts >= self.attempts {
                return Err(error);
            }
            let backoff = self.backoff(attempts);
            let wakes = Instant::now() + backoff + TIMER_TICK;
            if deadline().is_some_and(|deadline| wakes >= deadline) {
                return Err(error);
            }
            tracing::info!(
                attempt = attempts,
                backoff_us = u64::try_from(backoff.as_micros()).unwrap_or(u64::MAX),
                %error,
                "transaction failed, running it again"
            );
            retried.count(&error);
            tokio::time::sleep(backoff).await;
            attempts += 1;
        }
    }

    /// A random wait before run `attempts + 1`.
    fn backoff(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(20);
        let bound = self
            .first_backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff);
        bound.mul_f64(rand::rng().random_range(0.0..=1.0))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use diesel::result::{DatabaseErrorKind, Error as QueryError};

    use super::*;

    fn conflict() -> DbError {
        DbError::Query(QueryError::DatabaseError(
            DatabaseErrorKind::SerializationFailure,
            Box::new("could not serialize access".to_owned()),
        ))
    }

    fn lost() -> DbError {
        DbError::Query(QueryError::DatabaseError(
            DatabaseErrorKind::UnableToSendCommand,
            Box::new("connection closed".to_owned()),
        ))
    }

    /// Runs `policy` over an attempt that fails with `errors` in turn, then
    /// succeeds; returns the result and how many runs it took.
    async fn run_failing(
        policy: RetryPolicy,
        retry: Retry,
        errors: Vec<fn() -> DbError>,
    ) -> (Result<(), DbError>, u32) {
        let runs = AtomicU32::new(0);
        let result = policy
            .run(retry, &RetryCounter::default(), || {
                let run = runs.fetch_add(1, Ordering::Relaxed) as usize;
                let outcome = errors.get(run).map_or(Ok(()), |error| Err(error()));
                std::future::ready(outcome)
            })
            .await;
        (result, runs.load(Ordering::Relaxed))
    }

    #[tokio::test(start_paused = true)]
    async fn a_conflict_is_run_again_until_it_succeeds() {
        let (result, runs) = run_failing(
            RetryPolicy::default(),
            Retry::Conflicts,
            vec![conflict, conflict, conflict],
        )
        .await;
        assert!(result.is_ok());
        assert_eq!(runs, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_after_the_last_attempt_with_the_last_error() {
        let policy = RetryPolicy {
            attempts: 3,
            ..RetryPolicy::default()
        };
        let (result, runs) = run_failing(policy, Retry::Conflicts, vec![conflict; 10]).await;
        assert!(result.unwrap_err().is_conflict());
        assert_eq!(runs, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_connection_is_retried_for_reads_only() {
        let policy = RetryPolicy::default();
        let (result, runs) = run_failing(policy, Retry::Conflicts, vec![lost]).await;
        assert!(result.unwrap_err().is_connection_lost());
        assert_eq!(runs, 1, "a write may have been applied: not run again");

        let (result, runs) =
            run_failing(policy, Retry::ConflictsAndLostConnections, vec![lost]).await;
        assert!(result.is_ok());
        assert_eq!(runs, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn no_retry_waits_past_the_callers_deadline() {
        let policy = RetryPolicy {
            attempts: 100,
            first_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(10),
        };
        let started = Instant::now();
        let deadline = started + Duration::from_millis(50);
        let (result, runs) = with_deadline(
            Some(deadline),
            run_failing(policy, Retry::Conflicts, vec![conflict; 100]),
        )
        .await;
        assert!(result.unwrap_err().is_conflict());
        assert!(Instant::now() < deadline, "gave up before the deadline");
        assert!(runs >= 5, "retried while there was time: {runs} runs");
    }

    #[tokio::test(start_paused = true)]
    async fn each_run_again_is_counted_by_its_reason() {
        let retried = RetryCounter::default();
        let mut registry = Registry::default();
        retried.register(&mut registry);
        let errors = [conflict, conflict, lost];
        let runs = AtomicU32::new(0);
        RetryPolicy::default()
            .run(Retry::ConflictsAndLostConnections, &retried, || {
                let run = runs.fetch_add(1, Ordering::Relaxed) as usize;
                std::future::ready(errors.get(run).map_or(Ok(()), |error| Err(error())))
            })
            .await
            .unwrap();

        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for expected in [
            r#"users_db_transaction_retries_total{reason="conflict"} 2"#,
            r#"users_db_transaction_retries_total{reason="connection_lost"} 1"#,
            r#"users_db_transaction_retries_total{reason="busy"} 0"#,
        ] {
            assert!(lines.contains(&expected), "{expected} not in\n{text}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_bound_with_jitter() {
        let policy = RetryPolicy::default();
        let mut most = Duration::ZERO;
        for attempts in 1..=12 {
            let bound = policy
                .first_backoff
                .saturating_mul(1 << (attempts - 1))
                .min(policy.max_backoff);
            for _ in 0..100 {
                let backoff = policy.backoff(attempts);
                assert!(backoff <= bound, "{backoff:?} > {bound:?}");
                most = most.max(backoff);
            }
        }
        assert!(most > policy.max_backoff / 2, "waits reach the bound");
    }
}
