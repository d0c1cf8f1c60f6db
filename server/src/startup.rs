//! [`Application`]: builds the server from a [`Config`] and runs it until a
//! shutdown signal.

use std::{future::Future, net::SocketAddr, process::ExitCode, sync::Arc, time::Duration};

use clap::Parser;

use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic_health::server::HealthReporter;
use users_client::pb::{self, user_service_server::UserServiceServer};

use crate::accept;
use crate::config::Config;
use crate::db::{
    Database, DbOpenError, PoolOptions,
    migrations::{self, MigrationError},
    url::{DatabaseUrl, UrlError},
};
use crate::metrics::{MetricsEndpoint, RpcMetrics};
use crate::service::{UsersService, forget_expired_request_ids};
use crate::telemetry;

/// A server with its database ready and its socket bound, not yet serving.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    db: Database,
    request_id_ttl: Duration,
    /// `--metrics-listen`, bound.
    metrics: Option<MetricsEndpoint>,
}

/// Why the server could not start, or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// `--database-url` is malformed or names an unsupported backend.
    #[error("invalid --database-url: {0}")]
    DatabaseUrl(#[from] UrlError),
    /// The pools could not be set up.
    #[error(transparent)]
    Database(#[from] DbOpenError),
    /// The database is unreachable, or its schema could not be made ready.
    #[error(transparent)]
    Migrations(#[from] MigrationError),
    /// `--listen` cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why the OS refused.
        #[source]
        source: std::io::Error,
    },
    /// `--metrics-listen` cannot be bound.
    #[error("cannot serve metrics on {addr}: {source}")]
    MetricsBind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why the OS refused.
        #[source]
        source: std::io::Error,
    },
    /// The reflection service could not read our descriptors (a build bug).
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The server stopped with an error.
    #[error("server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

impl StartupError {
    /// 2 when the configuration cannot be used as given (a bad URL, an
    /// unreachable database, an address in use): fix the flags. 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::DatabaseUrl(_)
            | Self::Database(_)
            | Self::Migrations(MigrationError::Connect { .. })
            | Self::Bind { .. }
            | Self::MetricsBind { .. } => 2,
            Self::Migrations(_) | Self::Reflection(_) | Self::Serve(_) => 1,
        }
    }
}

impl Application {
    /// Opens the database, applies migrations (or checks them with
    /// `--skip-migrations`), and binds `config.listen` and
    /// `config.metrics_listen`.
    pub async fn build(config: &Config) -> Result<Self, StartupError> {
        let url: DatabaseUrl = config.database_url.parse()?;
        let mode = if config.skip_migrations {
            migrations::Mode::Check
        } else {
            migrations::Mode::Apply
        };
        let applied = migrations::prepare(&url, mode).await?;
        if !applied.is_empty() {
            tracing::info!(?applied, "applied migrations");
        }
        let db = Database::open(
            url,
            PoolOptions {
                size: config.pool_size,
                timeout: config.pool_timeout,
                isolation: config.isolation,
            },
        )?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartupError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let metrics = match config.metrics_listen {
            None => None,
            Some(addr) => Some(
                MetricsEndpoint::bind(addr)
                    .await
                    .map_err(|source| StartupError::MetricsBind { addr, source })?,
            ),
        };
        Ok(Self {
            listener,
            db,
            request_id_ttl: config.request_id_ttl,
            metrics,
        })
    }

    /// Where `/metrics` is served, if `--metrics-listen` was given (the
    /// port actually bound, useful with port 0).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(MetricsEndpoint::local_addr)
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener has a local address")
    }

    /// Serves until `shutdown` completes, then stops accepting, lets
    /// in-flight calls finish, and returns.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), StartupError> {
        let addr = self.local_addr();
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_serving::<UserServiceServer<UsersService>>()
            .await;

        // Both reflection versions: grpcurl 1.8 speaks v1alpha, newer tools v1.
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                // google.rpc.ErrorInfo and BadRequest, so that tools such as
                // grpcurl can print the details of our errors.
                .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_v1 = reflection().build_v1()?;
        let reflection_v1alpha = reflection().build_v1alpha()?;

        let rpc_metrics = RpcMetrics::default();
        let metrics = self.metrics.map(|endpoint| {
            let mut registry = Registry::default();
            rpc_metrics.register(&mut registry);
            self.db.register_metrics(&mut registry);
            // Not `addr=`: that names the gRPC address, which scripts look for.
            let url = format!("http://{}/metrics", endpoint.local_addr());
            tracing::info!(%url, "serving Prometheus metrics");
            tokio::spawn(endpoint.serve(Arc::new(registry)))
        });

        let incoming = accept::incoming(self.listener);
        tracing::info!(%addr, database = %self.db.url(), "serving users.v1.UserService");

        let purge = tokio::spawn(forget_expired_request_ids(
            self.db.clone(),
            self.request_id_ttl,
        ));
        let served = Server::builder()
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(UserServiceServer::new(
                UsersService::new(self.db, self.request_id_ttl).with_metrics(rpc_metrics),
            ))
            .serve_with_incoming_shutdown(incoming, stop_serving(shutdown, health))
            .await;
        purge.abort();
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        served?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Waits for `shutdown`, then tells health checkers we are going away.
async fn stop_serving(shutdown: impl Future<Output = ()>, health: HealthReporter) {
    shutdown.await;
    tracing::info!("shutting down: no new connections, finishing calls in flight");
    health
        .set_not_serving::<UserServiceServer<UsersService>>()
        .await;
    health
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

/// The `users-server` program: reads the command line, serves until Ctrl-C
/// or SIGTERM. Exits 0, or with [`StartupError::exit_code`] after one line
/// saying why.
#[tokio::main]
pub async fn run() -> ExitCode {
    let config = Config::parse();
    let logs = telemetry::init(config.log_format);
    let result = match Application::build(&config).await {
        Ok(app) => app.run_until(shutdown_signal()).await,
        Err(error) => Err(error),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            drop(logs); // flush the log lines before the error line
            // One line, for humans and for log scrapers alike.
            eprintln!("users-server: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
