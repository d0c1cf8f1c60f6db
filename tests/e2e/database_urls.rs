//! `--database-url` forms beyond one host.

use users_tests::{Backend, spawn_app_with};

on_backend!(postgres: Postgres; several_hosts_connect_to_the_one_that_answers);
on_backend!(mysql: Mysql; several_hosts_connect_to_the_one_that_answers);

/// A multi-host URL, as a failover setup (PostgreSQL, with
/// `target_session_attrs=read-write`) or a Galera cluster (MySQL) gives
/// one: the first host refuses connections, the second is the database;
/// every connection goes to the second.
async fn several_hosts_connect_to_the_one_that_answers(backend: Backend) {
    let app = spawn_app_with(backend, |config| {
        // The test URLs name a user: insert a host after it.
        let url = config.database_url.replacen('@', "@127.0.0.1:1,", 1);
        assert_ne!(url, config.database_url, "no user@ in {url}");
        config.database_url = match backend {
            Backend::Postgres => format!("{url}?target_session_attrs=read-write"),
            _ => url,
        };
    })
    .await;
    let user = app.client.create_user("John").await.unwrap();
    // A transaction (PostgreSQL: the exclusive pool) and a one-statement
    // read (PostgreSQL: the pipelined connections) both found it.
    let renamed = app
        .client
        .rename_user(user.id, "Johnny", None)
        .await
        .unwrap();
    assert_eq!(app.client.get_user(user.id).await.unwrap(), renamed);
}
