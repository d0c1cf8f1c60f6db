//! The test harness: [`spawn_app`] starts the real server on port 0 with a
//! database of its own and returns a [`TestApp`] that talks to it over TCP
//! through the client crate; [`spawn_app_over_tls`] does the same over TLS,
//! with the certificates of [`TestCertificates`].

mod certificates;
mod database;
mod galera;
mod http;
mod nats;
mod pg_auto_failover;
mod pgbouncer;
mod private_mysql;
mod private_postgres;
mod system;
mod tally;

use std::{net::SocketAddr, path::Path};

use tokio::{sync::oneshot, task::JoinHandle};
use users_client::{ClientBuilder, FindUsers, RetryPolicy, User, UsersClient};
use users_server::{Application, Config, StartupError, tls::TlsFlags};

pub use certificates::TestCertificates;
pub use database::{Backend, OpenTransaction, POSTGRES_URL_VAR, TestDatabase, WriteLock};
pub use galera::{GALERA_PROVIDER_VAR, GaleraCluster, NodeStatus};
pub use http::{HttpResponse, http_get};
pub use nats::{NATS_SERVER_VAR, NATS_URL_VAR, PrivateNats, Published, TestStream};
pub use pg_auto_failover::{FormationNode, PgAutoFailover};
pub use pgbouncer::{Pgbouncer, PoolMode};
pub use private_mysql::{MARIADB_BINDIR_VAR, PrivateMysql};
pub use private_postgres::{POSTGRES_BINDIR_VAR, PrivatePostgres, StopMode};
pub use system::free_port;
pub use tally::Tally;

/// A running server with its own database, and a client connected to it.
/// Dropping it stops the server and deletes the database.
#[derive(Debug)]
pub struct TestApp {
    /// Where the server listens.
    pub addr: SocketAddr,
    /// The URL clients connect to: `http://ADDR`, or `https://ADDR` over
    /// TLS.
    pub endpoint: String,
    /// Where it serves `/metrics`, if its config asked for metrics.
    pub metrics_addr: Option<SocketAddr>,
    /// A client connected to the server. It sends each call once
    /// ([`RetryPolicy::none`]): the tests watch the server's own answers.
    pub client: UsersClient,
    server: Option<RunningServer>,
    // Declared last: dropped after the server has stopped.
    db: TestDatabase,
}

#[derive(Debug)]
struct RunningServer {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), StartupError>>,
}

/// Every page of `query`, following `next_page_token` to the end.
pub async fn all_pages(client: &UsersClient, query: FindUsers) -> Vec<Vec<User>> {
    let mut pages = Vec::new();
    let mut next = Some(query);
    while let Some(query) = next.take() {
        let page = client.find_users(&query).await.unwrap();
        next = page
            .next_page_token
            .map(|token| query.clone().page_token(token));
        pages.push(page.users);
    }
    pages
}

/// Starts a server on `backend` with default settings.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Starts a server on `backend`, after `configure` has adjusted its
/// settings.
pub async fn spawn_app_with(backend: Backend, configure: impl FnOnce(&mut Config)) -> TestApp {
    spawn(backend, configure, "http", |client| client).await
}

/// Starts a server on `backend` that serves over TLS with `server.pem` and
/// `server.key` of `certificates` (a directory laid out as
/// [`TestCertificates`] and the README lay it out) and, if `mutual`,
/// requires client certificates signed by its `ca.pem`. The app's client
/// trusts `ca.pem`, and presents `client.pem` if `mutual`.
pub async fn spawn_app_over_tls(backend: Backend, certificates: &Path, mutual: bool) -> TestApp {
    let ca = certificates.join("ca.pem");
    let configure = |config: &mut Config| {
        config.tls = TlsFlags {
            cert: Some(certificates.join("server.pem")),
            key: Some(certificates.join("server.key")),
            client_ca: mutual.then(|| ca.clone()),
        };
    };
    let client = |client: ClientBuilder| {
        let client = client.ca_certificate_file(&ca);
        match mutual {
            true => client.identity_files(
                certificates.join("client.pem"),
                certificates.join("client.key"),
            ),
            false => client,
        }
    };
    spawn(backend, configure, "https", client).await
}

