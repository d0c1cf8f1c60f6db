//! End-to-end tests: each starts the real server on port 0 with a database
//! of its own and drives it over TCP through the client crate, once per
//! backend. Test names read `<area>::<backend>::<what must hold>`.
//!
//! PostgreSQL tests use the server at `USERS_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and fail, never skip,
//! when it is unreachable.

/// Runs each listed scenario (an `async fn(Backend)` in the calling module)
/// on every backend, as `sqlite::<scenario>`, `postgres::<scenario>` and
/// `mysql::<scenario>`.
macro_rules! on_every_backend {
    ($($scenario:ident),+ $(,)?) => {
        on_backend!(sqlite: Sqlite; $($scenario),+);
        on_backend!(postgres: Postgres; $($scenario),+);
        on_backend!(mysql: Mysql; $($scenario),+);
    };
}

/// Runs each listed scenario on one backend, in module `$module`.
macro_rules! on_backend {
    ($module:ident: $backend:ident; $($scenario:ident),+ $(,)?) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(users_tests::Backend::$backend).await;
                }
            )+
        }
    };
}

mod auth;
mod batch_create;
mod change_user;
mod client;
mod conformance;
mod consistency_tokens;
mod create_user;
mod database_urls;
mod deadlines;
mod export;
mod find_users;
mod grpc_web;
mod limits;
mod metrics;
mod operations;
mod ordering;
mod paging;
mod pgbouncer;
mod publishing;
mod readme;
mod reflection;
mod replicas;
mod request_ids;
mod tls;
mod watch;
mod x_request_id;
