//! What each benchmarked call asks for. The gRPC load generator and the
//! SQLite ceiling both draw their arguments from here, so that they do the
//! same work against the same seeded data.
//!
//! The seed stores `users` users named `user-NNNNN`, NNNNN = i % `names`
//! zero-padded to five digits, so every name has `users / names` users and
//! every four-digit prefix `user-NNNN` covers ten names.

use std::fmt;

use clap::ValueEnum;
use serde::Serialize;

use crate::error::BenchError;

/// Users asked for per FindUsers call.
pub const PAGE_SIZE: u32 = 10;

/// Most distinct names: they are numbered with five digits.
pub const MAX_NAMES: u32 = 100_000;

/// Names covered by one `find-prefix` prefix (its fifth digit is free).
const NAMES_PER_PREFIX: u32 = 10;

/// The call being benchmarked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rpc {
    /// CreateUser{name: "bench-" + counter}, no request id: one INSERT.
    Create,
    /// CreateUser{name: "bench-" + counter, request_id: a new UUID}: what
    /// the Rust client's `create_user` sends; a transaction that also
    /// records the request id.
    CreateWithRequestId,
    /// FindUsers{name: a seeded name, page_size: 10}.
    FindName,
    /// FindUsers{name_prefix: a seeded four-digit prefix, page_size: 10}.
    FindPrefix,
    /// GetUser{id: a seeded id}.
    Get,
}

impl fmt::Display for Rpc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Create => "create",
            Self::CreateWithRequestId => "create-with-request-id",
            Self::FindName => "find-name",
            Self::FindPrefix => "find-prefix",
            Self::Get => "get",
        })
    }
}

/// Counts a call whose result is not `right` as failed with `wrong_result`:
/// a page of the wrong size means the data is not seeded as the benchmark
/// assumes, and the call measured something else than it should.
pub fn check(right: bool) -> Result<(), &'static str> {
    if right { Ok(()) } else { Err("wrong_result") }
}

/// The name of the `i`-th seeded user.
pub fn seeded_name(i: u64, names: u32) -> String {
    format!("user-{:05}", i % u64::from(names))
}

/// The name created by the `n`-th `create` call; the `bench-` prefix lets a
/// harness delete them afterwards so the finds keep seeing the seeded data.
pub fn bench_name(n: u64) -> String {
    format!("bench-{n}")
}

/// Checks `--names` for a workload and tells how many distinct keys its
/// calls draw from.
#[derive(Debug, Clone, Copy)]
pub struct Keys {
    count: u32,
}

impl Keys {
    /// The keys of `rpc` over data seeded with `names` names (`get` draws
    /// ids instead, see [`Keys::ids`]).
    pub fn new(rpc: Rpc, names: u32) -> Result<Self, BenchError> {
        if names == 0 || names > MAX_NAMES {
            return Err(BenchError::InvalidInput(format!(
                "--names must be between 1 and {MAX_NAMES} (names have five digits), not {names}"
            )));
        }
        let count = match rpc {
            Rpc::Create | Rpc::CreateWithRequestId | Rpc::FindName | Rpc::Get => names,

            Rpc::FindPrefix => names / NAMES_PER_PREFIX,
        };
        if count == 0 {
            return Err(BenchError::InvalidInput(format!(
                "find-prefix needs --names of at least {NAMES_PER_PREFIX}, not {names}"
            )));
        }
        Ok(Self { count })
    }

    /// The ids of `users` seeded users, 1 to `users`: the first ids of a
    /// fresh database.
    pub fn ids(users: u32) -> Result<Self, BenchError> {
        if users == 0 {
            return Err(BenchError::InvalidInput(
                "--users must be at least 1".into(),
            ));
        }
        Ok(Self { count: users })
    }

    /// A uniformly random key.
    pub fn pick(&self) -> u32 {
        rand::random_range(0..self.count)
    }
}

/// The exact name of key `k` (`find-name`).
pub fn name(k: u32) -> String {
    format!("user-{k:05}")
}

/// The name prefix of key `k` (`find-prefix`).
pub fn prefix(k: u32) -> String {
    format!("user-{k:04}")
}

/// `[low, high)` holds exactly the names that start with [`prefix`]`(k)`:
/// `high` is the prefix with its last character incremented (`user-0009` ->
/// `user-000:`), the smallest string above everything that starts with it.
pub fn prefix_bounds(k: u32) -> (String, String) {
    let low = prefix(k);
    // k % 10 < 10, so the digit plus one is at most ':'.
    let last = char::from(b'1' + (k % 10) as u8);
    let high = format!("user-{:03}{last}", k / 10);
    (low, high)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_names_cycle_through_five_digit_keys() {
        assert_eq!(seeded_name(0, 10_000), "user-00000");
        assert_eq!(seeded_name(12_345, 10_000), "user-02345");
        assert_eq!(seeded_name(99_999, 100_000), "user-99999");
        assert_eq!(name(42), "user-00042");
        assert_eq!(prefix(42), "user-0042");
    }

    #[test]
    fn prefix_bounds_hold_exactly_the_names_with_the_prefix() {
        assert_eq!(prefix_bounds(9), ("user-0009".into(), "user-000:".into()));
        assert_eq!(
            prefix_bounds(1234),
            ("user-1234".into(), "user-1235".into())
        );
        for k in [0, 9, 10, 999, 1234] {
            let (low, high) = prefix_bounds(k);
            for i in 0..100_000 {
                let name = seeded_name(i, 100_000);
                let inside = low <= name && name < high;
                assert_eq!(inside, name.starts_with(&low), "{name} vs [{low}, {high})");
            }
        }
    }

    #[test]
    fn keys_reject_names_that_do_not_fit() {
        assert!(Keys::new(Rpc::FindName, 0).is_err());
        assert!(Keys::new(Rpc::FindName, MAX_NAMES + 1).is_err());
        assert!(Keys::new(Rpc::FindPrefix, 9).is_err());
        let keys = Keys::new(Rpc::FindPrefix, 10_000).unwrap();
        assert!((0..1000).all(|_| keys.pick() < 1000));
    }
}
