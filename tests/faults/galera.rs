//! A three-node MariaDB Galera cluster ([`users_tests::GaleraCluster`])
//! under three replicas of the server, each on its own first node, called
//! through one client crate that knows all three replicas. Creates with
//! request ids run alongside deliberate conflicts: renames of a few shared
//! users from every replica at once, and batches sharing request ids in
//! shuffled orders, which Galera resolves at commit by certification
//! (the losers get 1213, "Deadlock found", and the server runs them
//! again). Then one node is killed with SIGKILL. The survivors stall until
//! they have declared it gone and formed a primary component of two; the
//! replica whose first node it was connects to the next one. Nothing
//! acknowledged is lost or stored twice.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::future::join_all;
use rand::seq::SliceRandom;
use tokio::task::{JoinHandle, block_in_place};
use users_client::{UsersClient, pb};
use users_server::db::Isolation;
use users_server::db::mysql::{ServerWrites, WriteCheck, establish};
use users_tests::GaleraCluster;

use crate::{
    crash::{acknowledged_but_not_stored_once, stored_users},
    load::{CreateLoad, Outcomes},
    server::ServerProcess,
};

/// Callers creating users, each with a request id.
const WORKERS: usize = 8;
/// Creates acknowledged before the kill, and again after it.
const ACKNOWLEDGED: usize = 200;
/// Users that every replica renames at once.
const SHARED_USERS: usize = 3;
/// Calls at once in each conflicting round: renames of one shared user,
/// then batches sharing request ids.
const RACERS: usize = 9;
/// Request ids every batch of a round shares.
const SHARED_IDS: usize = 10;
/// The node killed: the first node of replica 1 only, and the second or
/// third of the others.
const VICTIM: usize = 1;
/// What the server logs each time it runs a transaction again.
const RETRY_LINE: &str = "transaction failed, running it again";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn galera_node_killed_under_conflicting_load_loses_no_acknowledged_create() {
    let test_started = Instant::now();
    let cluster = block_in_place(GaleraCluster::start);
    println!(
        "galera: 3 nodes Synced, database created, in {:?}",
        cluster.start_time()
    );
    // Replica i connects to node i first, then to the next ones.
    let replicas: Vec<_> = (0..3)
        .map(|replica| ServerProcess::start(&cluster.url_from(replica), &[]))
        .collect();
    let client = client_of(&replicas).await;
    let mut shared = Vec::new();
    for k in 0..SHARED_USERS {
        shared.push(client.create_user(format!("shared-{k}")).await.unwrap().id);
    }

    let load = CreateLoad::start(&client, WORKERS, "galera");
    let conflicts = Conflicts::start(&client, shared.clone());
    load.wait_for_acknowledged(ACKNOWLEDGED).await;
    let mut kills = Vec::new();
    for kill in 0..crate::soak() {
        // Each node is the first of one replica, and a later one of the
        // other two.
        let victim = (VICTIM + kill) % 3;
        let replica = &replicas[victim];
        let ok_before = replica.log_lines_with("code=Ok").len();
        let unavailable_before = replica.log_lines_with("code=Unavailable").len();
        let warnings_before = replica.log_lines_with("WARN").len();

        block_in_place(|| cluster.kill(victim));
        let killed_at = Instant::now();
        let reformed_after =
            block_in_place(|| cluster.wait_for_cluster_size(2, Duration::from_secs(30)));
        let ok_when_reformed = replica.log_lines_with("code=Ok").len();
        load.wait_for_acknowledged(ACKNOWLEDGED).await;
        let warnings = replica.log_lines_with("WARN");
        let ok_now = replica.log_lines_with("code=Ok").len();
        let unavailable = replica.log_lines_with("code=Unavailable").len() - unavailable_before;

        // The node comes back while the load goes on: a state transfer
        // from a survivor brings it up to date.
        let rejoining_at = Instant::now();
        block_in_place(|| cluster.restart(victim));
        let rejoined_at = Instant::now();
        load.wait_for_acknowledged(ACKNOWLEDGED / 2).await;
        kills.push(Kill {
            victim,
            killed_at,
            reformed_after,
            rejoining_at,
            rejoined_at,
            served_after_reforming: ok_now - ok_when_reformed,
            served_after_kill: ok_now - ok_before,
            unavailable,
            first_warning: warnings.get(warnings_before).cloned(),
            transfer: state_transfer(&cluster.error_log(victim)),
        });
    }
    let outcomes = load.stop().await;
    let conflicts = conflicts.stop().await;

    let mut failures = outcomes.failures_by_code();
    for call in &conflicts.calls {
        if let Err(code) = &call.outcome {
            *failures.entry(format!("{} {code}", call.kind)).or_default() += 1;
        }
    }
    // When each failed call was answered.
    let failed_when: Vec<String> = outcomes
        .unacknowledged()
        .map(|call| {
            (
                "create",
                call.sent + call.latency,
                call.outcome.as_ref().err(),
            )
        })
        .chain(
            conflicts
                .calls
                .iter()
                .filter(|call| call.outcome.is_err())
                .map(|call| {
                    (
                        call.kind,
                        call.sent + call.latency,
                        call.outcome.as_ref().err(),
                    )
                }),
        )
        .map(|(kind, answered, code)| {
            let code = code.map_or("-", String::as_str);
            format!("{kind} {code} {}", when(&kills, answered))
        })
        .collect();
    let retried: Vec<String> = replicas
        .iter()
        .flat_map(|replica| replica.log_lines_with(RETRY_LINE))
        .collect();
    let certification_conflicts = retried
        .iter()
        .filter(|line| line.contains("Deadlock found"))
        .count();
    let slowest_ok = outcomes
        .calls
        .iter()
        .filter(|call| call.outcome.is_ok())
        .map(|call| call.latency)
        .chain(
            conflicts
                .calls
                .iter()
                .filter(|call| call.outcome.is_ok())
                .map(|call| call.latency),
        )
        .max()
        .unwrap_or_default();

    // Everything acknowledged is on every node, the rejoined ones too.
    block_in_place(|| cluster.wait_until_caught_up(Duration::from_secs(30)));
    let lost = acknowledged_but_not_stored_once(&client, &outcomes).await;
    let batches_wrong = conflicts.batch_users_not_stored_once(&client).await;
    let counters: Vec<String> = block_in_place(|| cluster.status())
        .iter()
        .enumerate()
        .filter_map(|(node, status)| {
            let status = status.as_ref()?;
            Some(format!(
                "node {node}: {} certification failures, {} aborted by appliers, {} replayed",
                status.cert_failures, status.bf_aborts, status.replays
            ))
        })
        .collect();
    let revisions = conflicts.revisions(&client, &shared).await;
    let lost_renames: i64 = revisions
        .iter()
        .map(|(_, acknowledged, now)| (*acknowledged as i64 + 1 - now).max(0))
        .sum();
    let same_revision = conflicts.same_revision();
    for renames in &same_revision {
        println!(
            "galera: renames of user {} in round {} all returned revision {}:",
            renames[0].user, renames[0].round, renames[0].revision
        );
        for renamed in renames {
            for (index, replica) in replicas.iter().enumerate() {
                for line in replica.log_lines_with(&renamed.request_id) {
                    println!(
                        "galera:   answered {}, replica {index}: {line}",
                        when(&kills, renamed.answered)
                    );
                }
            }
        }
    }
    let last_victim = kills.last().expect("a node was killed").victim;
    let on_rejoined = ServerProcess::start(&cluster.node_url(last_victim), &[]);
    let lost_on_rejoined =
        acknowledged_but_not_stored_once(&on_rejoined.client().await, &outcomes).await;

    for (n, kill) in kills.iter().enumerate() {
        let stall = longest_pause(
            &outcomes,
            &conflicts.calls,
            kill.killed_at,
            kill.rejoining_at,
        );
        let rejoin_stall = longest_pause(
            &outcomes,
            &conflicts.calls,
            kill.rejoining_at,
            kill.rejoined_at,
        );
        println!(
            "galera kill {}: node {} (replica {}'s first) SIGKILLed; the survivors formed a \
             primary component of 2 after {:?}; longest pause in acknowledgements after the \
             kill: {stall:?}; replica {} answered {} calls OK after the kill ({} after the \
             survivors re-formed) and UNAVAILABLE {} times (the client sent those again), \
             first warning: {}; the node rejoined in {:?} ({}), longest pause meanwhile: \
             {rejoin_stall:?}",
            n + 1,
            kill.victim,
            kill.victim,
            kill.reformed_after,
            kill.victim,
            kill.served_after_kill,
            kill.served_after_reforming,
            kill.unavailable,
            kill.first_warning.as_deref().unwrap_or("-"),
            kill.rejoined_at - kill.rejoining_at,
            kill.transfer,
        );
    }
    println!(
        "galera: {} creates acknowledged, {} failed; conflicting rounds: {}, renames {} \
         (ok {}), batches {} (ok {}, sent again after UNAVAILABLE: {}); failures by code: \
         {failures:?} ({failed_when:?}); slowest call answered OK: {slowest_ok:?}",
        outcomes.acknowledged().count(),
        outcomes.unacknowledged().count(),
        conflicts.rounds,
        conflicts.count("rename"),
        conflicts.ok("rename"),
        conflicts.count("batch"),
        conflicts.ok("batch"),
        conflicts.batches_sent_again,
    );
    println!(
        "galera: shared users (id, renames acknowledged, revision now): {revisions:?}; \
         renames acknowledged but overwritten: {lost_renames}; acknowledged with the revision \
         of another: {}",
        same_revision.iter().map(Vec::len).sum::<usize>()
    );
    println!(
        "galera: transactions run again by the servers: {} ({certification_conflicts} after \
         a certification conflict, 1213; since the last start, {counters:?}); first: {}",
        retried.len(),
        retried.first().map_or("-", String::as_str)
    );
    // The other causes: lost connections (reads), and transactions the
    // node rolled back without an error, which the server notices (its own
    // rows gone) and runs again.
    let mut other_causes: std::collections::BTreeMap<&str, usize> = Default::default();
    for line in retried
        .iter()
        .filter(|line| !line.contains("Deadlock found"))
    {
        let cause = line.split("error=").nth(1).unwrap_or(line);
        *other_causes.entry(cause).or_default() += 1;
    }
    println!("galera: transactions run again for other causes: {other_causes:?}");
    println!(
        "galera: acknowledged creates not stored exactly once: {lost} (on the rejoined node \
         {last_victim}: {lost_on_rejoined}); batch users not stored exactly once: \
         {batches_wrong}; whole test {:?}",
        test_started.elapsed()
    );

    // Why the conflicting calls that failed did.
    for call in conflicts.calls.iter().filter(|call| call.outcome.is_err()) {
        let Some(request_id) = &call.request_id else {
            continue;
        };
        for (index, replica) in replicas.iter().enumerate() {
            for line in replica.log_lines_with(request_id) {
                if line.contains("WARN") || line.contains("ERROR") {
                    println!(
                        "galera: failed {} answered {}, replica {index}: {line}",
                        call.kind,
                        when(&kills, call.sent + call.latency)
                    );
                }
            }
        }
    }
    // What a server said when it failed a call in a way nobody should see.
    for (index, replica) in replicas.iter().enumerate() {
        for line in replica.log_lines_with("code=Internal") {
            let request_id = line
                .split("request_id=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or("-");
            println!("galera: replica {index} answered INTERNAL: {line}");
            for cause in replica.log_lines_with(request_id) {
                println!("galera:   {cause}");
            }
        }
    }
    assert_eq!(lost, 0, "every acknowledged create is stored exactly once");
    assert_eq!(lost_on_rejoined, 0, "the rejoined node has every one");
    assert_eq!(batches_wrong, 0, "every batch's users are stored once");
    assert!(
        same_revision.is_empty() && lost_renames == 0,
        "every acknowledged rename was applied on its own, none overwritten"
    );
    for code in failures.keys() {
        assert!(
            code.ends_with("Unavailable"),
            "calls fail only UNAVAILABLE while a node dies, never {code}: {failures:?}"
        );
    }
    assert!(
        outcomes.unacknowledged().count() <= 2 * kills.len(),
        "few creates fail: the client sends them again: {failures:?}"
    );
    assert_eq!(
        conflicts.ok("batch"),
        conflicts.count("batch"),
        "every batch succeeds, sent again after UNAVAILABLE"
    );
    assert!(
        conflicts.ok("rename") > 0 && conflicts.ok("batch") > 0,
        "the conflicting calls ran"
    );
    assert!(
        certification_conflicts > 0,
        "the nodes' transactions conflicted, and the servers ran the losers again"
    );
    for kill in &kills {
        let stall = longest_pause(
            &outcomes,
            &conflicts.calls,
            kill.killed_at,
            kill.rejoining_at,
        );
        assert!(
            stall < Duration::from_secs(10),
            "the survivors took writes again within seconds: {stall:?}"
        );
        assert!(
            kill.first_warning.is_some(),
            "replica {} logs the loss of its first node:\n{}",
            kill.victim,
            replicas[kill.victim].log_tail(30)
        );
        assert!(
            kill.served_after_reforming > 0,
            "replica {} serves again, on another node:\n{}",
            kill.victim,
            replicas[kill.victim].log_tail(30)
        );
    }
}

/// One node's death and return.
struct Kill {
    victim: usize,
    killed_at: Instant,
    /// Until the survivors were Synced in a primary component of two.
    reformed_after: Duration,
    rejoining_at: Instant,
    rejoined_at: Instant,
    /// Calls the replica whose first node died answered OK after the kill,
    /// and after the survivors re-formed.
    served_after_kill: usize,
    served_after_reforming: usize,
    /// Calls it answered UNAVAILABLE after the kill.
    unavailable: usize,
    /// Its first warning after the kill.
    first_warning: Option<String>,
    /// How the node caught up when it rejoined.
    transfer: &'static str,
}

/// When `instant` was, in terms of the kills and rejoins.
fn when(kills: &[Kill], instant: Instant) -> String {
    match kills.iter().rposition(|kill| kill.killed_at <= instant) {
        Some(n) if instant >= kills[n].rejoining_at => format!(
            "{:.2?} after node {} began to rejoin (kill {})",
            instant - kills[n].rejoining_at,
            kills[n].victim,
            n + 1
        ),
        Some(n) => format!("{:.2?} after kill {}", instant - kills[n].killed_at, n + 1),
        None => "before the first kill".to_owned(),
    }
}

/// Whether the last start of a node (its error log `log`) caught up by a
/// full copy (SST) or by the write sets it missed (IST).
fn state_transfer(log: &str) -> &'static str {
    let last_start = log.rfind("Starting MariaDB").unwrap_or(0);
    let log = &log[last_start..];
    // The rsync script runs for both; "SST received" follows either.
    if log.contains("rsync SST completed on joiner") {
        "SST, a full copy by rsync"
    } else if log.contains("IST received") {
        "IST, the write sets it missed"
    } else {
        "no state transfer"
    }
}

