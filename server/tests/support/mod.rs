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
    command.env_remove("DATABASE_URL").env("RUST_LOG", "info");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("USERS_") {
            command.env_remove(name);
        }
    }
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

/// The binary run through `sh` with its open-file limit (`ulimit -n`)
/// lowered to `limit`, so a test can reach the limit with few connections.
pub fn server_with_fd_limit(limit: u32) -> Command {
    let server = server();
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
        .arg(server.get_program());
    for (key, value) in server.get_envs() {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    command
}

/// Starts the server with `args` and waits until it serves.
pub fn start(args: &[&str]) -> Running {
    start_with(server(), args)
}

/// Starts `command` (from [`server`] or [`server_with_fd_limit`]) with
/// `args` and waits until it serves.
pub fn start_with(mut command: Command, args: &[&str]) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut child = command
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
        if let Some(addr) = served_addr(&line) {
            break addr;
        }
    };
    Running {
        child,
        addr,
        log,
        dir,
    }
}

/// Where the server says it serves, from its start-up line in either log
/// format: `addr=127.0.0.1:PORT` (text) or `"addr":"127.0.0.1:PORT"` (JSON).
fn served_addr(line: &str) -> Option<String> {
    let (_, rest) = line
        .split_once("addr=")
        .or_else(|| line.split_once(r#""addr":""#))?;
    let end = rest.find([' ', '"']).unwrap_or(rest.len());
    Some(rest[..end].to_owned())
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

impl Running {
    /// How many files and sockets the process has open now.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .expect("Linux /proc")
            .count()
    }

    /// CPU time the process has used so far (user and system), in clock
    /// ticks (`utime + stime` of `/proc/PID/stat`, 100 a second on Linux).
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("Linux /proc");
        // The fields after the command name, which is in parentheses.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .expect("(comm)")
            .1
            .split_whitespace()
            .collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }

    /// Waits until the process has used no CPU for half a second: it has
    /// done all it will do unasked (filled its send windows, read what it
    /// buffers), however slow the machine is today. Panics after a minute
    /// of work without a pause.
    pub async fn wait_until_idle(&self) {
        const QUIET_POLLS: u32 = 5;
        let started = std::time::Instant::now();
        let mut ticks = self.cpu_ticks();
        let mut quiet = 0;
        while quiet < QUIET_POLLS {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "the server kept working for a minute"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let now = self.cpu_ticks();
            quiet = if now == ticks { quiet + 1 } else { 0 };
            ticks = now;
        }
    }

    /// The log lines written since the last call (or since it started
    /// serving).
    pub fn new_log_lines(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }

    /// The log lines written since the last call, waiting until one of them
    /// contains `wanted`: a line the server writes as it replies can reach
    /// us after the reply does. Panics if none comes within 30 s.
    pub fn log_lines_until(&self, wanted: &str) -> Vec<String> {
        let mut lines = Vec::new();
        while !lines
            .last()
            .is_some_and(|line: &String| line.contains(wanted))
        {
            let line = self
                .log
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("the server logs {wanted:?}; it logged {lines:#?}"));
            lines.push(line);
        }
        lines.extend(self.log.try_iter());
        lines
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
