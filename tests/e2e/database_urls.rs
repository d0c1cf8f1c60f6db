//! `--database-url` forms beyond one host.

use users_tests::{Backend, spawn_app_with};

on_backend!(postgres: Postgres; several_hosts_connect_to_the_one_that_accepts_writes);
on_backend!(mysql: Mysql; several_hosts_connect_to_the_first_that_answers);

/// A multi-host PostgreSQL URL, as a failover setup gives one: the first
/// host refuses connections, the second is the database; with
/// `target_session_attrs=read-write` every connection, pipelined or not,
/// goes to the second.
async fn several_hosts_connect_to_the_one_that_accepts_writes(backend: Backend) {
    let app = spawn_app_with(backend, |config| {
        // USERS_TEST_POSTGRES_URL names a user: insert a host after it.
        let url = config.database_url.replacen('@', "@127.0.0.1:1,", 1);
        assert_ne!(url, config.database_url, "no user@ in {url}");
        config.database_url = format!("{url}?target_session_attrs=read-write");
    })
    .await;
    let user = app.client.create_user("John").await.unwrap();
    // A transaction (the exclusive pool) and a one-statement read (the
    // pipelined connections) both found the database.
    let renamed = app
        .client
        .rename_user(user.id, "Johnny", None)
        .await
        .unwrap();
    assert_eq!(app.client.get_user(user.id).await.unwrap(), renamed);
}

/// The same on MySQL: the first host refuses connections, the second is
/// the database; every connection goes to the second.
async fn several_hosts_connect_to_the_first_that_answers(backend: Backend) {
    let app = spawn_app_with(backend, |config| {
        // USERS_TEST_MYSQL_URL names a user: insert a host after it.
        let url = config.database_url.replacen('@', "@127.0.0.1:1,", 1);
        assert_ne!(url, config.database_url, "no user@ in {url}");
        config.database_url = url;
    })
    .await;
    let user = app.client.create_user("John").await.unwrap();
    let renamed = app
        .client
        .rename_user(user.id, "Johnny", None)
        .await
        .unwrap();
    assert_eq!(app.client.get_user(user.id).await.unwrap(), renamed);
}