/// A client that knows every replica, with the default retry policy.
async fn client_of(replicas: &[ServerProcess]) -> UsersClient {
    let mut builder = UsersClient::builder(format!("http://{}", replicas[0].addr));
    for replica in &replicas[1..] {
        builder = builder.endpoint(format!("http://{}", replica.addr));
    }
    builder.connect().await.unwrap()
}

/// The longest time between `since` and `until` without a call answered
/// OK (creates and conflicting calls alike), counting from `since`: how
/// long the cluster took no write.
fn longest_pause(
    outcomes: &Outcomes,
    conflicts: &[ConflictCall],
    since: Instant,
    until: Instant,
) -> Duration {
    let mut answered: Vec<Instant> = outcomes
        .calls
        .iter()
        .filter(|call| call.outcome.is_ok())
        .map(|call| call.sent + call.latency)
        .chain(
            conflicts
                .iter()
                .filter(|call| call.outcome.is_ok())
                .map(|call| call.sent + call.latency),
        )
        .filter(|answered| (since..until).contains(answered))
        .collect();
    answered.sort();
    answered.push(until);
    std::iter::once(since)
        .chain(answered.iter().copied())
        .zip(answered.iter().copied())
        .map(|(before, after)| after - before)
        .max()
        .unwrap_or_default()
}

