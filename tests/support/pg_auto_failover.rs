//! [`PgAutoFailover`]: a pg_auto_failover formation of a test's own (a
//! monitor and two PostgreSQL nodes with synchronous replication), whose
//! primary a test may kill with SIGKILL to watch the formation fail over.
//!
//! Everything listens on loopback only (`--listen 127.0.0.1`), on free
//! ports, with its data, configuration and logs in a temporary directory;
//! the programs run as the `postgres` user when the tests run as root
//! (pg_autoctl, like PostgreSQL, refuses root). Unix sockets go to
//! PostgreSQL's default directory (`/var/run/postgresql` on Debian), named
//! by port as usual. Needs the Debian packages `postgresql-15-auto-failover`
//! (the monitor's extension, for the installed PostgreSQL's version) and
//! `pg-auto-failover-cli` (`pg_autoctl`).
//!
//! The monitor is tuned for CI: it notices a dead primary and fails over
//! in about 9 s instead of about 50 s. (A real network wants the long
//! demote timeout, against split brain.)

use std::{
    collections::{BTreeMap, BTreeSet},
    fs::{File, OpenOptions},
    io::Read,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::{
    POSTGRES_BINDIR_VAR,
    system::{free_port, owner_when_root},
};

/// The database `pg_autoctl create postgres --dbname` creates, for the
/// server.
const DATABASE: &str = "app";

/// The monitor's settings for CI (`pgautofailover.*`): a health check every
/// second, a node unhealthy after 3 s, the old primary given 5 s to demote
/// itself. With the defaults a failover takes about 50 s. And no grace
/// period after the monitor's start (10 s by default, during which it
/// fails nothing over): a kill soon after the formation came up took
/// 12.6-13.2 s to fail over instead of about 9 s.
const MONITOR_TUNING: &[(&str, &str)] = &[
    ("startup_grace_period", "1"),
    ("health_check_period", "1000"),
    ("health_check_timeout", "1000"),
    ("health_check_max_retries", "1"),
    ("health_check_retry_delay", "500"),
    ("node_considered_unhealthy_timeout", "3000"),
    ("primary_demote_timeout", "5000"),
];

/// How long the monitor, and then each node, may take to come up; CI's
/// two cores are shared with other tests.
const START_BOUND: Duration = Duration::from_secs(90);

/// A pg_auto_failover formation: a monitor and two PostgreSQL nodes, the
/// first created primary, the second its synchronous standby. Stopped
/// (every process of it) and deleted on drop, also when it failed to
/// start.
#[derive(Debug)]
pub struct PgAutoFailover {
    /// Holds the monitor's and the nodes' data directories, their
    /// configuration (`XDG_CONFIG_HOME`), state (`XDG_DATA_HOME`) and logs.
    /// Declared last among what `drop` uses: removed once all is stopped.
    dir: tempfile::TempDir,
    bindir: PathBuf,
    /// The user to run as, when we are root.
    owner: Option<(u32, u32)>,
    monitor: Member,
    nodes: [Member; 2],
    /// The node last killed, and when.
    killed: Option<(usize, Instant)>,
    /// What the monitor reported since the last kill (time since the kill,
    /// every node's `reported/goal` state), as it changed.
    transitions: Vec<(Duration, String)>,
}

/// A node of the formation, as tests see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormationNode {
    /// Its pg_auto_failover name (`node1`, `node2`).
    pub name: String,
    /// Where its PostgreSQL listens, on 127.0.0.1.
    pub port: u16,
}

/// The monitor or a node: its `pg_autoctl` process (the supervisor, parent
/// of its PostgreSQL), while it runs.
#[derive(Debug)]
struct Member {
    name: String,
    port: u16,
    pgdata: PathBuf,
    /// pg_autoctl's output, appended to by each run.
    log: PathBuf,
    process: Option<Child>,
}

