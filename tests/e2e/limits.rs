//! What a request and a connection may take: calls beyond
//! `--max-concurrent-calls` are refused after a short wait, requests over
//! `--max-request-size` fail without being read, connections whose peer
//! stops answering HTTP/2 pings are closed, and connections past
//! `--max-connection-age` are told to go away.

use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use users_client::ClientError;
use users_tests::{Backend, Tally, spawn_app_with};

on_backend!(sqlite: Sqlite;
    calls_beyond_the_limit_wait_briefly_then_are_resource_exhausted,
    a_request_over_the_size_limit_is_out_of_range,
    a_connection_that_stops_answering_pings_is_closed,
    a_connection_past_its_max_age_is_told_to_go_away,
);

async fn a_request_over_the_size_limit_is_out_of_range(backend: Backend) {
    let app = spawn_app_with(backend, |config| config.max_request_size = 1024).await;

    let too_big = app.client.create_user("x".repeat(2000)).await;
    match too_big {
        Err(ClientError::OutOfRange(_)) => {}
        other => panic!("expected OUT_OF_RANGE, got {other:?}"),
    }
    // Under the limit, on the same connection.
    let users = app
        .client
        .batch_create_users((0..10).map(|i| format!("user-{i}")))
        .await
        .unwrap();
    assert_eq!(users.len(), 10);
}

/// HTTP/2 frame types and flags this test reads or writes.
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const ACK: u8 = 0x1;

/// Opens an HTTP/2 connection by hand: the client preface and an empty
/// SETTINGS frame. [`frames_until`] then acknowledges the server's
/// settings and nothing else: it never answers a PING.
async fn silent_http2_connection(addr: std::net::SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    stream
}

/// Reads frames until the server closes the connection, or sends a frame
/// of type `last` (within 10 s); returns the frame types seen and when it
/// stopped.
async fn frames_until(mut stream: TcpStream, last: Option<u8>) -> (Vec<u8>, Instant) {
    let mut types = Vec::new();
    let read = async {
        let mut header = [0_u8; 9];
        while stream.read_exact(&mut header).await.is_ok() {
            let length = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
            let (kind, flags) = (header[3], header[4]);
            types.push(kind);
            if Some(kind) == last {
                break;
            }
            let mut payload = vec![0; length];
            if stream.read_exact(&mut payload).await.is_err() {
                break;
            }
            if kind == SETTINGS && flags & ACK == 0 {
                let ack = [0, 0, 0, SETTINGS, ACK, 0, 0, 0, 0];
                if stream.write_all(&ack).await.is_err() {
                    break;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the server closes the connection, or sends the frame awaited");
    (types, Instant::now())
}

async fn a_connection_that_stops_answering_pings_is_closed(backend: Backend) {
    let interval = Duration::from_millis(200);
    let app = spawn_app_with(backend, |config| {
        config.http2_keepalive_interval = interval;
        config.http2_keepalive_timeout = interval;
    })
    .await;
    let opened = Instant::now();
    let (frames, closed) = frames_until(silent_http2_connection(app.addr).await, None).await;
    assert!(frames.contains(&PING), "the server pinged: {frames:?}");
    let lasted = closed - opened;
    assert!(
        lasted >= interval * 2 && lasted < Duration::from_secs(5),
        "closed one interval and one timeout after going quiet: {lasted:?}"
    );
    // Clients that answer pings are unaffected.
    tokio::time::sleep(interval * 3).await;
    app.client.create_user("still here").await.unwrap();
}

async fn a_connection_past_its_max_age_is_told_to_go_away(backend: Backend) {
    let age = Duration::from_millis(300);
    let app = spawn_app_with(backend, |config| config.max_connection_age = Some(age)).await;
    let opened = Instant::now();
    let connection = silent_http2_connection(app.addr).await;
    let (frames, told) = frames_until(connection, Some(GOAWAY)).await;
    assert_eq!(frames.last(), Some(&GOAWAY), "{frames:?}");
    assert!(
        told - opened >= age,
        "not before its age: {:?}",
        told - opened
    );
    // The client crate reconnects by itself.
    tokio::time::sleep(age * 2).await;
    app.client.create_user("reconnected").await.unwrap();
}

async fn calls_beyond_the_limit_wait_briefly_then_are_resource_exhausted(backend: Backend) {
    let wait = Duration::from_millis(100);
    let app = spawn_app_with(backend, |config| {
        config.max_concurrent_calls = 2;
        config.max_call_wait = wait;
    })
    .await;
    // Two creates hold both turns, waiting for the lock.
    let lock = app.database().lock_for_writes().await;
    let started = Instant::now();
    let refused = Tally::default();
    let calls = futures_util::future::join_all((0..5).map(|i| {
        let client = app.client.clone();
        let refused = &refused;
        async move {
            let created = client.create_user(format!("user-{i}")).await;
            refused.add_if(created.is_err());
            (created, started.elapsed())
        }
    }));
    // Released once the calls beyond the limit are back: they were refused
    // while the two holding the turns still waited, however slow the
    // machine.
    let release = async {
        refused.reaches(3, "calls beyond the limit").await;
        // Health checks are not counted: served while the calls hold every turn.
        let mut health = tonic_health::pb::health_client::HealthClient::new(
            tonic::transport::Channel::from_shared(format!("http://{}", app.addr))
                .unwrap()
                .connect()
                .await
                .unwrap(),
        );
        health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .expect("health is served at the limit");
        lock.release().await;
    };
    let (calls, ()) = tokio::join!(calls, release);

    let mut succeeded = 0;
    let mut refused = 0;
    for (created, took) in &calls {
        match created {
            Ok(_) => succeeded += 1,
            Err(ClientError::Other { code, error }) => {
                assert_eq!(*code, tonic::Code::ResourceExhausted, "{error:?}");
                assert_eq!(error.reason, "TOO_MANY_CALLS");
                assert!(*took >= wait, "refused after the wait: {took:?}");
                refused += 1;
            }
            Err(other) => panic!("expected RESOURCE_EXHAUSTED, got {other:?}"),
        }
    }
    assert_eq!((succeeded, refused), (2, 3), "{calls:?}");
    // The turns are given back: as many calls as before succeed.
    for i in 0..3 {
        app.client.create_user(format!("after-{i}")).await.unwrap();
    }
}
