//! [`GaleraCluster`]: three MariaDB servers of a test's own that replicate
//! to each other with Galera (every node takes writes; a commit is
//! certified by the whole cluster before it is acknowledged), on loopback,
//! which a test may kill one at a time without disturbing anyone else.
//!
//! How it is set up follows "Recipe C" of the team's HA notes: node 0's
//! data directory is made by `mariadb-install-db`, node 0 bootstraps the
//! cluster (`--wsrep-new-cluster`), nodes 1 and 2 join it and receive a
//! copy of its data by rsync (state snapshot transfer, `wsrep_sst_rsync`),
//! and each counts as up once it reports `wsrep_local_state_comment =
//! Synced` in a cluster of the expected size.

use std::{
    collections::{BTreeMap, HashSet},
    fs::File,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Mutex, PoisonError},
    thread,
    time::{Duration, Instant},
};

use crate::{
    private_mysql::{
        SMALL, assert_success, create_tmpdir, install_data_directory, mysql_owner, program,
    },
    system::free_port,
};

/// Where Galera's provider library is, if not at [`DEFAULT_PROVIDER`].
pub const GALERA_PROVIDER_VAR: &str = "USERS_TEST_GALERA_PROVIDER";

/// Where Debian's `galera-4` package installs the provider.
const DEFAULT_PROVIDER: &str = "/usr/lib/galera/libgalera_smm.so";

/// Nodes in the cluster: the smallest that keeps a majority (a primary
/// component) when one of them dies.
const NODES: usize = 3;

/// How long a node may take to start and be Synced, its state snapshot
/// transfer included (measured: 1-5 s each on the 2-core machine).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(90);

/// The database [`GaleraCluster::url`] names, made once the cluster is up.
pub const DATABASE: &str = "users";

/// Three `mariadbd` nodes replicating with Galera, each listening for SQL
/// on a free loopback port, with a user `root` that needs no password.
/// Every node is killed, and the directory that holds them deleted, on
/// drop (after a failed start too); when the test panicked, the nodes'
/// error logs are first copied to a directory that stays, named on stderr.
///
/// Nodes are numbered 0, 1, 2.
#[derive(Debug)]
pub struct GaleraCluster {
    /// Holds each node's data directory `nI/`, its option file `nI.cnf`,
    /// error log `nI.err`, and socket.
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
    /// How long [`start`](Self::start) took.
    start_time: Duration,
}

#[derive(Debug)]
struct Node {
    /// SQL clients.
    sql_port: u16,
    /// Group communication (`gmcast.listen_addr`).
    group_port: u16,
    /// Incremental state transfers to this node (`ist.recv_addr`).
    ist_port: u16,
    /// State snapshot transfers to this node (`wsrep_sst_receive_address`).
    sst_port: u16,
    /// The running `mariadbd` (leader of its own process group, so that
    /// a kill takes its state-transfer helpers along); `None` while down.
    process: Mutex<Option<Child>>,
}

/// What one node says of itself and of the cluster (`SHOW GLOBAL STATUS
/// LIKE 'wsrep%'`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// `wsrep_cluster_size`: the nodes in its component.
    pub cluster_size: u32,
    /// `wsrep_local_state_comment`: `Synced`, `Joining`, `Donor/Desynced`,
    /// `Initialized` (outside the primary component), ...
    pub state: String,
    /// `wsrep_cluster_status` is `Primary`: its component holds a majority
    /// and takes writes (otherwise queries fail with 1047).
    pub primary: bool,
    /// `wsrep_last_committed`: the last write set it committed, the same
    /// number on every node for the same write.
    pub last_committed: i64,
    /// `wsrep_local_cert_failures`: its transactions that failed
    /// certification (a conflicting write set was ordered first).
    pub cert_failures: u64,
    /// `wsrep_local_bf_aborts`: its transactions aborted by a write set
    /// of another node being applied.
    pub bf_aborts: u64,
    /// `wsrep_local_replays`: its transactions that passed certification
    /// but were aborted before they committed, and were applied again.
    pub replays: u64,
}

