//! Read replicas: reads served by a PostgreSQL hot standby
//! ([`users_tests::PrivatePostgres::standby_of`], held behind with
//! `recovery_min_apply_delay`), writes by the primary.
//!
//! - A client reads its own writes at once, through a standby two seconds
//!   behind: its calls carry its writes' consistency token, and the server
//!   sends them to the primary until the standby has replayed that far,
//!   then to the standby. A call without the token reads the standby and
//!   misses the write: the standby really serves reads.
//! - A standby further behind than `--max-replica-lag`, or down, is
//!   skipped: reads go to the primary, none fails.
//! - While the primary is down, reads go on from the standby.

use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use users_client::{ClientError, FindUsers, UsersClient, pb};
use users_tests::{PrivatePostgres, StopMode, free_port, http_get};

use crate::server::ServerProcess;

/// A server on `primary` reading from `standby`, with metrics; the
/// address it serves them on.
fn serve(
    primary: &PrivatePostgres,
    standby: &PrivatePostgres,
    max_lag: &str,
) -> (ServerProcess, std::net::SocketAddr) {
    let metrics: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let server = ServerProcess::start(
        &primary.url("postgres"),
        &[
            "--read-replica-url",
            &standby.url("postgres"),
            "--max-replica-lag",
            max_lag,
            "--metrics-listen",
            &metrics.to_string(),
        ],
    );
    (server, metrics)
}

