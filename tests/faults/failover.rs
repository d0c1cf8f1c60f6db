//! Three replicas of the server on one PostgreSQL database, called through
//! one client crate that knows all three; one replica is killed with
//! SIGKILL in the middle of a mixed load. The client sends the calls that
//! were on it, or would have gone to it, to the others: no call fails,
//! every acknowledged create is stored exactly once, and reads see them.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use users_client::{FindUsers, UsersClient};
use users_tests::{Backend, TestDatabase};

use crate::{
    crash::acknowledged_but_not_stored_once,
    load::{self, Attempt, Outcomes},
    server::ServerProcess,
};

/// Callers, each creating a user and reading it back, over and over.
const WORKERS: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_under_load_fails_no_safe_call() {
    let db = TestDatabase::create(Backend::Postgres).await;
    let mut replicas: Vec<_> = (0..3)
        .map(|_| ServerProcess::start(&db.url(), &[]))
        .collect();

    let mut outcomes = Outcomes::default();
    let mut read_failures = Vec::new();
    for kill in 0..crate::soak() {
        // Where the replicas serve now: a restarted one serves on a new port.
        let client = client_of(&replicas).await;
        let load = MixedLoad::start(&client, &format!("failover-{kill}"));
        load.wait_for_acknowledged(300).await;
        let killed_at = Instant::now();
        let victim = &mut replicas[kill % 3];
        victim.kill();
        load.wait_for_acknowledged(300).await;
        let served_after: Vec<_> = replicas
            .iter()
            .map(|replica| replica.log_lines_with("latency_us").len())
            .collect();
        let (calls, failures) = load.stop().await;
        outcomes.calls.extend(calls.calls);
        read_failures.extend(failures);
        println!(
            "failover x{}: replica {} killed {:?} into the load; calls logged by each replica \
             since they started: {served_after:?}",
            kill + 1,
            kill % 3,
            killed_at.elapsed()
        );
        replicas[kill % 3].restart();
    }

    let client = client_of(&replicas).await;
    let lost = acknowledged_but_not_stored_once(&client, &outcomes).await;
    println!(
        "failover: {} creates acknowledged, failed: {:?}, reads failed: {}, acknowledged \
         but not stored exactly once: {lost}",
        outcomes.acknowledged().count(),
        outcomes.failures_by_code(),
        read_failures.len()
    );
    assert_eq!(
        outcomes.unacknowledged().count(),
        0,
        "{:?}",
        outcomes.failures_by_code()
    );
    assert!(read_failures.is_empty(), "{read_failures:?}");
    assert_eq!(lost, 0);
    for replica in &replicas {
        assert!(
            !replica.log_lines_with("latency_us").is_empty(),
            "every replica took calls"
        );
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

/// Workers that create a user (with a request id), then read it back by id
/// and by name, until [`stop`](Self::stop).
struct MixedLoad {
    stopping: Arc<AtomicBool>,
    acknowledged: Arc<AtomicUsize>,
    workers: Vec<tokio::task::JoinHandle<(Outcomes, Vec<String>)>>,
}

impl MixedLoad {
    fn start(client: &UsersClient, label: &str) -> Self {
        let stopping = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(AtomicUsize::new(0));
        let workers = (0..WORKERS)
            .map(|worker| {
                let client = client.clone();
                let stopping = Arc::clone(&stopping);
                let acknowledged = Arc::clone(&acknowledged);
                let label = format!("{label}-{worker}");
                tokio::spawn(async move {
                    let mut outcomes = Outcomes::default();
                    let mut read_failures = Vec::new();
                    while !stopping.load(Ordering::Relaxed) {
                        let attempt = Attempt {
                            name: format!("{label}-{}", outcomes.calls.len()),
                            request_id: uuid::Uuid::new_v4().to_string(),
                        };
                        let call = load::create(&client, attempt).await;
                        if let Ok(id) = call.outcome {
                            acknowledged.fetch_add(1, Ordering::Relaxed);
                            if let Err(why) = read_back(&client, id, &call.attempt.name).await {
                                read_failures.push(why);
                            }
                        }
                        outcomes.calls.push(call);
                    }
                    (outcomes, read_failures)
                })
            })
            .collect();
        Self {
            stopping,
            acknowledged,
            workers,
        }
    }

    async fn wait_for_acknowledged(&self, count: usize) {
        let target = self.acknowledged.load(Ordering::Relaxed) + count;
        let started = Instant::now();
        while self.acknowledged.load(Ordering::Relaxed) < target {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the load made no progress"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn stop(self) -> (Outcomes, Vec<String>) {
        self.stopping.store(true, Ordering::Relaxed);
        let mut outcomes = Outcomes::default();
        let mut read_failures = Vec::new();
        for worker in self.workers {
            let (calls, failures) = worker.await.expect("a load worker panicked");
            outcomes.calls.extend(calls.calls);
            read_failures.extend(failures);
        }
        (outcomes, read_failures)
    }
}

/// Reads user `id` back by id and by name, on whichever replicas the
/// client picks; why not, if it could not.
async fn read_back(client: &UsersClient, id: i64, name: &str) -> Result<(), String> {
    let user = client
        .get_user(id)
        .await
        .map_err(|error| format!("get {id}: {error}"))?;
    if user.name != name {
        return Err(format!("get {id}: {user:?}, not {name}"));
    }
    let found = client
        .find_users(&FindUsers::new().name(name))
        .await
        .map_err(|error| format!("find {name}: {error}"))?;
    match found.users.as_slice() {
        [only] if only.id == id => Ok(()),
        other => Err(format!("find {name}: {other:?}")),
    }
}