/// One conflicting call.
#[derive(Debug)]
struct ConflictCall {
    /// `"rename"` or `"batch"`.
    kind: &'static str,
    sent: Instant,
    latency: Duration,
    /// The status code, if it failed.
    outcome: Result<(), String>,
    /// The server's id of the call (`x-request-id`), if an answer came.
    request_id: Option<String>,
}

/// Rounds of conflicting calls, one after another until stopped.
struct Conflicts {
    stopping: Arc<AtomicBool>,
    task: JoinHandle<ConflictReport>,
}

#[derive(Debug, Default)]
struct ConflictReport {
    rounds: usize,
    calls: Vec<ConflictCall>,
    /// Each batch user's name, and the id every batch got for it.
    batch_users: HashMap<String, i64>,
    /// Batches sent again after UNAVAILABLE (their request ids make that
    /// safe, as the client does for its own batches).
    batches_sent_again: usize,
    /// Every rename that succeeded.
    renamed: Vec<Renamed>,
}

/// A rename that succeeded.
#[derive(Debug)]
struct Renamed {
    user: i64,
    round: usize,
    /// The revision (etag) it returned: its own, if it was applied on its
    /// own.
    revision: i64,
    /// The server's id of the call, in its log.
    request_id: String,
    answered: Instant,
}