impl GaleraCluster {
    /// Makes node 0's data directory, bootstraps the cluster from it, lets
    /// the other two join, waits until all three are Synced in a cluster of
    /// three, and creates the empty database [`DATABASE`]. Panics, with the
    /// tails of the nodes' error logs, if a node does not come up within
    /// [`STARTUP_TIMEOUT`].
    pub fn start() -> Self {
        let started = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("users-test-galera-")
            .tempdir()
            .expect("cannot create a temporary directory");
        let mut ports = distinct_free_ports(4 * NODES).into_iter();
        let mut port = || ports.next().expect("enough ports");
        let nodes = (0..NODES)
            .map(|_| Node {
                sql_port: port(),
                group_port: port(),
                ist_port: port(),
                sst_port: port(),
                process: Mutex::new(None),
            })
            .collect();
        // Made before anything can fail, so that Drop cleans up after a
        // failed start too.
        let mut cluster = Self {
            dir,
            nodes,
            start_time: Duration::ZERO,
        };
        let provider = provider();
        for node in 0..NODES {
            std::fs::create_dir(cluster.datadir(node)).expect("cannot create a data directory");
            std::fs::write(cluster.options_file(node), cluster.options(node, &provider))
                .expect("cannot write a node's option file");
        }
        if let Some((uid, gid)) = mysql_owner() {
            for path in std::iter::once(cluster.dir.path().to_owned())
                .chain((0..NODES).map(|node| cluster.datadir(node)))
            {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                    .expect("cannot hand the cluster's directory to the mysql user");
            }
        }

        for node in 0..NODES {
            create_tmpdir(&cluster.tmpdir(node));
        }
        install_data_directory(&cluster.datadir(0), &cluster.tmpdir(0));

        cluster.launch(0, Some("--wsrep-new-cluster"));
        cluster.wait_until_synced(&[0], 1);
        // Both at once: the second waits for the donor to finish the first
        // transfer (it retries every second), which still beats one after
        // the other.
        cluster.launch(1, None);
        cluster.launch(2, None);
        cluster.wait_until_synced(&[0, 1, 2], NODES as u32);

        cluster.sql(0, &format!("CREATE DATABASE {DATABASE}"));
        cluster.start_time = started.elapsed();
        cluster
    }

    /// How long [`start`](Self::start) took, the database included.
    pub fn start_time(&self) -> Duration {
        self.start_time
    }

    /// A URL for [`DATABASE`] that names every node, node 0 first:
    /// `mysql://root@127.0.0.1:P0,127.0.0.1:P1,127.0.0.1:P2/users`.
    pub fn url(&self) -> String {
        self.url_from(0)
    }

    /// Like [`url`](Self::url), with node `first` first and then the others
    /// in order: replicas given different first nodes spread their writes
    /// over the cluster.
    pub fn url_from(&self, first: usize) -> String {
        let hosts: Vec<String> = (0..NODES)
            .map(|offset| {
                format!(
                    "127.0.0.1:{}",
                    self.nodes[(first + offset) % NODES].sql_port
                )
            })
            .collect();
        format!("mysql://root@{}/{DATABASE}", hosts.join(","))
    }

    /// A URL for [`DATABASE`] on node `node` alone.
    pub fn node_url(&self, node: usize) -> String {
        format!(
            "mysql://root@127.0.0.1:{}/{DATABASE}",
            self.nodes[node].sql_port
        )
    }

    /// Node `node`'s SQL port.
    pub fn sql_port(&self, node: usize) -> u16 {
        self.nodes[node].sql_port
    }

    /// Kills node `node` with SIGKILL (its state-transfer helpers too, if
    /// any): no shutdown, as when its machine dies. The others notice when
    /// it has been silent for `evs.suspect_timeout` (2 s here), and form a
    /// new primary component of two.
    pub fn kill(&self, node: usize) {
        let mut process = self.nodes[node]
            .process
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut child = process.take().expect("the node is running");
        kill_group(&mut child);
    }

    /// Starts node `node` again after [`kill`](Self::kill): it rejoins the
    /// cluster and returns once it is Synced in a cluster of every running
    /// node. As the packaged service does (`galera_recovery`), it first
    /// reads from InnoDB which write set it committed last (`mariadbd
    /// --wsrep-recover`; a crash leaves `seqno: -1` in `grastate.dat`),
    /// so that a survivor sends it only the write sets it missed (IST,
    /// from its gcache) rather than a full copy (SST).
    pub fn restart(&self, node: usize) {
        let position = self.recovered_position(node);
        let start_position = position.map(|position| format!("--wsrep-start-position={position}"));
        self.launch(node, start_position.as_deref());
        let running: Vec<usize> = (0..NODES).filter(|&n| self.is_running(n)).collect();
        self.wait_until_synced(&running, running.len() as u32);
    }