/// Starts a server configured by `configure` and connects to it at
/// `scheme://ADDR` with a client that `client` sets up.
async fn spawn(
    backend: Backend,
    configure: impl FnOnce(&mut Config),
    scheme: &str,
    client: impl FnOnce(ClientBuilder) -> ClientBuilder,
) -> TestApp {
    init_logs();
    let db = TestDatabase::create(backend).await;
    let mut config = Config::new(loopback_port_0(), db.url());
    configure(&mut config);
    let server = start(&config).await;
    let endpoint = format!("{scheme}://{}", server.addr);
    let client = client(UsersClient::builder(&endpoint).retry_policy(RetryPolicy::none()))
        .connect()
        .await
        .unwrap_or_else(|error| panic!("cannot connect to the test server: {error}"));
    TestApp {
        addr: server.addr,
        metrics_addr: server.metrics_addr,
        endpoint,
        client,
        server: Some(server.running),
        db,
    }
}

impl TestApp {
    /// The backend this app stores in.
    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    /// The test database.
    pub fn database(&self) -> &TestDatabase {
        &self.db
    }

    /// Stops the server (Ctrl-C in production) and waits until it has
    /// finished the calls in flight and exited.
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            let _ = server.stop.send(());
            server
                .task
                .await
                .expect("server task panicked")
                .expect("server stopped with an error");
        }
    }

    /// Stops the server and starts a new one on the same database (and a new
    /// port), with default settings (plaintext), as a redeploy would.
    pub async fn restart(&mut self) {
        self.restart_with(|_| {}).await;
    }

    /// Like [`restart`](Self::restart), with the settings `configure`
    /// makes of the defaults.
    pub async fn restart_with(&mut self, configure: impl FnOnce(&mut Config)) {
        self.stop().await;
        let mut config = Config::new(loopback_port_0(), self.db.url());
        configure(&mut config);
        let server = start(&config).await;
        self.addr = server.addr;
        self.metrics_addr = server.metrics_addr;
        self.endpoint = format!("http://{}", server.addr);
        self.client = connect(&self.endpoint).await;
        self.server = Some(server.running);
    }

    /// Another server on this app's database, with default settings, as a
    /// second replica of the service would run. Drop it before the app.
    pub async fn replica(&self) -> Replica {
        let server = start(&Config::new(loopback_port_0(), self.db.url())).await;
        let endpoint = format!("http://{}", server.addr);
        Replica {
            client: connect(&endpoint).await,
            endpoint,
            server: Some(server.running),
        }
    }

    /// The server's `/metrics` page. Panics if it serves no metrics.
    pub async fn scrape_metrics(&self) -> String {
        let addr = self.metrics_addr.expect("the server serves metrics");
        let response = http_get(addr, "/metrics").await;
        assert_eq!(response.status, 200, "{response:?}");
        response.body
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            let _ = server.stop.send(());
            server.task.abort();
        }
    }
}

/// A second server on a [`TestApp`]'s database ([`TestApp::replica`]);
/// stopped on drop.
#[derive(Debug)]
pub struct Replica {
    /// `http://ADDR`.
    pub endpoint: String,
    /// A client connected to it alone, sending each call once.
    pub client: UsersClient,
    server: Option<RunningServer>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            let _ = server.stop.send(());
            server.task.abort();
        }
    }
}

/// A server just started, and where it listens.
struct Started {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    running: RunningServer,
}

async fn start(config: &Config) -> Started {
    let app = Application::build(config)
        .await
        .unwrap_or_else(|error| panic!("server failed to start: {error}"));
    let addr = app.local_addr();
    let metrics_addr = app.metrics_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    Started {
        addr,
        metrics_addr,
        running: RunningServer { stop, task },
    }
}

async fn connect(endpoint: &str) -> UsersClient {
    UsersClient::builder(endpoint)
        .retry_policy(RetryPolicy::none())
        .connect()
        .await
        .unwrap_or_else(|error| panic!("cannot connect to the test server: {error}"))
}

fn loopback_port_0() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Server logs in test output when `TEST_LOG` is set (`TEST_LOG=1 cargo test`).
fn init_logs() {
    static LOGS: std::sync::OnceLock<users_server::telemetry::LogGuard> =
        std::sync::OnceLock::new();
    if std::env::var_os("TEST_LOG").is_some() {
        LOGS.get_or_init(|| users_server::telemetry::init(Default::default()));
    }
}