impl Conflicts {
    fn start(client: &UsersClient, shared: Vec<i64>) -> Self {
        let stopping = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let client = client.clone();
            let stopping = Arc::clone(&stopping);
            async move {
                let mut report = ConflictReport::default();
                while !stopping.load(Ordering::Relaxed) {
                    let round = report.rounds;
                    renames(&client, shared[round % shared.len()], round, &mut report).await;
                    batches(&client, round, &mut report).await;
                    report.rounds += 1;
                }
                report
            }
        });
        Self { stopping, task }
    }

    async fn stop(self) -> ConflictReport {
        self.stopping.store(true, Ordering::Relaxed);
        self.task.await.expect("the conflicting calls panicked")
    }
}

impl ConflictReport {
    fn count(&self, kind: &str) -> usize {
        self.calls.iter().filter(|call| call.kind == kind).count()
    }

    fn ok(&self, kind: &str) -> usize {
        self.calls
            .iter()
            .filter(|call| call.kind == kind && call.outcome.is_ok())
            .count()
    }

    /// Successful renames that returned the same revision of the same user
    /// as another: both acknowledged, one overwritten by the other.
    fn same_revision(&self) -> Vec<Vec<&Renamed>> {
        let mut by_revision: HashMap<(i64, i64), Vec<&Renamed>> = HashMap::new();
        for renamed in &self.renamed {
            by_revision
                .entry((renamed.user, renamed.revision))
                .or_default()
                .push(renamed);
        }
        by_revision
            .into_values()
            .filter(|renames| renames.len() > 1)
            .collect()
    }