/// The value of the one sample of `metric` (with any labels) on the
/// server's `/metrics` page.
async fn metric(metrics: std::net::SocketAddr, metric: &str) -> f64 {
    let page = http_get(metrics, "/metrics").await.body;
    let samples: Vec<f64> = page
        .lines()
        .filter(|line| line.starts_with(&format!("{metric}{{")))
        .map(|line| line.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(samples.len(), 1, "one sample of {metric} in:\n{page}");
    samples[0]
}

/// Reads the standby served.
async fn standby_reads(metrics: std::net::SocketAddr) -> f64 {
    let page = http_get(metrics, "/metrics").await.body;
    page.lines()
        .find(|line| line.starts_with("users_db_reads_total{") && !line.contains("primary"))
        .map(|line| line.rsplit(' ').next().unwrap().parse().unwrap())
        .unwrap_or_else(|| panic!("no standby read counter in:\n{page}"))
}

/// Waits until the server takes the standby as serving (`true`) or not.
async fn wait_for_serving(metrics: std::net::SocketAddr, serving: bool, within: Duration) {
    let started = Instant::now();
    let want = if serving { 1.0 } else { 0.0 };
    while metric(metrics, "users_db_read_replica_serving").await != want {
        assert!(
            started.elapsed() < within,
            "the replica is not {} after {within:?}",
            if serving { "serving" } else { "skipped" }
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A create sent without the client's consistency token, as a client
/// unaware of tokens would.
async fn create_without_token(client: &UsersClient, name: &str) -> pb::User {
    let request = pb::CreateUserRequest {
        name: name.to_owned(),
        request_id: String::new(),
    };
    client
        .raw()
        .create_user(request)
        .await
        .expect("CreateUser")
        .into_inner()
        .user
        .unwrap()
}

/// The ids of the users named `name`, read without a consistency token.
async fn find_without_token(client: &UsersClient, name: &str) -> Vec<i64> {
    let request = pb::FindUsersRequest {
        name: name.to_owned(),
        ..Default::default()
    };
    let page = client.raw().find_users(request).await.expect("FindUsers");
    page.into_inner().users.iter().map(|user| user.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reads_its_own_writes_through_a_lagging_replica() {
    const DELAY: Duration = Duration::from_secs(2);
    let primary = PrivatePostgres::start();
    let standby = PrivatePostgres::standby_of(&primary, DELAY);
    // The bound is loose: the standby, always about two seconds behind,
    // serves every read it is allowed to.
    let (server, metrics) = serve(&primary, &standby, "1h");
    wait_for_serving(metrics, true, Duration::from_secs(30)).await;
    let client = server.client().await;

    let rounds = 20 * crate::soak();
    for round in 0..rounds {
        let name = format!("reader-{round}");
        let user = client.create_user(&name).await.unwrap();
        let page = client
            .find_users(&FindUsers::new().name(&name))
            .await
            .unwrap();
        assert_eq!(
            page.users,
            std::slice::from_ref(&user),
            "round {round}: FindUsers"
        );
        assert_eq!(
            client.get_user(user.id).await.unwrap(),
            user,
            "round {round}: GetUser"
        );
        let exported: Vec<_> = client
            .export_users(FindUsers::new().name(&name))
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(
            exported,
            std::slice::from_ref(&user),
            "round {round}: ExportUsers"
        );

        let renamed = client
            .rename_user(user.id, format!("{name}-renamed"), None)
            .await
            .unwrap();
        assert_eq!(
            client.get_user(user.id).await.unwrap(),
            renamed,
            "round {round}: renamed"
        );
        client.delete_user(user.id, None).await.unwrap();
        assert!(
            matches!(
                client.get_user(user.id).await,
                Err(ClientError::NotFound(_))
            ),
            "round {round}: deleted"
        );
    }
    let token = client.consistency_token().expect("writes return a token");
    println!("{rounds} rounds of write-then-read, each read saw its write; last token {token}");

    // Without the token, reads go to the standby, which has not replayed
    // the write yet.
    let unseen = create_without_token(&client, "unseen").await;
    assert_eq!(
        find_without_token(&client, "unseen").await,
        [] as [i64; 0],
        "a read without the token is served by the standby, {DELAY:?} behind"
    );
    let started = Instant::now();
    while find_without_token(&client, "unseen").await.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the standby never replayed the create"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "a create read without the token: seen {:?} later (standby delay {DELAY:?})",
        started.elapsed()
    );
    assert_eq!(find_without_token(&client, "unseen").await, [unseen.id]);

    // Once the standby has replayed past the token (and the server has
    // seen it do so, at its next check), reads with it go there: each read
    // sees the write wherever it is served, and one of them is served by
    // the standby within seconds (given up on after 30).
    let started = Instant::now();
    loop {
        let before = standby_reads(metrics).await;
        let page = client
            .find_users(&FindUsers::new().name("unseen"))
            .await
            .unwrap();
        assert_eq!(page.users.len(), 1, "a read with the token sees the write");
        if standby_reads(metrics).await == before + 1.0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "a read whose token the standby has replayed is served by it"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "a read with the token served by the standby {:?} after the standby had the write",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_too_far_behind_or_down_is_skipped() {
    const DELAY: Duration = Duration::from_secs(3);
    let primary = PrivatePostgres::start();
    let standby = PrivatePostgres::standby_of(&primary, DELAY);
    let (server, metrics) = serve(&primary, &standby, "300ms");
    wait_for_serving(metrics, true, Duration::from_secs(30)).await;
    let client = server.client().await;

    // A write the standby holds back for 3 s: past 300 ms it is skipped,
    // and reads without a token see the write on the primary.
    let user = create_without_token(&client, "behind").await;
    // Seen any time before the standby replays the write (after DELAY),
    // the lag was seen; after that, nothing is left to see.
    let started = Instant::now();
    wait_for_serving(metrics, false, DELAY).await;
    println!(
        "standby skipped {:?} after a write it holds back",
        started.elapsed()
    );
    assert_eq!(find_without_token(&client, "behind").await, [user.id]);
    wait_for_serving(metrics, true, DELAY * 3).await;
    println!(
        "standby serving again {:?} after the write",
        started.elapsed()
    );

    // Down: every read goes to the primary, none fails.
    standby.stop(StopMode::Fast);
    for _ in 0..50 {
        assert_eq!(find_without_token(&client, "behind").await, [user.id]);
    }
    wait_for_serving(metrics, false, Duration::from_secs(30)).await;

    standby.start_again();
    let started = Instant::now();
    wait_for_serving(metrics, true, Duration::from_secs(30)).await;
    println!(
        "standby serving {:?} after it started again",
        started.elapsed()
    );
    let before = standby_reads(metrics).await;
    assert_eq!(find_without_token(&client, "behind").await, [user.id]);
    assert_eq!(
        standby_reads(metrics).await,
        before + 1.0,
        "the standby serves again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_on_from_the_replica_while_the_primary_is_down() {
    let primary = PrivatePostgres::start();
    let standby = PrivatePostgres::standby_of(&primary, Duration::ZERO);
    let (server, metrics) = serve(&primary, &standby, "1s");
    wait_for_serving(metrics, true, Duration::from_secs(30)).await;
    let client = server.client().await;
    let created = client
        .batch_create_users(["Ada", "Grace", "Edsger"])
        .await
        .unwrap();
    // Until the standby has the users, the token sends reads to the primary.
    let started = Instant::now();
    let before = standby_reads(metrics).await;
    while standby_reads(metrics).await == before {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the standby never caught up"
        );
        client.find_users(&FindUsers::new()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    primary.stop(StopMode::Fast);
    for _ in 0..20 {
        let page = client.find_users(&FindUsers::new()).await.unwrap();
        assert_eq!(page.users, created, "served by the standby");
        assert_eq!(client.get_user(created[0].id).await.unwrap(), created[0]);
    }
    assert!(
        matches!(
            client.create_user("Barbara").await,
            Err(ClientError::Unavailable(_))
        ),
        "writes need the primary"
    );

    primary.start_again();
    let started = Instant::now();
    let barbara = loop {
        match client.create_user("Barbara").await {
            Ok(user) => break user,
            Err(ClientError::Unavailable(_)) if started.elapsed() < Duration::from_secs(30) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("writes did not resume: {error}"),
        }
    };
    let page = client.find_users(&FindUsers::new()).await.unwrap();
    assert_eq!(
        page.users.last(),
        Some(&barbara),
        "read after the write, with its token"
    );
}