impl PgAutoFailover {
    /// Creates the monitor and both nodes and starts them; returns once the
    /// monitor reports the first node `primary` and the second `secondary`.
    pub fn start() -> Self {
        let bindir = bindir();
        let dir = tempfile::Builder::new()
            .prefix("users-test-pgaf-")
            .tempdir()
            .expect("cannot create a temporary directory");
        let owner = owner_when_root("postgres", "pg_auto_failover");
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("cannot hand the formation's directory to the postgres user");
        }
        let member = |name: &str| Member {
            name: name.to_owned(),
            port: free_port(),
            pgdata: dir.path().join(name),
            log: dir.path().join(format!("{name}.log")),
            process: None,
        };
        let mut formation = Self {
            monitor: member("monitor"),
            nodes: [member("node1"), member("node2")],
            dir,
            bindir,
            owner,
            killed: None,
            transitions: Vec::new(),
        };
        // From here on a panic drops `formation`, which stops whatever did
        // start and removes the directory.
        formation.start_monitor();
        formation.create_node(0);
        formation.wait_for_states(&[("single", "single")], "node1 to start as a single node");
        formation.create_node(1);
        formation.wait_for_states(
            &[("primary", "primary"), ("secondary", "secondary")],
            "node2 to catch up with node1 and become its standby",
        );
        formation
    }

    /// The URL the server is given: both nodes, the first that accepts
    /// writes wins (a standby is skipped).
    pub fn url(&self) -> String {
        let [first, second] = &self.nodes;
        format!(
            "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/{DATABASE}?target_session_attrs=read-write",
            first.port, second.port
        )
    }

    /// The node the monitor reports primary (or `wait_primary`: primary
    /// without a standby), in its reported and goal state alike. Panics if
    /// there is none.
    pub fn primary(&self) -> FormationNode {
        let states = self.states().unwrap_or_else(|error| {
            panic!("cannot ask the monitor for the formation's state: {error}")
        });
        let index = self
            .index_in_state(&states, &["primary", "wait_primary", "single"])
            .unwrap_or_else(|| panic!("no node is primary: {}", describe(&states)));
        self.nodes[index].view()
    }

    /// Every node's state, as the monitor reports it (`name:reported/goal`).
    pub fn describe_states(&self) -> String {
        self.states()
            .map_or_else(|error| error, |states| describe(&states))
    }

    /// How the formation replicates: the formation's
    /// `number_sync_standbys` (on the monitor) and the primary's
    /// `synchronous_standby_names` and `synchronous_commit`.
    pub fn replication_settings(&self) -> String {
        let primary = self.primary();
        let sync_standbys = self.monitor_query(
            "SELECT number_sync_standbys FROM pgautofailover.formation WHERE formationid = 'default'",
        );
        let on_primary = psql(
            &self.bindir,
            primary.port,
            DATABASE,
            &[
                "SELECT format('synchronous_standby_names=%L, synchronous_commit=%s', \
                 current_setting('synchronous_standby_names'), \
                 current_setting('synchronous_commit'))",
            ],
            Duration::from_secs(10),
        );
        format!(
            "number_sync_standbys={}; on {}: {}",
            sync_standbys.unwrap_or_else(|error| error),
            primary.name,
            on_primary.unwrap_or_else(|error| error)
        )
    }

    /// Kills the primary's node as a crash would: its `pg_autoctl` and its
    /// PostgreSQL (postmaster and every backend) with SIGKILL, all at once.
    /// Returns once none of them is left: which node, and when the SIGKILL
    /// was sent.
    pub fn kill_primary(&mut self) -> (FormationNode, Instant) {
        let primary = self.primary();
        let index = self
            .nodes
            .iter()
            .position(|node| node.name == primary.name)
            .expect("the primary is one of the nodes");
        let node = &mut self.nodes[index];
        let mut child = node
            .process
            .take()
            .unwrap_or_else(|| panic!("{} is primary but not running", node.name));
        let root = child.id();
        // Frozen first, so that nothing forks (a backend for a new
        // connection, a pg_ctl) between listing the processes and killing
        // them; then all killed at once.
        let mut doomed = node_processes(root, &node.pgdata);
        signal("STOP", &doomed);
        loop {
            let more = node_processes(root, &node.pgdata);
            if more.is_subset(&doomed) {
                break;
            }
            signal("STOP", &more);
            doomed.extend(more);
        }
        // Taken before the signal: the first effects (a connection reset)
        // come while `kill` is still exiting.
        let killed_at = Instant::now();
        signal("KILL", &doomed);
        let _ = child.wait();
        let gone = wait_until(Duration::from_secs(10), || {
            doomed.iter().all(|process| !process.alive())
                && node_processes(root, &node.pgdata).is_empty()
        });
        assert!(
            gone,
            "{} left processes behind after SIGKILL: {:?}",
            node.name,
            node_processes(root, &node.pgdata)
        );
        self.killed = Some((index, killed_at));
        self.transitions.clear();
        (primary, killed_at)
    }

    /// Waits up to `timeout` until the node that was not killed is primary
    /// (`primary`, or `wait_primary`: without a standby, synchronous
    /// replication off) and commits a write; how long after the kill.
    /// Panics, with the logs, if it is not by then.
    pub fn wait_for_failover(&mut self, timeout: Duration) -> Duration {
        let (killed, killed_at) = self.killed.expect("kill_primary first");
        let survivor = 1 - killed;
        let started = Instant::now();
        loop {
            let states = self.states();
            if let Ok(states) = &states {
                self.note(killed_at, states);
                let promoted =
                    states
                        .get(&self.nodes[survivor].name)
                        .is_some_and(|(reported, goal)| {
                            reported == goal
                                && ["primary", "wait_primary"].contains(&reported.as_str())
                        });
                if promoted && accepts_writes(&self.bindir, self.nodes[survivor].port).is_ok() {
                    return killed_at.elapsed();
                }
            }
            if started.elapsed() >= timeout {
                panic!(
                    "{} did not take over within {timeout:?} of the kill; monitor: {}; \
                     writes on it: {:?}\n{}",
                    self.nodes[survivor].name,
                    states.map_or_else(|error| error, |states| describe(&states)),
                    accepts_writes(&self.bindir, self.nodes[survivor].port),
                    self.log_tails()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The monitor's states since the last kill, as they changed: time
    /// since the kill, then every node's `name:reported/goal`.
    pub fn transitions(&self) -> &[(Duration, String)] {
        &self.transitions
    }

    /// Starts the killed node again (`pg_autoctl run`); returns once it has
    /// caught up and is the standby of the other, which is `primary` again.
    pub fn restart_killed_node(&mut self) {
        let (killed, _) = self.killed.take().expect("kill_primary first");
        let mut command = self.pg_autoctl();
        command
            .arg("run")
            .arg("--pgdata")
            .arg(&self.nodes[killed].pgdata);
        self.spawn(killed, command);
        let wanted: Vec<(&str, &str)> = match killed {
            0 => vec![("secondary", "secondary"), ("primary", "primary")],
            _ => vec![("primary", "primary"), ("secondary", "secondary")],
        };
        let what = format!("{} to rejoin as standby", self.nodes[killed].name);
        self.wait_for_states(&wanted, &what);
    }

    /// The last lines of every member's pg_autoctl log and PostgreSQL log,
    /// for a failure message.
    pub fn log_tails(&self) -> String {
        std::iter::once(&self.monitor)
            .chain(&self.nodes)
            .map(|member| {
                format!(
                    "--- {} (pg_autoctl):\n{}\n--- {} (PostgreSQL):\n{}",
                    member.name,
                    tail(&member.log, 15),
                    member.name,
                    newest_file(&member.pgdata.join("log"))
                        .map_or_else(|| "(no log)".to_owned(), |log| tail(&log, 10)),
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `pg_autoctl create monitor --run`, then waits until it answers and
    /// tunes it for CI.
    fn start_monitor(&mut self) {
        let mut command = self.pg_autoctl();
        command
            .args(["create", "monitor", "--pgdata"])
            .arg(&self.monitor.pgdata)
            .args(["--pgport", &self.monitor.port.to_string()])
            .args(common_create_args())
            .arg("--run");
        let child = self.spawn_logged(&self.monitor.log, command);
        self.monitor.process = Some(child);
        let started = Instant::now();
        while let Err(error) = self.monitor_query("SELECT count(*) FROM pgautofailover.node") {
            if started.elapsed() >= START_BOUND {
                panic!(
                    "the pg_auto_failover monitor did not answer within {START_BOUND:?}: {error}\n{}",
                    self.log_tails()
                );
            }
            self.assert_running();
            thread::sleep(Duration::from_millis(200));
        }
        let mut statements: Vec<String> = MONITOR_TUNING
            .iter()
            .map(|(name, value)| format!("ALTER SYSTEM SET pgautofailover.{name} = {value}"))
            .collect();
        statements.push("SELECT pg_reload_conf()".to_owned());
        let statements: Vec<&str> = statements.iter().map(String::as_str).collect();
        if let Err(error) = psql(
            &self.bindir,
            self.monitor.port,
            "pg_auto_failover",
            &statements,
            Duration::from_secs(30),
        ) {
            panic!("cannot tune the monitor: {error}");
        }
    }

    /// `pg_autoctl create postgres --run` for node `index`: the first
    /// becomes a single primary, the second its standby.
    fn create_node(&mut self, index: usize) {
        let node = &self.nodes[index];
        let monitor = format!(
            "postgres://autoctl_node@127.0.0.1:{}/pg_auto_failover?sslmode=disable",
            self.monitor.port
        );
        let mut command = self.pg_autoctl();
        command
            .args(["create", "postgres", "--pgdata"])
            .arg(&node.pgdata)
            .args(["--pgport", &node.port.to_string()])
            .args(["--name", &node.name, "--dbname", DATABASE])
            .args(common_create_args())
            .args(["--monitor", &monitor, "--run"]);
        self.spawn(index, command);
    }

    /// Waits until the monitor reports each node in its (reported, goal)
    /// state of `wanted`, while running CHECKPOINT on the primary now and
    /// then: pg_auto_failover's pg_basebackup waits for a spread
    /// checkpoint, which keeps a new standby in `catchingup` for most of a
    /// `checkpoint_timeout` otherwise.
    fn wait_for_states(&self, wanted: &[(&str, &str)], what: &str) {
        let started = Instant::now();
        let mut last_checkpoint = Instant::now();
        loop {
            let states = self.states();
            if let Ok(states) = &states {
                let reached = wanted
                    .iter()
                    .zip(&self.nodes)
                    .all(|((reported, goal), node)| {
                        states.get(&node.name)
                            == Some(&((*reported).to_owned(), (*goal).to_owned()))
                    });
                if reached {
                    return;
                }
                if last_checkpoint.elapsed() >= Duration::from_millis(500)
                    && let Some(primary) =
                        self.index_in_state(states, &["primary", "wait_primary", "single"])
                {
                    let _ = psql(
                        &self.bindir,
                        self.nodes[primary].port,
                        DATABASE,
                        &["CHECKPOINT"],
                        Duration::from_secs(10),
                    );
                    last_checkpoint = Instant::now();
                }
            }
            if started.elapsed() >= START_BOUND {
                panic!(
                    "pg_auto_failover: waited {START_BOUND:?} for {what}; monitor: {}\n{}",
                    states.map_or_else(|error| error, |states| describe(&states)),
                    self.log_tails()
                );
            }
            self.assert_running();
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Panics, with the logs, if a member started (and not killed) has
    /// exited.
    fn assert_running(&self) {
        for member in std::iter::once(&self.monitor).chain(&self.nodes) {
            let Some(child) = &member.process else {
                continue;
            };
            // `try_wait` needs `&mut`; a dead process is no longer in /proc
            // once reaped, and shows as a zombie until then.
            if !Process::of(child.id()).is_some_and(|process| process.alive()) {
                panic!(
                    "pg_autoctl of {} exited while starting\n{}",
                    member.name,
                    self.log_tails()
                );
            }
        }
    }

    /// Every node's (reported, goal) state, by name, from the monitor.
    fn states(&self) -> Result<BTreeMap<String, (String, String)>, String> {
        let rows = self.monitor_query(
            "SELECT nodename || '|' || reportedstate || '|' || goalstate FROM pgautofailover.node",
        )?;
        Ok(rows
            .lines()
            .filter_map(|row| {
                let mut fields = row.split('|');
                let name = fields.next()?.to_owned();
                let reported = fields.next()?.to_owned();
                let goal = fields.next()?.to_owned();
                Some((name, (reported, goal)))
            })
            .collect())
    }

    /// Records `states` in the transitions since the kill, if they changed.
    fn note(&mut self, killed_at: Instant, states: &BTreeMap<String, (String, String)>) {
        let text = describe(states);
        if self
            .transitions
            .last()
            .is_none_or(|(_, last)| *last != text)
        {
            self.transitions.push((killed_at.elapsed(), text));
        }
    }

    /// The first node in one of the `wanted` states, reported and goal
    /// alike: a dead primary stays reported `primary` (it reports nothing
    /// more) while its goal moves on to `demoted`.
    fn index_in_state(
        &self,
        states: &BTreeMap<String, (String, String)>,
        wanted: &[&str],
    ) -> Option<usize> {
        self.nodes.iter().position(|node| {
            states.get(&node.name).is_some_and(|(reported, goal)| {
                reported == goal && wanted.contains(&reported.as_str())
            })
        })
    }

    /// One query on the monitor's database; its rows, unaligned.
    fn monitor_query(&self, sql: &str) -> Result<String, String> {
        psql(
            &self.bindir,
            self.monitor.port,
            "pg_auto_failover",
            &[sql],
            Duration::from_secs(10),
        )
    }

    /// `pg_autoctl`, to run as the formation's owner, with its
    /// configuration and state in the formation's directory and the
    /// PostgreSQL programs of `bindir` first in `PATH`.
    fn pg_autoctl(&self) -> Command {
        let dir = self.dir.path();
        let mut command = Command::new(pg_autoctl_program());
        command
            .env_clear()
            .env("HOME", dir)
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env("XDG_DATA_HOME", dir.join("share"))
            .env("PATH", format!("{}:/usr/bin:/bin", self.bindir.display()))
            .env("LANG", "C.UTF-8")
            .current_dir(dir)
            .stdin(Stdio::null());
        if let Some((uid, gid)) = self.owner {
            command.uid(uid).gid(gid);
        }
        command
    }

    /// Starts `command` as node `index`'s pg_autoctl.
    fn spawn(&mut self, index: usize, command: Command) {
        let child = self.spawn_logged(&self.nodes[index].log, command);
        self.nodes[index].process = Some(child);
    }

    /// Starts `command` with its output appended to `log`.
    fn spawn_logged(&self, log: &Path, mut command: Command) -> Child {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|error| panic!("cannot open {}: {error}", log.display()));
        let stderr = log.try_clone().expect("cannot duplicate a file handle");
        command
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run pg_autoctl: {error}"))
    }
}

impl Member {
    fn view(&self) -> FormationNode {
        FormationNode {
            name: self.name.clone(),
            port: self.port,
        }
    }
}

impl Drop for PgAutoFailover {
    /// Asks each pg_autoctl to stop (SIGTERM: it stops its PostgreSQL
    /// first), kills what is left after a while, then makes sure that no
    /// process of the formation is left before the directory goes.
    fn drop(&mut self) {
        let dir = self.dir.path().to_owned();
        let members: Vec<&mut Member> = self
            .nodes
            .iter_mut()
            .chain(std::iter::once(&mut self.monitor))
            .collect();
        let mut everything = BTreeSet::new();
        let mut children = Vec::new();
        for member in members {
            if let Some(child) = member.process.take() {
                everything.extend(node_processes(child.id(), &member.pgdata));
                children.push(child);
            }
        }
        everything.extend(processes_mentioning(&dir));
        let pids: BTreeSet<_> = children.iter().map(Child::id).collect();
        let top: BTreeSet<_> = everything
            .iter()
            .filter(|process| pids.contains(&process.pid))
            .cloned()
            .collect();
        signal("TERM", &top);
        let stopped = wait_until(Duration::from_secs(15), || {
            children
                .iter_mut()
                .all(|child| matches!(child.try_wait(), Ok(Some(_))))
                && everything.iter().all(|process| !process.alive())
        });
        if !stopped {
            eprintln!("pg_auto_failover: not stopped within 15 s of SIGTERM, killing what is left");
        }
        // Whatever is left, and anything started meanwhile, from any tree.
        for _ in 0..10 {
            let mut left: BTreeSet<Process> = everything
                .iter()
                .filter(|process| process.alive())
                .cloned()
                .collect();
            left.extend(processes_mentioning(&dir));
            if left.is_empty() {
                break;
            }
            signal("KILL", &left);
            for child in &mut children {
                let _ = child.try_wait();
            }
            wait_until(Duration::from_secs(1), || {
                left.iter().all(|process| !process.alive())
            });
        }
        for child in &mut children {
            let _ = child.kill();
            let _ = child.wait();
        }
        // A killed PostgreSQL leaves its socket's lock file behind.
        for member in std::iter::once(&self.monitor).chain(&self.nodes) {
            remove_stale_socket(member.port, &dir);
        }
    }
}

/// The arguments every `pg_autoctl create` gets: trust on loopback, no
/// TLS, listening on 127.0.0.1 only (pg_autoctl listens on `*` by
/// default).
fn common_create_args() -> [&'static str; 7] {
    [
        "--auth",
        "trust",
        "--no-ssl",
        "--hostname",
        "127.0.0.1",
        "--listen",
        "127.0.0.1",
    ]
}

/// Whether `port` commits a write now, promptly: not read-only, and a
/// transaction id committed without waiting on a standby that is gone.
fn accepts_writes(bindir: &Path, port: u16) -> Result<(), String> {
    let answer = psql(
        bindir,
        port,
        DATABASE,
        &[
            "SET statement_timeout = '3s'",
            "SELECT current_setting('transaction_read_only'), txid_current()",
        ],
        Duration::from_secs(5),
    )?;
    match answer.lines().last() {
        Some(row) if row.starts_with("off|") => Ok(()),
        _ => Err(format!("not writable: {answer}")),
    }
}

/// Runs `statements` through psql on 127.0.0.1:`port`, one transaction
/// each, within `timeout`; what it printed (unaligned, tuples only), or
/// why not. A warning (a commit whose wait for a standby was cancelled)
/// counts as a failure.
fn psql(
    bindir: &Path,
    port: u16,
    database: &str,
    statements: &[&str],
    timeout: Duration,
) -> Result<String, String> {
    let mut command = Command::new(bindir.join("psql"));
    command
        .args(["-X", "-w", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
        .args(["-d", database])
        .env("PGCONNECT_TIMEOUT", "3");
    for statement in statements {
        command.args(["-c", statement]);
    }
    let (status, stdout, stderr) = run_bounded(command, timeout)?;
    if !status.success() || stderr.contains("WARNING") || stderr.contains("ERROR") {
        return Err(format!("psql on port {port}: {status}: {}", stderr.trim()));
    }
    Ok(stdout.trim().to_owned())
}

/// Runs `command` with its output captured, killing it after `timeout`.
fn run_bounded(
    mut command: Command,
    timeout: Duration,
) -> Result<(std::process::ExitStatus, String, String), String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("cannot run {command:?}: {error}"))?;
    // Readers on threads of their own, so that a chatty program cannot
    // fill its pipe and stall.
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = read(child.stdout.take().map(|pipe| Box::new(pipe) as _));
    let stderr = read(child.stderr.take().map(|pipe| Box::new(pipe) as _));
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < timeout => thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{command:?}: no answer within {timeout:?}"));
            }
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    Ok((status, stdout, stderr))
}

/// `pg_autoctl`, from `PATH`; panics saying what to install if missing.
fn pg_autoctl_program() -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("pg_autoctl"))
        .find(|program| program.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the pg_auto_failover tests need pg_autoctl: install the Debian packages \
                 pg-auto-failover-cli and postgresql-15-auto-failover (the extension for \
                 the installed PostgreSQL's version: postgresql-<version>-auto-failover)"
            )
        })
}

/// The PostgreSQL programs to run the formation with:
/// `USERS_TEST_POSTGRES_BINDIR`, or the newest installed PostgreSQL's that
/// has the pg_auto_failover extension. Panics saying what to install.
fn bindir() -> PathBuf {
    pg_autoctl_program();
    if let Some(dir) = std::env::var_os(POSTGRES_BINDIR_VAR) {
        return PathBuf::from(dir);
    }
    let versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("pg_ctl").is_file().then_some((version, bin))
        })
        .collect();
    let has_extension = |version: u32| {
        Path::new(&format!(
            "/usr/share/postgresql/{version}/extension/pgautofailover.control"
        ))
        .is_file()
    };
    versions
        .iter()
        .filter(|(version, _)| has_extension(*version))
        .max_by_key(|(version, _)| *version)
        .map(|(_, bin)| bin.clone())
        .unwrap_or_else(|| {
            let installed: Vec<u32> = versions.iter().map(|(version, _)| *version).collect();
            panic!(
                "the pg_auto_failover tests need its PostgreSQL extension: install the Debian \
                 package postgresql-<version>-auto-failover for an installed PostgreSQL \
                 (installed: {installed:?}; Debian 12: postgresql-15-auto-failover), or set \
                 {POSTGRES_BINDIR_VAR}"
            )
        })
}

/// A process, as /proc shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Process {
    pid: u32,
    /// When it started (clock ticks since boot): tells it from a later
    /// process given the same pid.
    start: u64,
}

impl Process {
    fn of(pid: u32) -> Option<Self> {
        read_stat(pid).map(|stat| Self {
            pid,
            start: stat.start,
        })
    }

    /// Whether it still runs: not gone, not a zombie, not another process
    /// under the same pid.
    fn alive(&self) -> bool {
        read_stat(self.pid).is_some_and(|stat| stat.start == self.start && stat.state != 'Z')
    }
}

/// What /proc/PID/stat says of a process.
struct Stat {
    state: char,
    parent: u32,
    start: u64,
}

fn read_stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
    let fields: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        parent: fields.get(1)?.parse().ok()?,
        // Field 22 of the line; the 20th after the comm.
        start: fields.get(19)?.parse().ok()?,
    })
}

