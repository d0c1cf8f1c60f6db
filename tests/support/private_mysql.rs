//! [`PrivateMysql`]: a MariaDB server of a test's own, which it may stop,
//! crash and start again without disturbing anyone else (least of all the
//! shared server that the other MySQL tests use).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{Mutex, PoisonError},
    thread,
    time::{Duration, Instant},
};

use crate::{
    StopMode,
    system::{free_port, owner_when_root},
};

/// The directory that holds MariaDB's programs (`mariadb-install-db`,
/// `mariadbd`, `mariadb-admin`, `mariadb`), if they are not in `PATH`,
/// `/usr/sbin` or `/usr/bin`.
pub const MARIADB_BINDIR_VAR: &str = "USERS_TEST_MARIADB_BINDIR";

/// How long `mariadbd` may take to answer after it is started, crash
/// recovery included, and to exit after SIGTERM.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A MariaDB server whose data directory `mariadb-install-db` made in a
/// temporary directory, listening on a free loopback port, with a user
/// `root` that needs no password. Killed, and its directory deleted, on
/// drop.
#[derive(Debug)]
pub struct PrivateMysql {
    /// Holds `data/`, `tmp/`, the server's error log, its socket and pid file.
    dir: tempfile::TempDir,
    port: u16,
    /// The running `mariadbd`; `None` while stopped.
    server: Mutex<Option<Child>>,
    /// Server options beyond the defaults, for every start.
    options: Vec<String>,
}

impl PrivateMysql {
    /// Creates the data directory and starts the server.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Like [`start`](Self::start), with `mariadbd` options of the test's
    /// own (e.g. `--auto-increment-increment=3`), kept for every restart.
    pub fn start_with(options: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("users-test-mariadb-")
            .tempdir()
            .expect("cannot create a temporary directory");
        // Made before anything can fail, so that Drop cleans up after a
        // failed start too.
        let server = Self {
            dir,
            port: free_port(),
            server: Mutex::new(None),
            options: options.iter().map(|option| (*option).to_owned()).collect(),
        };
        if let Some((uid, gid)) = mysql_owner() {
            std::os::unix::fs::chown(server.dir.path(), Some(uid), Some(gid))
                .expect("cannot hand the server's directory to the mysql user");
        }
        create_tmpdir(&server.tmp());
        install_data_directory(&server.data(), &server.tmp());
        server.start_again();
        server
    }

