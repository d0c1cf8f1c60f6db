//! SIGHUP reloads the bearer tokens file: the new tokens work and the old
//! ones stop working, without a restart and without dropping connections;
//! no token ever reaches the log.

use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tonic::{Code, Request};
use users_client::pb;
use users_tests::{Backend, TestDatabase};

use crate::server::ServerProcess;

fn create(token: &str) -> Request<pb::CreateUserRequest> {
    let mut request = Request::new(pb::CreateUserRequest {
        name: "John".into(),
        request_id: String::new(),
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_tokens_without_dropping_connections() {
    let db = TestDatabase::create(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "first-token-5f2a\n").unwrap();
    let mut server =
        ServerProcess::start(&db.url(), &["--auth-tokens-file", tokens.to_str().unwrap()]);
    let mut raw = server.client().await.raw();
    raw.create_user(create("first-token-5f2a")).await.unwrap();
    // A connection that idles through the reload.
    let mut idle = tokio::net::TcpStream::connect(server.addr).await.unwrap();

    std::fs::write(&tokens, "second-token-9c1d\n").unwrap();
    let reloaded = Instant::now();
    server.hang_up();
    while raw.create_user(create("second-token-9c1d")).await.is_err() {
        assert!(
            reloaded.elapsed() < Duration::from_secs(5),
            "the new token works after SIGHUP"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = reloaded.elapsed();
    let old = raw
        .create_user(create("first-token-5f2a"))
        .await
        .unwrap_err();
    assert_eq!(old.code(), Code::Unauthenticated);

    assert!(server.is_running(), "reloaded, not restarted");
    // It may hold the server's HTTP/2 settings; what matters is no end.
    let mut buffer = [0_u8; 1024];
    let closed = tokio::time::timeout(Duration::from_millis(300), async {
        loop {
            match idle.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_err(), "the idle connection was not closed");
    assert_eq!(server.log_lines_with("reloaded the bearer tokens").len(), 1);
    let log = server.log();
    assert!(
        !log.contains("first-token") && !log.contains("second-token"),
        "no token in the log"
    );
    println!("SIGHUP: new token accepted {took:?} later, old refused, connections kept");
    drop((idle, raw));
    server.terminate();
    assert!(
        tokio::task::block_in_place(|| server.wait_for_exit(Duration::from_secs(30))).is_some()
    );
}