/// Every live process: pid, parent and start.
fn all_processes() -> Vec<(u32, Stat)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, read_stat(pid)?)))
        .filter(|(_, stat)| stat.state != 'Z')
        .collect()
}

/// The live processes of a member: `root` (its pg_autoctl) and its
/// descendants, and any process whose command line names `pgdata` (its
/// postmaster, should pg_autoctl have lost it) with its descendants.
fn node_processes(root: u32, pgdata: &Path) -> BTreeSet<Process> {
    let mut roots: BTreeSet<u32> = processes_mentioning(pgdata)
        .into_iter()
        .map(|process| process.pid)
        .collect();
    roots.insert(root);
    descendants(&roots)
}

/// The processes in `roots` and all their descendants, alive.
fn descendants(roots: &BTreeSet<u32>) -> BTreeSet<Process> {
    let everyone = all_processes();
    let mut found: BTreeSet<u32> = roots
        .iter()
        .copied()
        .filter(|pid| everyone.iter().any(|(other, _)| other == pid))
        .collect();
    loop {
        let before = found.len();
        for (pid, stat) in &everyone {
            if found.contains(&stat.parent) {
                found.insert(*pid);
            }
        }
        if found.len() == before {
            break;
        }
    }
    everyone
        .into_iter()
        .filter(|(pid, _)| found.contains(pid))
        .map(|(pid, stat)| Process {
            pid,
            start: stat.start,
        })
        .collect()
}

