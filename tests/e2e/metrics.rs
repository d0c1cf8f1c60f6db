//! `--metrics-listen`: calls by method and code, their latency, and the
//! database pools, in the Prometheus text format at `/metrics`.

use std::net::SocketAddr;

use users_client::{ClientError, UsersClient, pb};
use users_tests::{Backend, TestApp, http_get, spawn_app_with};

on_every_backend!(
    calls_are_counted_by_method_and_code_and_timed,
    calls_refused_before_their_handler_are_counted_too,
    the_pools_are_read_when_scraped,
    only_metrics_is_served,
);

async fn spawn_app_with_metrics(backend: Backend) -> TestApp {
    spawn_app_with(backend, |config| {
        config.metrics_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await
}

async fn calls_refused_before_their_handler_are_counted_too(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "the-token\n").unwrap();
    let app = spawn_app_with(backend, |config| {
        config.metrics_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.auth_tokens_file = Some(tokens);
        config.max_request_size = 1024;
    })
    .await;
    let refused = app.client.create_user("Ada").await.unwrap_err();
    assert_eq!(refused.code(), Some(tonic::Code::Unauthenticated));
    let client = UsersClient::builder(&app.endpoint)
        .bearer_token("the-token")
        .connect()
        .await
        .unwrap();
    client.create_user("Ada").await.unwrap();
    let mut request = tonic::Request::new(pb::CreateUserRequest {
        name: "x".repeat(2000),
        request_id: String::new(),
    });
    request
        .metadata_mut()
        .insert("authorization", "Bearer the-token".parse().unwrap());
    let too_large = client.raw().create_user(request).await.unwrap_err();
    assert_eq!(too_large.code(), tonic::Code::OutOfRange, "{too_large:?}");

    let metrics = app.scrape_metrics().await;
    let requests =
        |code: &str| format!(r#"users_rpc_requests_total{{method="CreateUser",code="{code}"}}"#);
    assert_sample(&metrics, &requests("UNAUTHENTICATED"), 1.0);
    assert_sample(&metrics, &requests("OUT_OF_RANGE"), 1.0);
    assert_sample(&metrics, &requests("OK"), 1.0);
    assert_sample(
        &metrics,
        r#"users_rpc_duration_seconds_count{method="CreateUser"}"#,
        3.0,
    );
}

/// The value of the sample `series` (`name{labels}`, exactly as printed).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().unwrap())
    })
}

fn assert_sample(metrics: &str, series: &str, expected: f64) {
    assert_eq!(
        sample(metrics, series),
        Some(expected),
        "{series} in\n{metrics}"
    );
}

