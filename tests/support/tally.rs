//! [`Tally`]: counts what calls made at once came back with, so that a test
//! can act when enough of them have (release a lock, say) rather than after
//! a time that a slow machine may not keep.

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

/// How long a tally may take to reach its count before the test fails: far
/// beyond any wait the tests set up, so reaching it means a call that never
/// came back, not a slow machine.
const GIVE_UP: Duration = Duration::from_secs(60);

/// A count of outcomes, shared by calls in flight.
#[derive(Debug, Default)]
pub struct Tally(AtomicUsize);

impl Tally {
    /// Counts one more if `counts`.
    pub fn add_if(&self, counts: bool) {
        if counts {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Completes once the count is at least `count`; panics, saying `what`
    /// did not come back, after a minute.
    pub async fn reaches(&self, count: usize, what: &str) {
        let started = Instant::now();
        while self.0.load(Ordering::SeqCst) < count {
            assert!(
                started.elapsed() < GIVE_UP,
                "after {GIVE_UP:?}, {} of {count} {what} had come back",
                self.0.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
