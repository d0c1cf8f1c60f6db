//! Shutdown with a bounded drain, and health that tells the truth: on
//! SIGTERM health turns NOT_SERVING at once, new connections are refused,
//! calls in flight get `--drain-timeout` to finish, then the server closes
//! what is left (a stream whose reader stopped reading included) and exits
//! 0. While the database does not answer, health is NOT_SERVING.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, HealthCheckResponse, health_check_response::ServingStatus,
    health_client::HealthClient,
};
use users_client::pb;
use users_tests::{Backend, PrivateMysql, PrivatePostgres, StopMode, TestDatabase};

use crate::{outage::PrivateDatabase, server::ServerProcess};

const DRAIN: Duration = Duration::from_secs(1);

async fn channel(server: &ServerProcess) -> Channel {
    Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// The statuses `Watch` reports for `service`, as they come.
async fn watch(server: &ServerProcess, service: &str) -> tonic::Streaming<HealthCheckResponse> {
    HealthClient::new(channel(server).await)
        .watch(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .expect("Watch")
        .into_inner()
}

/// The next status `updates` reports, within `within`.
async fn next_status(
    updates: &mut tonic::Streaming<HealthCheckResponse>,
    within: Duration,
) -> ServingStatus {
    let update = tokio::time::timeout(within, updates.next())
        .await
        .expect("a status change in time")
        .expect("the Watch stream goes on")
        .expect("a status");
    update.status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_for_the_drain_timeout_then_closes_a_stalled_stream_and_exits_0() {
    let db = TestDatabase::create(Backend::Sqlite).await;
    let drain = format!("{}ms", DRAIN.as_millis());
    let mut server = ServerProcess::start(&db.url(), &["--drain-timeout", &drain]);
    let client = server.client().await;
    // Enough users that an export fills the HTTP/2 windows of a reader
    // that reads nothing, and stays in flight.
    let padding = "x".repeat(200);
    for batch in 0..20 {
        client
            .batch_create_users((0..1000).map(|i| format!("{batch:02}-{i:04}-{padding}")))
            .await
            .unwrap();
    }
    let mut stalled = client
        .raw()
        .export_users(pb::ExportUsersRequest::default())
        .await
        .expect("the export starts")
        .into_inner();
    let _first = stalled.message().await.unwrap();
    let mut health = watch(&server, "users.v1.UserService").await;
    assert_eq!(
        next_status(&mut health, DRAIN).await,
        ServingStatus::Serving
    );

    let terminated = Instant::now();
    server.terminate();
    assert_eq!(
        next_status(&mut health, DRAIN).await,
        ServingStatus::NotServing,
        "health turns NOT_SERVING as soon as shutdown begins"
    );
    let not_serving_after = terminated.elapsed();
    // The listener closes just after health turns: under load, allow it a
    // moment (still well inside the drain).
    let refused = async {
        while tokio::net::TcpStream::connect(server.addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    assert!(
        tokio::time::timeout(DRAIN / 2, refused).await.is_ok(),
        "new connections are refused while draining"
    );

    let status = tokio::task::block_in_place(|| server.wait_for_exit(DRAIN * 5))
        .expect("the server exits once the drain timeout is over");
    let exited_after = terminated.elapsed();
    println!(
        "SIGTERM with a stalled export and --drain-timeout {DRAIN:?}: NOT_SERVING after \
         {not_serving_after:?}, new connection refused, exited {status} after {exited_after:?}"
    );
    assert!(status.success(), "exit code 0: {status}");
    assert!(
        exited_after >= DRAIN,
        "the stalled export had the drain timeout to finish: {exited_after:?}"
    );
    assert!(
        server.log_lines_with("closing their connections").len() == 1,
        "the log says the drain timed out:\n{}",
        server.log_tail(10)
    );
    // The stalled stream is cut, not left hanging.
    let rest = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = stalled.message().await {}
    })
    .await;
    assert!(rest.is_ok(), "the stalled export's connection was closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_not_serving_while_postgres_is_down_and_serving_when_it_is_back() {
    health_follows_the_database::<PrivatePostgres>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_not_serving_while_mysql_is_down_and_serving_when_it_is_back() {
    health_follows_the_database::<PrivateMysql>().await;
}

async fn health_follows_the_database<D: PrivateDatabase>() {
    let name = D::NAME;
    let (database, url) = tokio::task::block_in_place(D::start_with_database);
    let server = ServerProcess::start(&url, &["--health-check-interval", "200ms"]);
    let mut service = watch(&server, "users.v1.UserService").await;
    let mut whole = watch(&server, "").await;
    let within = Duration::from_secs(3);
    assert_eq!(
        next_status(&mut service, within).await,
        ServingStatus::Serving
    );
    assert_eq!(
        next_status(&mut whole, within).await,
        ServingStatus::Serving
    );

    let stopped = Instant::now();
    tokio::task::block_in_place(|| database.go_down(StopMode::Fast));
    assert_eq!(
        next_status(&mut service, within).await,
        ServingStatus::NotServing
    );
    assert_eq!(
        next_status(&mut whole, within).await,
        ServingStatus::NotServing
    );
    let noticed_down = stopped.elapsed();

    let started = Instant::now();
    tokio::task::block_in_place(|| database.come_back());
    assert_eq!(
        next_status(&mut service, within).await,
        ServingStatus::Serving
    );
    assert_eq!(
        next_status(&mut whole, within).await,
        ServingStatus::Serving
    );
    let noticed_back = started.elapsed();
    println!(
        "health with --health-check-interval 200ms: NOT_SERVING {noticed_down:?} after \
         {name} was stopped, SERVING {noticed_back:?} after it was started again"
    );
    assert!(server.log_lines_with("health is NOT_SERVING").len() == 1);
}