    /// The position (`UUID:SEQNO`) node `node` committed last, as InnoDB
    /// recovers it, if it knows one.
    fn recovered_position(&self, node: usize) -> Option<String> {
        let log = self.dir.path().join(format!("n{node}.recover.err"));
        let _ = std::fs::remove_file(&log);
        let output = Command::new(program("mariadbd"))
            .arg(format!(
                "--defaults-file={}",
                self.options_file(node).display()
            ))
            .arg("--wsrep-recover")
            .arg(format!("--log-error={}", log.display()))
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|error| panic!("cannot run mariadbd --wsrep-recover: {error}"));
        let text = String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
        assert!(
            output.status.success(),
            "mariadbd --wsrep-recover failed on node {node}: {}\n{text}",
            output.status
        );
        let position = text
            .lines()
            .filter_map(|line| line.split_once("WSREP: Recovered position: "))
            .map(|(_, position)| position.trim().to_owned())
            .next_back()?;
        (!position.ends_with(":-1")).then_some(position)
    }

    /// Every node's status; `None` for a node that is down or does not
    /// answer.
    pub fn status(&self) -> Vec<Option<NodeStatus>> {
        (0..NODES).map(|node| self.node_status(node)).collect()
    }

    /// Waits until every running node is Synced, in a primary component
    /// of `size` nodes; how long that took. Panics after `timeout`.
    pub fn wait_for_cluster_size(&self, size: u32, timeout: Duration) -> Duration {
        let started = Instant::now();
        let running: Vec<usize> = (0..NODES).filter(|&n| self.is_running(n)).collect();
        loop {
            let statuses: Vec<_> = running.iter().map(|&n| self.node_status(n)).collect();
            let reformed = statuses.iter().all(|status| {
                status.as_ref().is_some_and(|status| {
                    status.primary && status.state == "Synced" && status.cluster_size == size
                })
            });
            if reformed {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < timeout,
                "the running nodes {running:?} did not form a cluster of {size} within \
                 {timeout:?}: {statuses:?}\n{}",
                self.log_tails(15)
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every running node has committed the same last write
    /// set, so that a read on any of them sees every write acknowledged
    /// anywhere (Galera applies other nodes' writes after it acknowledges
    /// them: reads may lag, `wsrep_sync_wait` is 0 by default).
    pub fn wait_until_caught_up(&self, timeout: Duration) {
        let started = Instant::now();
        loop {
            let committed: Vec<Option<i64>> = (0..NODES)
                .filter(|&n| self.is_running(n))
                .map(|n| self.node_status(n).map(|status| status.last_committed))
                .collect();
            if committed.iter().all(Option::is_some)
                && committed.windows(2).all(|pair| pair[0] == pair[1])
            {
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "the running nodes did not catch up within {timeout:?}: last committed {committed:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last `lines` lines of node `node`'s error log.
    pub fn log_tail(&self, node: usize, lines: usize) -> String {
        let log = self.error_log(node);
        let log: Vec<_> = log.lines().collect();
        log[log.len().saturating_sub(lines)..].join("\n")
    }

    /// Node `node`'s whole error log (read lossily: with
    /// `wsrep_log_conflicts` it quotes the rows of conflicting write sets,
    /// bytes that need not be UTF-8).
    pub fn error_log(&self, node: usize) -> String {
        let path = self.dir.path().join(format!("n{node}.err"));
        match std::fs::read(&path) {
            Ok(log) => String::from_utf8_lossy(&log).into_owned(),
            Err(error) => format!("(no error log: {}: {error})", path.display()),
        }
    }

    /// Every node's error log tail, for a failure message.
    fn log_tails(&self, lines: usize) -> String {
        (0..NODES)
            .map(|node| format!("--- node {node}:\n{}", self.log_tail(node, lines)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Starts `mariadbd` for node `node`, with `option` if any
    /// (`--wsrep-new-cluster` bootstraps a new cluster).
    fn launch(&self, node: usize, option: Option<&str>) {
        let mut process = self.nodes[node]
            .process
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        assert!(process.is_none(), "node {node} is already running");
        let output = File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("n{node}.out")))
            .expect("cannot open a node's output file");
        let mut command = Command::new(program("mariadbd"));
        // --defaults-file must come first.
        command.arg(format!(
            "--defaults-file={}",
            self.options_file(node).display()
        ));
        command.args(option);
        let child = command
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("cannot share the output file"))
            .stderr(output)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start mariadbd: {error}"));
        *process = Some(child);
    }

    /// Waits until each of `nodes` is Synced in a cluster of `size`.
    fn wait_until_synced(&self, nodes: &[usize], size: u32) {
        let started = Instant::now();
        loop {
            let mut synced = true;
            for &node in nodes {
                self.assert_still_running(node);
                synced &= self.node_status(node).is_some_and(|status| {
                    status.state == "Synced" && status.primary && status.cluster_size == size
                });
            }
            if synced {
                return;
            }
            assert!(
                started.elapsed() < STARTUP_TIMEOUT,
                "Galera nodes {nodes:?} were not Synced in a cluster of {size} within \
                 {STARTUP_TIMEOUT:?}: {:?}\n{}",
                self.status(),
                self.log_tails(20)
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Panics, with its error log, if node `node`'s `mariadbd` has exited.
    fn assert_still_running(&self, node: usize) {
        let mut process = self.nodes[node]
            .process
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let child = process.as_mut().expect("the node was started");
        if let Some(status) = child.try_wait().expect("cannot check mariadbd") {
            *process = None;
            drop(process);
            panic!(
                "Galera node {node} exited ({status}) before it was Synced:\n{}",
                self.log_tails(25)
            );
        }
    }

    fn is_running(&self, node: usize) -> bool {
        self.nodes[node]
            .process
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// What node `node` reports, if it runs and answers.
    fn node_status(&self, node: usize) -> Option<NodeStatus> {
        if !self.is_running(node) {
            return None;
        }
        // SHOW, not information_schema: it answers outside the primary
        // component too.
        let output = self
            .client(node)
            .args([
                "--batch",
                "--skip-column-names",
                "--execute",
                "SHOW GLOBAL STATUS LIKE 'wsrep%'",
            ])
            .output()
            .unwrap_or_else(|error| panic!("cannot run mariadb: {error}"));
        if !output.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let values: BTreeMap<&str, &str> = text
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .collect();
        Some(NodeStatus {
            cluster_size: values.get("wsrep_cluster_size")?.parse().ok()?,
            state: (*values.get("wsrep_local_state_comment")?).to_owned(),
            primary: *values.get("wsrep_cluster_status")? == "Primary",
            last_committed: values.get("wsrep_last_committed")?.parse().ok()?,
            cert_failures: values.get("wsrep_local_cert_failures")?.parse().ok()?,
            bf_aborts: values.get("wsrep_local_bf_aborts")?.parse().ok()?,
            replays: values.get("wsrep_local_replays")?.parse().ok()?,
        })
    }

    /// Runs `statement` on node `node`; panics if it fails.
    fn sql(&self, node: usize, statement: &str) {
        let output = self
            .client(node)
            .args(["--execute", statement])
            .output()
            .unwrap_or_else(|error| panic!("cannot run mariadb: {error}"));
        assert_success("mariadb", &[statement], &output);
    }

    /// MariaDB's command-line client, reaching node `node` as `root` over
    /// TCP and ignoring the machine's option files.
    fn client(&self, node: usize) -> Command {
        let mut command = Command::new(program("mariadb"));
        command.stdin(Stdio::null()).args([
            "--no-defaults".to_owned(),
            "--protocol=tcp".to_owned(),
            "--host=127.0.0.1".to_owned(),
            format!("--port={}", self.nodes[node].sql_port),
            "--user=root".to_owned(),
            "--connect-timeout=1".to_owned(),
        ]);
        command
    }

    fn datadir(&self, node: usize) -> PathBuf {
        self.dir.path().join(format!("n{node}"))
    }

    fn tmpdir(&self, node: usize) -> PathBuf {
        self.dir.path().join(format!("n{node}.tmp"))
    }

    fn options_file(&self, node: usize) -> PathBuf {
        self.dir.path().join(format!("n{node}.cnf"))
    }

    /// Node `node`'s option file: Recipe C, with free ports, except for
    /// the view install timeout. A dead node is suspected after 2 s of
    /// silence (`evs.suspect_timeout`; the keepalive must stay below a
    /// third of it, or mariadbd refuses to start), and declared inactive at
    /// once when every survivor suspects it, so the survivors stall about
    /// 3 s. The recipe's `evs.inactive_timeout=PT3S` also makes Galera
    /// derive `evs.install_timeout` = 1.5 s, which a busy 2-core machine
    /// missed about once in 20 view changes: every node then fell into a
    /// non-primary component of its own, and two survivors of a kill never
    /// formed a primary one again (that takes all the members of the last
    /// one, or `pc.bootstrap`). Galera's own install timeout, 7.5 s, must
    /// be below `evs.inactive_timeout`, hence 10 s; it only matters when a
    /// view change is slow, not when a node dies.
    ///
    /// `wsrep_log_conflicts` puts every conflict (the winning and the
    /// aborted statement) in the error log.
    fn options(&self, node: usize, provider: &Path) -> String {
        let dir = self.dir.path().display();
        let me = &self.nodes[node];
        let peers: Vec<String> = self
            .nodes
            .iter()
            .map(|peer| format!("127.0.0.1:{}", peer.group_port))
            .collect();
        let user = match mysql_owner() {
            Some(_) => "user=mysql\n",
            None => "",
        };
        let small = SMALL
            .map(|option| option.trim_start_matches("--"))
            .join("\n");
        format!(
            "[mysqld]
{user}datadir={dir}/n{node}
tmpdir={dir}/n{node}.tmp
socket={dir}/n{node}.sock
pid-file={dir}/n{node}.pid
log-error={dir}/n{node}.err
port={sql}
bind-address=127.0.0.1
skip-name-resolve
{small}
binlog_format=ROW
innodb_autoinc_lock_mode=2
wsrep_on=ON
wsrep_log_conflicts=ON
wsrep_provider={provider}
wsrep_cluster_name=users-test
wsrep_node_name=n{node}
wsrep_cluster_address=gcomm://{peers}
wsrep_node_address=127.0.0.1:{group}
wsrep_sst_method=rsync
wsrep_sst_receive_address=127.0.0.1:{sst}
wsrep_provider_options=\"gmcast.listen_addr=tcp://127.0.0.1:{group};ist.recv_addr=127.0.0.1:{ist};gcache.size=16M;evs.keepalive_period=PT0.5S;evs.suspect_timeout=PT2S;evs.inactive_timeout=PT10S;evs.install_timeout=PT7.5S\"
",
            sql = me.sql_port,
            group = me.group_port,
            ist = me.ist_port,
            sst = me.sst_port,
            provider = provider.display(),
            peers = peers.join(","),
        )
    }
}

impl Drop for GaleraCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let process = node
                .process
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(mut child) = process.take() {
                kill_group(&mut child);
            }
        }
        if thread::panicking() {
            self.keep_error_logs();
        }
    }
}

impl GaleraCluster {
    /// Copies the nodes' error logs to a directory that outlives the test
    /// (the data directories go), and says where: a failed test's
    /// evidence.
    fn keep_error_logs(&self) {
        let Ok(kept) = tempfile::Builder::new()
            .prefix("users-test-galera-logs-")
            .tempdir()
            .map(tempfile::TempDir::keep)
        else {
            return;
        };
        for node in 0..NODES {
            let name = format!("n{node}.err");
            let _ = std::fs::copy(self.dir.path().join(&name), kept.join(&name));
        }
        eprintln!(
            "the Galera nodes' error logs are kept in {}",
            kept.display()
        );
    }
}

/// SIGKILL to `child`'s process group (it leads one of its own), then
/// reaps it.
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

/// `count` free loopback ports, no two alike.
fn distinct_free_ports(count: usize) -> Vec<u16> {
    let mut seen = HashSet::new();
    let mut ports = Vec::new();
    while ports.len() < count {
        let port = free_port();
        if seen.insert(port) {
            ports.push(port);
        }
    }
    ports
}

/// Galera's provider library: `USERS_TEST_GALERA_PROVIDER`, or Debian's.
fn provider() -> PathBuf {
    let path = std::env::var_os(GALERA_PROVIDER_VAR)
        .map_or_else(|| PathBuf::from(DEFAULT_PROVIDER), PathBuf::from);
    assert!(
        path.is_file(),
        "the Galera fault tests need Galera's provider library, not found at {}: install \
         galera-4 (Debian: a dependency of mariadb-server) or set {GALERA_PROVIDER_VAR}",
        path.display()
    );
    path
}