/// The live processes whose command line names `path` (PostgreSQL's
/// postmaster runs as `postgres -D PGDATA ...`; pg_autoctl as
/// `pg_autoctl ... --pgdata PGDATA`).
fn processes_mentioning(path: &Path) -> BTreeSet<Process> {
    let needle = path.display().to_string();
    all_processes()
        .into_iter()
        .filter(|(pid, _)| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                String::from_utf8_lossy(&cmdline)
                    .replace('\0', " ")
                    .contains(&needle)
            })
        })
        .map(|(pid, stat)| Process {
            pid,
            start: stat.start,
        })
        .collect()
}

/// Sends `signal` to each of `processes` that is still the process listed.
fn signal(signal: &str, processes: &BTreeSet<Process>) {
    let pids: Vec<String> = processes
        .iter()
        .filter(|process| process.alive())
        .map(|process| process.pid.to_string())
        .collect();
    if pids.is_empty() {
        return;
    }
    // Some may have exited meanwhile: kill then reports them, and that is
    // fine.
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .args(&pids)
        .stderr(Stdio::null())
        .status();
}

/// Polls `done` every 50 ms for up to `timeout`; whether it came true.
fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    loop {
        if done() {
            return true;
        }
        if started.elapsed() >= timeout {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Removes the socket and lock file a killed PostgreSQL of the formation
/// left for `port` in `/var/run/postgresql`: only if the lock file names a
/// data directory inside `dir` and its process is gone.
fn remove_stale_socket(port: u16, dir: &Path) {
    let sockets = Path::new("/var/run/postgresql");
    let lock = sockets.join(format!(".s.PGSQL.{port}.lock"));
    let Ok(text) = std::fs::read_to_string(&lock) else {
        return;
    };
    let mut lines = text.lines();
    let pid = lines.next().and_then(|pid| pid.trim().parse::<u32>().ok());
    let ours = lines
        .next()
        .is_some_and(|data| Path::new(data.trim()).starts_with(dir));
    let running = pid.is_some_and(|pid| read_stat(pid).is_some_and(|stat| stat.state != 'Z'));
    if ours && !running {
        let _ = std::fs::remove_file(&lock);
        let _ = std::fs::remove_file(sockets.join(format!(".s.PGSQL.{port}")));
    }
}

/// `name:reported/goal` for every node, by name.
fn describe(states: &BTreeMap<String, (String, String)>) -> String {
    states
        .iter()
        .map(|(name, (reported, goal))| format!("{name}:{reported}/{goal}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The last `lines` lines of `path`.
fn tail(path: &Path, lines: usize) -> String {
    let mut text = String::new();
    if File::open(path)
        .and_then(|mut file| file.read_to_string(&mut text))
        .is_err()
    {
        return format!("(cannot read {})", path.display());
    }
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The most recently modified file in `dir`.
fn newest_file(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| Some((entry.metadata().ok()?.modified().ok()?, entry.path())))
        .max_by_key(|(modified, _)| *modified)
        .map(|(_, path)| path)
}