    /// For each shared user: renames acknowledged, and its revision now
    /// (1 at creation, one more for each rename applied).
    async fn revisions(&self, client: &UsersClient, shared: &[i64]) -> Vec<(i64, usize, i64)> {
        let mut revisions = Vec::new();
        for &id in shared {
            let user = client.get_user(id).await.expect("a shared user");
            let acknowledged = self.renamed.iter().filter(|r| r.user == id).count();
            revisions.push((id, acknowledged, user.etag.parse().expect("a revision")));
        }
        revisions
    }

    /// How many batch users are not stored exactly once under the id their
    /// batches got.
    async fn batch_users_not_stored_once(&self, client: &UsersClient) -> usize {
        let stored = stored_users(client).await;
        self.batch_users
            .iter()
            .filter(|(name, id)| stored.get(*name) != Some(&vec![**id]))
            .inspect(|(name, id)| {
                eprintln!("{name}: batches got {id}, stored {:?}", stored.get(*name));
            })
            .count()
    }
}

/// `RACERS` unconditional renames of user `id` at once, each on the
/// replica the client's balancing picks, sent once (a rename is not safe to
/// send again). Through the raw stub, to read the `x-request-id` the server
/// logged each under.
async fn renames(client: &UsersClient, id: i64, round: usize, report: &mut ConflictReport) {
    let renames = join_all((0..RACERS).map(|i| {
        let mut raw = client.raw();
        async move {
            let sent = Instant::now();
            let request = pb::UpdateUserRequest {
                user: Some(pb::User {
                    id,
                    name: format!("shared-r{round}-{i}"),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["name".to_owned()],
                }),
            };
            let answer = raw.update_user(request).await;
            (sent, sent.elapsed(), answer)
        }
    }))
    .await;
    for (sent, latency, answer) in renames {
        let metadata = match &answer {
            Ok(response) => response.metadata(),
            Err(status) => status.metadata(),
        };
        let request_id = request_id_of(metadata);
        let outcome = match answer {
            Ok(response) => {
                let user = response
                    .into_inner()
                    .user
                    .expect("UpdateUser returns the user");
                report.renamed.push(Renamed {
                    user: id,
                    round,
                    revision: user.etag.parse().expect("an etag is a revision"),
                    request_id: request_id.clone().unwrap_or_default(),
                    answered: sent + latency,
                });
                Ok(())
            }
            Err(status) => Err(format!("{:?}", status.code())),
        };
        report.calls.push(ConflictCall {
            kind: "rename",
            sent,
            latency,
            outcome,
            request_id,
        });
    }
}

