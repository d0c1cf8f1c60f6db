//! Behind PgBouncer in session mode, every RPC works as on PostgreSQL
//! itself. (Transaction mode does not: diesel-async prepares statements on
//! the connection, and PgBouncer 1.18 cannot carry them from one server
//! connection to the next; the README says so.)

use futures_util::{TryStreamExt, future::join_all};
use users_client::{FindUsers, SortField};
use users_tests::{Backend, Pgbouncer, PoolMode, spawn_app_with};

on_backend!(postgres: Postgres; every_rpc_works_behind_pgbouncer_in_session_mode);

async fn every_rpc_works_behind_pgbouncer_in_session_mode(backend: Backend) {
    let mut bouncer = None;
    let app = spawn_app_with(backend, |config| {
        let mut url = url::Url::parse(&config.database_url).unwrap();
        let host = url.host_str().unwrap_or("127.0.0.1").to_owned();
        let started = Pgbouncer::start(PoolMode::Session, &host, url.port().unwrap_or(5432));
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(started.port())).unwrap();
        config.database_url = url.into();
        bouncer = Some(started);
    })
    .await;
    let client = &app.client;

    // Many at once: pipelined one-statement calls and transactions.
    let created = join_all((0..100).map(|i| client.create_user(format!("user-{i:03}")))).await;
    let created: Vec<_> = created.into_iter().map(Result::unwrap).collect();
    let batch = client
        .batch_create_users((0..20).map(|i| format!("batch-{i:02}")))
        .await
        .unwrap();
    let renames = join_all(created.iter().take(20).map(|user| {
        client.rename_user(user.id, format!("{}-renamed", user.name), Some(&user.etag))
    }))
    .await;
    assert!(renames.iter().all(Result::is_ok), "{renames:?}");
    client.delete_user(batch[0].id, None).await.unwrap();

    let page = client
        .find_users(&FindUsers::new().name_prefix("user-").page_size(30))
        .await
        .unwrap();
    assert_eq!(page.users.len(), 30);
    let exported: Vec<_> = client
        .export_users(FindUsers::new().order_by(SortField::Name))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(exported.len(), 100 + 20 - 1);
    assert_eq!(client.get_user(created[99].id).await.unwrap(), created[99]);
    let bouncer = bouncer.expect("the server went through PgBouncer");
    assert!(
        bouncer.log().contains("login attempt"),
        "the server's connections went through PgBouncer:\n{}",
        bouncer.log()
    );
}