    /// A URL for `database` on this server, as user `root`.
    pub fn url(&self, database: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates the empty database `name`.
    pub fn create_database(&self, name: &str) {
        let mut args = self.client_args();
        args.extend(["--execute".to_owned(), format!("CREATE DATABASE {name}")]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run("mariadb", &args);
    }

    /// How MariaDB's client programs reach this server: as `root`, over
    /// TCP, ignoring the machine's option files.
    fn client_args(&self) -> Vec<String> {
        [
            "--no-defaults",
            "--protocol=tcp",
            "--host=127.0.0.1",
            &format!("--port={}", self.port),
            "--user=root",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// Stops the server; returns once it has exited. [`StopMode::Fast`] is
    /// MariaDB's clean shutdown (SIGTERM, as systemd sends): it ends every
    /// session, rolling back its transaction, and flushes.
    /// [`StopMode::Immediate`] is SIGKILL (`kill -9`): a crash, which InnoDB
    /// recovers from its redo log on the next start.
    pub fn stop(&self, mode: StopMode) {
        let mut server = self.server.lock().unwrap_or_else(PoisonError::into_inner);
        let mut child = server.take().expect("the server is running");
        match mode {
            StopMode::Fast => {
                let status = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status()
                    .expect("cannot run kill");
                assert!(status.success(), "kill -TERM mariadbd failed");
                let started = Instant::now();
                while child.try_wait().expect("cannot check mariadbd").is_none() {
                    if started.elapsed() > STARTUP_TIMEOUT {
                        let _ = child.kill();
                        let _ = child.wait();
                        panic!(
                            "mariadbd did not shut down within {STARTUP_TIMEOUT:?} of SIGTERM:\n{}",
                            self.log_tail(20)
                        );
                    }
                    thread::sleep(Duration::from_millis(10));
                }
            }
            StopMode::Immediate => {
                child.kill().expect("cannot kill mariadbd");
                child.wait().expect("cannot reap mariadbd");
            }
        }
    }

    /// Starts the server (again); returns once it answers.
    pub fn start_again(&self) {
        let mut server = self.server.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(server.is_none(), "the server is already running");
        let dir = self.dir.path().display();
        let mut args = vec![
            "--no-defaults".to_owned(),
            format!("--datadir={}", self.data().display()),
            format!("--tmpdir={}", self.tmp().display()),
            format!("--port={}", self.port),
            "--bind-address=127.0.0.1".to_owned(),
            format!("--socket={dir}/mariadbd.sock"),
            format!("--pid-file={dir}/mariadbd.pid"),
            format!("--log-error={dir}/mariadbd.log"),
            "--skip-name-resolve".to_owned(),
        ];
        args.extend(SMALL.iter().map(|option| (*option).to_owned()));
        args.extend(self.options.iter().cloned());
        if mysql_owner().is_some() {
            args.push("--user=mysql".to_owned());
        }
        let child = server.insert(
            Command::new(program("mariadbd"))
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|error| panic!("cannot start mariadbd: {error}")),
        );
        let started = Instant::now();
        while !self.answers() {
            if let Some(status) = child.try_wait().expect("cannot check mariadbd") {
                *server = None;
                panic!(
                    "mariadbd exited ({status}) before it answered:\n{}",
                    self.log_tail(20)
                );
            }
            assert!(
                started.elapsed() < STARTUP_TIMEOUT,
                "mariadbd did not answer within {STARTUP_TIMEOUT:?}:\n{}",
                self.log_tail(20)
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the server answers a ping on its port.
    fn answers(&self) -> bool {
        command("mariadb-admin")
            .args(self.client_args())
            .args(["--connect-timeout=1", "ping"])
            .output()
            .unwrap_or_else(|error| panic!("cannot run mariadb-admin: {error}"))
            .status
            .success()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn tmp(&self) -> PathBuf {
        self.dir.path().join("tmp")
    }

    /// The last `lines` lines of the server's error log, for a failure
    /// message.
    fn log_tail(&self, lines: usize) -> String {
        let path = self.dir.path().join("mariadbd.log");
        match std::fs::read_to_string(&path) {
            Ok(log) => {
                let log: Vec<_> = log.lines().collect();
                log[log.len().saturating_sub(lines)..].join("\n")
            }
            Err(error) => format!("(no error log: {}: {error})", path.display()),
        }
    }
}

impl Drop for PrivateMysql {
    fn drop(&mut self) {
        let server = self
            .server
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(child) = server.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Options that keep the server small and quick to create: a 32 MiB buffer
/// pool, an 8 MiB redo log (the default 96 MiB file takes seconds to
/// write). Durability is left at its default: every commit is flushed.
pub(crate) const SMALL: [&str; 2] = ["--innodb-buffer-pool-size=32M", "--innodb-log-file-size=8M"];

/// Creates a data directory with `mariadb-install-db`: a `root` user that
/// needs no password (the default, `socket`, would only let the system's
/// root in, over the socket), no test database, [`SMALL`], temporary files
/// in `tmpdir` (see [`create_tmpdir`]).
pub(crate) fn install_data_directory(datadir: &Path, tmpdir: &Path) {
    let datadir = format!("--datadir={}", datadir.display());
    let tmpdir = format!("--tmpdir={}", tmpdir.display());
    let mut install = vec![
        "--no-defaults",
        &datadir,
        &tmpdir,
        "--auth-root-authentication-method=normal",
        "--skip-test-db",
        "--skip-name-resolve",
    ];
    install.extend(SMALL);
    if mysql_owner().is_some() {
        install.push("--user=mysql");
    }
    run("mariadb-install-db", &install);
}

/// Creates `path` as a server's own `tmpdir`, owned by the user it runs as.
/// Never the shared `/tmp`: every `mariadbd` deletes the `#sql*` files in
/// its tmpdir when it starts (what a crash left), so a server starting
/// beside another one bootstrapping would delete that one's temporary
/// tables under it, and `mariadb-install-db` fails with "Error on delete
/// of '/tmp/#sql-temptable-...'".
pub(crate) fn create_tmpdir(path: &Path) {
    std::fs::create_dir(path).expect("cannot create a server's tmpdir");
    if let Some((uid, gid)) = mysql_owner() {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .expect("cannot hand a server's tmpdir to the mysql user");
    }
}

/// Runs one of MariaDB's programs; panics with its output if it fails.
pub(crate) fn run(program: &str, args: &[&str]) -> Output {
    let output = command(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {program}: {error}"));
    assert_success(program, args, &output);
    output
}

/// Panics with `output` unless `program` succeeded.
pub(crate) fn assert_success(program: &str, args: &[&str], output: &Output) {
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}

fn command(program_name: &str) -> Command {
    let mut command = Command::new(program(program_name));
    command.stdin(Stdio::null());
    command
}

/// Where MariaDB's program `name` is: in `USERS_TEST_MARIADB_BINDIR` if it
/// is set, else in `PATH`, `/usr/sbin` or `/usr/bin` (Debian puts `mariadbd`
/// in `/usr/sbin`, which a user's `PATH` may leave out).
pub(crate) fn program(name: &str) -> PathBuf {
    let dirs: Vec<PathBuf> = match std::env::var_os(MARIADB_BINDIR_VAR) {
        Some(dir) => vec![PathBuf::from(dir)],
        None => std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .chain(["/usr/sbin", "/usr/bin"].map(PathBuf::from))
            .collect(),
    };
    dirs.iter()
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the MySQL fault tests start a MariaDB server of their own and need its programs \
                 (mariadb-install-db, mariadbd, mariadb-admin, mariadb); {name} is not in {dirs:?}: \
                 install MariaDB's server package (Debian: mariadb-server) or set \
                 {MARIADB_BINDIR_VAR} to the directory that holds them"
            )
        })
}

/// When we run as root, the uid and gid to run MariaDB as.
pub(crate) fn mysql_owner() -> Option<(u32, u32)> {
    owner_when_root("mysql", "MariaDB")
}
