//! [`PrivatePostgres`]: a PostgreSQL cluster of a test's own, which it may
//! stop, crash and start again without disturbing anyone else.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use crate::system::{free_port, owner_when_root};

/// Where `initdb` and `pg_ctl` are, if not in the newest
/// `/usr/lib/postgresql/*/bin`.
pub const POSTGRES_BINDIR_VAR: &str = "USERS_TEST_POSTGRES_BINDIR";

/// A PostgreSQL cluster created by `initdb` in a temporary directory,
/// listening on a free loopback port, with trust authentication for user
/// `postgres`. Stopped (immediately) and deleted on drop.
#[derive(Debug)]
pub struct PrivatePostgres {
    bindir: PathBuf,
    /// Holds `data/` (the cluster), the server's log and its socket.
    dir: tempfile::TempDir,
    port: u16,
}

/// How [`PrivatePostgres::stop`] stops the server (`pg_ctl stop -m`).
#[derive(Debug, Clone, Copy)]
pub enum StopMode {
    /// Disconnects every client, rolling back their transactions, and shuts
    /// down cleanly: a planned restart.
    Fast,
    /// Kills every server process at once; the next start recovers from
    /// the WAL: a crash.
    Immediate,
}

impl PrivatePostgres {
    /// Creates the cluster and starts it.
    pub fn start() -> Self {
        let cluster = Self::empty();
        cluster.run(
            "initdb",
            &[
                "--pgdata",
                &cluster.data().display().to_string(),
                "--username",
                "postgres",
                "--auth",
                "trust",
                "--no-sync",
                "--no-instructions",
            ],
        );
        cluster.start_again();
        cluster
    }

    /// A hot standby of `primary`: a copy taken with `pg_basebackup` that
    /// streams the primary's WAL and replays each commit no sooner than
    /// `apply_delay` after it was made (`recovery_min_apply_delay`), so
    /// that a test can hold it behind. Serves reads; started.
    pub fn standby_of(primary: &Self, apply_delay: Duration) -> Self {
        let standby = Self::empty();
        let data = standby.data().display().to_string();
        let port = primary.port.to_string();
        standby.run(
            "pg_basebackup",
            &[
                "--host",
                "127.0.0.1",
                "--port",
                &port,
                "--username",
                "postgres",
                "--pgdata",
                &data,
                // Writes standby.signal and primary_conninfo.
                "--write-recovery-conf",
                "--wal-method",
                "stream",
                "--checkpoint",
                "fast",
                "--no-sync",
            ],
        );
        let mut settings = std::fs::OpenOptions::new()
            .append(true)
            .open(standby.data().join("postgresql.auto.conf"))
            .expect("pg_basebackup --write-recovery-conf writes postgresql.auto.conf");
        writeln!(
            settings,
            "recovery_min_apply_delay = '{}ms'",
            apply_delay.as_millis()
        )
        .expect("cannot configure the standby");
        standby.start_again();
        standby
    }

    /// A temporary directory for a cluster, owned by the user PostgreSQL
    /// runs as, and a free port.
    fn empty() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("users-test-pg-")
            .tempdir()
            .expect("cannot create a temporary directory");
        let cluster = Self {
            bindir: bindir(),
            dir,
            port: free_port(),
        };
        if let Some((uid, gid)) = postgres_owner() {
            std::os::unix::fs::chown(cluster.dir.path(), Some(uid), Some(gid))
                .expect("cannot hand the cluster's directory to the postgres user");
        }
        cluster
    }

    /// A URL for `database` on this cluster (`postgres` always exists).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Stops the server; returns once it is down.
    pub fn stop(&self, mode: StopMode) {
        let mode = match mode {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        };
        let data = self.data().display().to_string();
        self.run(
            "pg_ctl",
            &["stop", "--pgdata", &data, "--mode", mode, "--wait"],
        );
    }

    /// Starts the server (again); returns once it accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={}",
            self.port,
            self.dir.path().display()
        );
        let data = self.data().display().to_string();
        let log = self.dir.path().join("postgres.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "start",
                "--pgdata",
                &data,
                "--log",
                &log,
                "--options",
                &options,
                "--wait",
            ],
        );
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs one of PostgreSQL's programs; panics with its output if it
    /// fails.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        let output = self
            .command(program)
            .args(args)
            .output()
            .unwrap_or_else(|error| panic!("cannot run {program}: {error}"));
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
        output
    }

    /// One of PostgreSQL's programs, to run as the `postgres` user when we
    /// are root (PostgreSQL refuses to run as root).
    fn command(&self, program: &str) -> Command {
        let program = self.bindir.join(program);
        let mut command = if postgres_owner().is_some() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        command.current_dir(self.dir.path());
        command
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        // Fails if a test left it stopped: nothing to do then.
        let data = self.data().display().to_string();
        let _ = self
            .command("pg_ctl")
            .args(["stop", "--pgdata", &data, "--mode", "immediate", "--wait"])
            .output();
    }
}

/// `USERS_TEST_POSTGRES_BINDIR`, or the newest installed PostgreSQL's.
fn bindir() -> PathBuf {
    if let Some(dir) = std::env::var_os(POSTGRES_BINDIR_VAR) {
        return PathBuf::from(dir);
    }
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").is_file())
        .max_by_key(|bin| {
            bin.parent()
                .and_then(Path::file_name)
                .and_then(|version| version.to_str()?.parse::<u32>().ok())
        });
    newest.unwrap_or_else(|| {
        panic!(
            "the fault tests start a PostgreSQL cluster of their own and need its programs \
             (initdb, pg_ctl): install PostgreSQL's server package (Debian: postgresql-15) \
             or set {POSTGRES_BINDIR_VAR} to the directory that holds them"
        )
    })
}

/// When we run as root, the uid and gid to run PostgreSQL as.
fn postgres_owner() -> Option<(u32, u32)> {
    owner_when_root("postgres", "PostgreSQL")
}