async fn calls_are_counted_by_method_and_code_and_timed(backend: Backend) {
    let app = spawn_app_with_metrics(backend).await;
    let ada = app.client.create_user("Ada").await.unwrap();
    app.client.create_user("Grace").await.unwrap();
    app.client.get_user(ada.id).await.unwrap();
    let missing = app.client.get_user(ada.id + 100).await.unwrap_err();
    assert!(matches!(missing, ClientError::NotFound(_)), "{missing}");
    let invalid = app.client.create_user("").await.unwrap_err();
    assert!(
        matches!(invalid, ClientError::InvalidArgument(_)),
        "{invalid}"
    );

    let metrics = app.scrape_metrics().await;
    let requests = |method: &str, code: &str| {
        format!(r#"users_rpc_requests_total{{method="{method}",code="{code}"}}"#)
    };
    assert_sample(&metrics, &requests("CreateUser", "OK"), 2.0);
    assert_sample(&metrics, &requests("CreateUser", "INVALID_ARGUMENT"), 1.0);
    assert_sample(&metrics, &requests("GetUser", "OK"), 1.0);
    assert_sample(&metrics, &requests("GetUser", "NOT_FOUND"), 1.0);
    assert_eq!(sample(&metrics, &requests("FindUsers", "OK")), None);

    assert_sample(
        &metrics,
        r#"users_rpc_duration_seconds_count{method="CreateUser"}"#,
        3.0,
    );
    assert_sample(
        &metrics,
        r#"users_rpc_duration_seconds_count{method="GetUser"}"#,
        2.0,
    );
    // Every call took less than the last bucket's 5 s.
    assert_sample(
        &metrics,
        r#"users_rpc_duration_seconds_bucket{method="GetUser",le="5"}"#,
        2.0,
    );
    let sum = sample(
        &metrics,
        r#"users_rpc_duration_seconds_sum{method="GetUser"}"#,
    )
    .expect("a latency sum");
    assert!(sum > 0.0 && sum < 10.0, "{sum}");
}

async fn the_pools_are_read_when_scraped(backend: Backend) {
    let app = spawn_app_with_metrics(backend).await;
    let ada = app.client.create_user("Ada").await.unwrap();
    app.client.get_user(ada.id).await.unwrap();

    // Nothing in flight between calls: no connection lent, nobody waiting,
    // once the server's own background work (the change events' poll, a
    // statement every 200 ms) is between two polls.
    let in_flight = [
        r#"users_db_connections_in_use{pool="exclusive"}"#,
        r#"users_db_pool_waiting{pool="exclusive"}"#,
        "users_db_pipelined_turns_in_use",
        r#"users_db_connections_in_use{pool="readers"}"#,
        r#"users_db_pool_waiting{pool="readers"}"#,
        "users_db_sqlite_writer_queue",
        r#"users_db_connections_in_use{pool="mysql"}"#,
        r#"users_db_pool_waiting{pool="mysql"}"#,
    ];
    let patience = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let metrics = loop {
        let metrics = app.scrape_metrics().await;
        let idle = in_flight
            .iter()
            .all(|series| sample(&metrics, series).unwrap_or(0.0) == 0.0);
        if idle || tokio::time::Instant::now() >= patience {
            break metrics;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    match backend {
        Backend::Postgres => {
            let open = sample(&metrics, r#"users_db_connections{pool="pipelined"}"#)
                .expect("pipelined connections");
            assert!(open >= 1.0, "the calls opened one: {open}");
            assert!(sample(&metrics, r#"users_db_connections{pool="exclusive"}"#).is_some());
            assert_sample(
                &metrics,
                r#"users_db_connections_in_use{pool="exclusive"}"#,
                0.0,
            );
            assert_sample(&metrics, r#"users_db_pool_waiting{pool="exclusive"}"#, 0.0);
            assert_sample(&metrics, "users_db_pipelined_turns_in_use", 0.0);
        }
        Backend::Sqlite => {
            let open = sample(&metrics, r#"users_db_connections{pool="readers"}"#)
                .expect("reader connections");
            assert!(open >= 1.0, "GetUser opened one: {open}");
            assert_sample(
                &metrics,
                r#"users_db_connections_in_use{pool="readers"}"#,
                0.0,
            );
            assert_sample(&metrics, r#"users_db_pool_waiting{pool="readers"}"#, 0.0);
            assert_sample(&metrics, "users_db_sqlite_writer_queue", 0.0);
        }
        Backend::Mysql => {
            let open = sample(&metrics, r#"users_db_connections{pool="mysql"}"#)
                .expect("MySQL connections");
            assert!(open >= 1.0, "the calls opened one: {open}");
            assert_sample(
                &metrics,
                r#"users_db_connections_in_use{pool="mysql"}"#,
                0.0,
            );
            assert_sample(&metrics, r#"users_db_pool_waiting{pool="mysql"}"#, 0.0);
        }
    }
    // No retry yet, but every reason's series is there, at 0.
    for reason in ["conflict", "busy", "connection_lost"] {
        assert_sample(
            &metrics,
            &format!(r#"users_db_transaction_retries_total{{reason="{reason}"}}"#),
            0.0,
        );
    }
}

async fn only_metrics_is_served(backend: Backend) {
    let app = spawn_app_with_metrics(backend).await;
    let addr = app.metrics_addr.unwrap();
    let page = http_get(addr, "/metrics").await;
    assert_eq!(page.status, 200);
    assert!(
        page.headers
            .to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{page:?}"
    );
    for elsewhere in ["/", "/metrics/x", "/health"] {
        assert_eq!(http_get(addr, elsewhere).await.status, 404, "{elsewhere}");
    }
}
