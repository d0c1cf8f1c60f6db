//! Running the `users-server` binary from a test.

// Each test binary that includes this module uses only part of it.
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::Duration,
};

/// The binary, with none of its settings inherited from the environment.
pub fn server() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_users-server"));
    command
        .env_remove("DATABASE_URL")
        .env_remove("USERS_LISTEN")
        .env_remove("USERS_POOL_SIZE")
        .env_remove("USERS_POOL_TIMEOUT")
        .env_remove("USERS_SKIP_MIGRATIONS")
        .env_remove("USERS_REQUEST_ID_TTL")
        .env("RUST_LOG", "info");
    command
}

/// A server process serving on a free port, in a directory of its own.
pub struct Running {
    /// The process.
    pub child: Child,
    /// Where it serves (`127.0.0.1:PORT`).
    pub addr: String,
    /// Its stderr, a line at a time.
    pub log: mpsc::Receiver<String>,
    /// Its working directory (the default SQLite file goes here).
    pub dir: tempfile::TempDir,
}

/// Starts the server with `args` and waits until it serves.
pub fn start(args: &[&str]) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut child = server()
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .current_dir(dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, log) = mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let addr = loop {
        let line = log
            .recv_timeout(Duration::from_secs(30))
            .expect("the server logs where it serves");
        if let Some((_, rest)) = line.split_once("addr=") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    Running {
        child,
        addr,
        log,
        dir,
    }
}

impl Running {
    /// The process's resident memory now, in KiB: (anonymous, file-backed),
    /// `RssAnon` and `RssFile` of `/proc/PID/status`. Anonymous pages are
    /// the server's own; file pages are its binary and the parts of the
    /// SQLite file it has read through its memory map.
    pub fn rss_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("Linux /proc");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or_else(|| panic!("{name} in /proc/PID/status"))
        };
        (field("RssAnon:"), field("RssFile:"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
