//! [`RetryPolicy`]: when a failed call is sent again, and after how long.

use std::{error::Error, time::Duration};

use rand::Rng;
use tonic::{Code, Status};

/// How often, and how patiently, [`UsersClient`](crate::UsersClient) sends
/// again a call that failed for a reason that may pass.
///
/// A call is sent again when it never reached a server (the connection
/// could not be made), whatever the call; and, for calls that are safe to
/// repeat, when the server answered UNAVAILABLE or the connection broke
/// before the answer came. Safe to repeat are the reads, and the creates,
/// which carry request ids. Renames and deletes are not: the first one
/// may have been applied. Each new attempt goes to the server the
/// balancing picks then, so it fails over to another server when one is
/// away.
///
/// Between attempts the client waits a random time up to an exponential
/// bound (full jitter, so that clients that failed together do not come
/// back together): up to `initial_backoff`, then twice that, and so on up
/// to `max_backoff`. It never waits past the call's timeout.
///
/// ```
/// use std::time::Duration;
/// use users_client::RetryPolicy;
///
/// let patient = RetryPolicy::default()
///     .max_attempts(10)
///     .backoff(Duration::from_millis(100), Duration::from_secs(5));
/// let never = RetryPolicy::none();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// Up to 5 attempts, waiting up to 50 ms, 100 ms, 200 ms and 400 ms
    /// between them: long enough to fail over or to ride out a server's
    /// restart, short enough to give up within a second when nothing
    /// answers.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// Every call is sent once; each failure is returned as it came.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// At most `attempts` sends of one call, the first included (0 counts
    /// as 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Wait up to `initial` before the second attempt, doubling the bound
    /// for each attempt after, up to `max`.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Whether a call that failed on attempt `attempt` (1 for the first)
    /// may be sent again.
    pub(crate) fn allows_another_after(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }

    /// A random wait before attempt `attempt + 1`.
    pub(crate) fn backoff_after(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(20);
        let bound = self
            .initial_backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff);
        bound.mul_f64(rand::rng().random_range(0.0..=1.0))
    }
}

/// Whether the call can be repeated without effect beyond the first's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idempotence {
    /// Reads, and creates with request ids.
    Safe,
    /// Renames and deletes: a second one would not return what the first
    /// did (a new etag, NOT_FOUND).
    Unsafe,
}

/// How a call failed, as far as sending it again goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No connection could be made: the call never left the client.
    NotSent,
    /// The connection broke before the answer: the call may have run.
    ConnectionLost,
    /// The server answered UNAVAILABLE (its database is away, it is
    /// shutting down).
    Unavailable,
    /// An answer that sending again would not change.
    Final,
}

impl Failure {
    pub(crate) fn of(status: &Status) -> Self {
        if caused_by::<tonic::ConnectError>(status) {
            Self::NotSent
        } else if is_transport_failure(status) {
            Self::ConnectionLost
        } else if status.code() == Code::Unavailable {
            Self::Unavailable
        } else {
            Self::Final
        }
    }

    /// Whether a call of `idempotence` that failed so may be sent again.
    pub(crate) fn is_retryable(self, idempotence: Idempotence) -> bool {
        match self {
            Self::NotSent => true,
            Self::ConnectionLost | Self::Unavailable => idempotence == Idempotence::Safe,
            Self::Final => false,
        }
    }

    /// Whether the server itself should be left out for a while.
    pub(crate) fn is_connection_failure(self) -> bool {
        matches!(self, Self::NotSent | Self::ConnectionLost)
    }
}

/// Whether the status was made by the client's HTTP/2 stack because the
/// connection failed, rather than sent by a server.
pub(crate) fn is_transport_failure(status: &Status) -> bool {
    caused_by::<tonic::ConnectError>(status)
        || caused_by::<hyper::Error>(status)
        || caused_by::<h2::Error>(status)
        || caused_by::<std::io::Error>(status)
}

fn caused_by<E: Error + 'static>(status: &Status) -> bool {
    let mut source = status.source();
    while let Some(error) = source {
        if error.is::<E>() {
            return true;
        }
        source = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_bounds_double_up_to_the_maximum() {
        let policy =
            RetryPolicy::default().backoff(Duration::from_millis(10), Duration::from_millis(35));
        for _ in 0..200 {
            assert!(policy.backoff_after(1) <= Duration::from_millis(10));
            assert!(policy.backoff_after(2) <= Duration::from_millis(20));
            assert!(policy.backoff_after(3) <= Duration::from_millis(35));
            assert!(policy.backoff_after(40) <= Duration::from_millis(35));
        }
        let waits: Vec<_> = (0..200).map(|_| policy.backoff_after(3)).collect();
        assert!(
            waits.iter().any(|wait| *wait > Duration::from_millis(20)),
            "the jitter spans the whole bound"
        );
        assert!(waits.iter().any(|wait| *wait < Duration::from_millis(10)));
    }

    #[test]
    fn attempts_count_the_first() {
        let policy = RetryPolicy::default().max_attempts(3);
        assert!(policy.allows_another_after(2));
        assert!(!policy.allows_another_after(3));
        assert!(!RetryPolicy::none().allows_another_after(1));
        assert_eq!(RetryPolicy::default().max_attempts(0), RetryPolicy::none());
    }

    #[test]
    fn statuses_from_a_server_are_never_transport_failures() {
        let status = Status::unavailable("database unreachable");
        assert_eq!(Failure::of(&status), Failure::Unavailable);
        assert!(Failure::of(&status).is_retryable(Idempotence::Safe));
        assert!(!Failure::of(&status).is_retryable(Idempotence::Unsafe));
        assert!(!Failure::of(&status).is_connection_failure());
        for code in [
            Code::Aborted,
            Code::InvalidArgument,
            Code::DeadlineExceeded,
            Code::Internal,
        ] {
            assert_eq!(Failure::of(&Status::new(code, "no")), Failure::Final);
        }
    }

    #[test]
    fn a_refused_connection_is_not_sent_and_a_broken_one_is_lost() {
        let refused = Status::from_error(Box::new(tonic::ConnectError(Box::new(
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        ))));
        assert_eq!(refused.code(), Code::Unavailable);
        assert_eq!(Failure::of(&refused), Failure::NotSent);
        assert!(Failure::of(&refused).is_retryable(Idempotence::Unsafe));

        let broken = Status::from_error(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        assert_eq!(Failure::of(&broken), Failure::ConnectionLost);
        assert!(Failure::of(&broken).is_retryable(Idempotence::Safe));
        assert!(!Failure::of(&broken).is_retryable(Idempotence::Unsafe));
        assert!(Failure::of(&broken).is_connection_failure());
    }
}
