//! What the private database servers of the fault tests need from the
//! machine: a free port, and a system user to run as when the tests run as
//! root (PostgreSQL and MariaDB refuse to run as root).

use std::{
    collections::BTreeSet,
    net::TcpListener,
    os::unix::fs::MetadataExt,
    process::Command,
    sync::{Mutex, PoisonError},
};

use rand::Rng;

/// A loopback port nobody listens on right now, for a server a test
/// starts, and not one this process handed out before.
///
/// Picked below the kernel's ephemeral range (`ip_local_port_range`),
/// where outgoing connections take their local ports: a port from that
/// range, free when picked, can be taken meanwhile by any connection (a
/// Galera node's IST listener, which binds seconds after its node
/// started, lost its port that way: "Address already in use", and the
/// node aborted).
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let ephemeral_start = ephemeral_range_start();
    let below = ephemeral_start.saturating_sub(16_384).max(1024)..ephemeral_start;
    let mut given = GIVEN.lock().unwrap_or_else(PoisonError::into_inner);
    for _ in 0..10_000 {
        let port = rand::rng().random_range(below.clone());
        if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
    panic!("no free loopback port in {below:?}");
}

/// The first port of the kernel's ephemeral range (32768 unless
/// configured otherwise).
fn ephemeral_range_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// When the tests run as root, the uid and gid of the system user `user`
/// (created by the database's server package), for `server` to run as;
/// `None` otherwise.
pub fn owner_when_root(user: &str, server: &str) -> Option<(u32, u32)> {
    let running_as_root = std::fs::metadata("/proc/self").is_ok_and(|me| me.uid() == 0);
    if !running_as_root {
        return None;
    }
    let id = |flag: &str| -> u32 {
        let output = Command::new("id")
            .args([flag, user])
            .output()
            .expect("cannot run id");
        assert!(
            output.status.success(),
            "running as root, the fault tests need a `{user}` user to run {server} as"
        );
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .expect("id prints a number")
    };
    Some((id("-u"), id("-g")))
}
