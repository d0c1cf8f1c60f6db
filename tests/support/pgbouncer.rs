//! [`Pgbouncer`]: a PgBouncer of a test's own in front of the PostgreSQL
//! server the tests use, in session or transaction pooling mode.

use std::{
    net::TcpStream,
    path::PathBuf,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::system::{free_port, owner_when_root};

/// How PgBouncer lends server connections to its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    /// A server connection for as long as the client stays connected.
    Session,
    /// A server connection for one transaction at a time.
    Transaction,
}

/// `pgbouncer` listening on a free loopback port, forwarding every
/// database to the PostgreSQL server at `upstream_host:upstream_port` as user
/// `postgres` (trust), run as the `postgres` user when the tests run as
/// root (PgBouncer refuses root). Killed on drop.
#[derive(Debug)]
pub struct Pgbouncer {
    dir: tempfile::TempDir,
    port: u16,
    process: Child,
}

impl Pgbouncer {
    /// Starts it in `mode`; returns once it accepts connections.
    pub fn start(mode: PoolMode, upstream_host: &str, upstream_port: u16) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("users-test-pgbouncer-")
            .tempdir()
            .expect("cannot create a temporary directory");
        let owner = owner_when_root("postgres", "PgBouncer");
        let port = free_port();
        let path = |name: &str| dir.path().join(name).display().to_string();
        let mode_name = match mode {
            PoolMode::Session => "session",
            PoolMode::Transaction => "transaction",
        };
        let config = format!(
            "[databases]\n\
             * = host={upstream_host} port={upstream_port}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {auth}\n\
             pool_mode = {mode_name}\n\
             max_client_conn = 500\n\
             default_pool_size = 20\n\
             ignore_startup_parameters = extra_float_digits\n\
             logfile = {log}\n",
            auth = path("users.txt"),
            log = path("pgbouncer.log"),
        );
        std::fs::write(dir.path().join("pgbouncer.ini"), config).unwrap();
        std::fs::write(dir.path().join("users.txt"), "\"postgres\" \"\"\n").unwrap();
        if let Some((uid, gid)) = owner {
            for entry in ["", "pgbouncer.ini", "users.txt"] {
                std::os::unix::fs::chown(dir.path().join(entry), Some(uid), Some(gid))
                    .expect("cannot hand the directory to the postgres user");
            }
        }
        let program = program();
        let mut command = match owner {
            Some(_) => {
                let mut command = Command::new("runuser");
                command.args(["-u", "postgres", "--"]).arg(&program);
                command
            }
            None => Command::new(&program),
        };
        let mut process = command
            .arg(path("pgbouncer.ini"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", program.display()));
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = process.try_wait().unwrap() {
                panic!(
                    "pgbouncer exited ({status}) before it listened:\n{}",
                    std::fs::read_to_string(dir.path().join("pgbouncer.log")).unwrap_or_default()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "pgbouncer did not listen within 10 s"
            );
            thread::sleep(Duration::from_millis(20));
        }
        Self { dir, port, process }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for Pgbouncer {
    fn drop(&mut self) {
        // Through runuser the child is runuser; pgbouncer dies with it
        // only if signalled itself, so kill the whole process group too.
        let _ = Command::new("pkill")
            .args(["-KILL", "-f", &self.dir.path().display().to_string()])
            .status();
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Where `pgbouncer` is: `PATH`, or `/usr/sbin` (Debian's package).
fn program() -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("pgbouncer"))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the PgBouncer tests need pgbouncer: install it (Debian: apt-get install pgbouncer)"
            )
        })
}
