//! What the private database servers of the fault tests need from the
//! machine: a free port, and a system user to run as when the tests run as
//! root (PostgreSQL and MariaDB refuse to run as root).

use std::{net::TcpListener, os::unix::fs::MetadataExt, process::Command};

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("cannot find a free port")
        .port()
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