/// The `x-request-id` a server answered with: its id of the call, in its
/// log.
fn request_id_of(metadata: &tonic::metadata::MetadataMap) -> Option<String> {
    metadata
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// `RACERS` batches at once, each creating the same `SHARED_IDS` request
/// ids in its own order, each on the replica the client's balancing picks:
/// every batch gets the same user for each request id.
async fn batches(client: &UsersClient, round: usize, report: &mut ConflictReport) {
    let requests: Vec<pb::CreateUserRequest> = (0..SHARED_IDS)
        .map(|i| pb::CreateUserRequest {
            name: format!("batch-{round}-{i}"),
            request_id: uuid::Uuid::new_v4().to_string(),
        })
        .collect();
    let batches = join_all((0..RACERS).map(|_| {
        let mut requests = requests.clone();
        requests.shuffle(&mut rand::rng());
        let client = client.clone();
        async move {
            let sent = Instant::now();
            let mut sent_again = 0;
            loop {
                // Through the raw stub: the client's own batch call gives
                // every entry a new request id.
                let answer = client
                    .raw()
                    .batch_create_users(pb::BatchCreateUsersRequest {
                        requests: requests.clone(),
                    })
                    .await;
                match answer {
                    Err(status) if status.code() == tonic::Code::Unavailable && sent_again < 4 => {
                        sent_again += 1;
                        tokio::time::sleep(Duration::from_millis(50 << sent_again)).await;
                    }
                    answer => {
                        let request_id = request_id_of(match &answer {
                            Ok(response) => response.metadata(),
                            Err(status) => status.metadata(),
                        });
                        let users = answer.map(|response| response.into_inner().users);
                        return (sent, sent.elapsed(), sent_again, users, request_id);
                    }
                }
            }
        }
    }))
    .await;
    for (sent, latency, sent_again, users, request_id) in batches {
        report.batches_sent_again += usize::from(sent_again > 0);
        let outcome = match users {
            Ok(users) => {
                assert_eq!(users.len(), SHARED_IDS);
                for user in users {
                    let id = *report
                        .batch_users
                        .entry(user.name.clone())
                        .or_insert(user.id);
                    assert_eq!(id, user.id, "{} is one user in every batch", user.name);
                }
                Ok(())
            }
            Err(status) => Err(format!("{:?}", status.code())),
        };
        report.calls.push(ConflictCall {
            kind: "batch",
            sent,
            latency,
            outcome,
            request_id,
        });
    }
}

/// Two replicas, each on a node of its own: whatever one acknowledges, the
/// other reads at once, as on a single server (the session's
/// `wsrep_sync_wait`: a read or an update first waits until its node has
/// applied what the cluster had committed), and an etag read through one
/// is good for a conditional write through the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn galera_a_write_through_one_node_is_read_through_another_at_once() {
    let cluster = block_in_place(GaleraCluster::start);
    // A node's writes read back what they wrote: a rollback under them
    // can go unreported.
    let server = ServerWrites::default();
    establish(&cluster.node_url(0), Isolation::default(), &server)
        .await
        .unwrap();
    assert_eq!(server.check(), WriteCheck::ReadBack);
    let first = ServerProcess::start(&cluster.node_url(0), &[]);
    let second = ServerProcess::start(&cluster.node_url(1), &[]);
    let (a, b) = (first.client().await, second.client().await);
    let rounds = 200 * crate::soak();
    for round in 0..rounds {
        let created = a.create_user(format!("user-{round}")).await.unwrap();
        let read = b.get_user(created.id).await;
        assert_eq!(
            read.as_ref().ok(),
            Some(&created),
            "round {round}: {read:?}"
        );
        let renamed = b
            .rename_user(created.id, format!("renamed-{round}"), Some(&created.etag))
            .await
            .unwrap_or_else(|error| panic!("round {round}: {error}"));
        assert_eq!(
            a.get_user(created.id).await.unwrap(),
            renamed,
            "round {round}"
        );
    }
    println!("galera: {rounds} writes through node 0 read and renamed at once through node 1");
}
