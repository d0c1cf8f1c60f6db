//! [`Application`]: builds the server from a [`Config`] and runs it until a
//! shutdown signal.

use std::{future::Future, net::SocketAddr, process::ExitCode, sync::Arc, time::Duration};

use clap::Parser;

use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tonic::{service::interceptor::InterceptedService, transport::Server};
use tonic_health::ServingStatus;
use users_client::pb::user_service_server::UserServiceServer;

use crate::accept;
use crate::auth::{Authenticator, Guard, TokensError};
use crate::call_limit::CallLimit;
use crate::config::Config;
use crate::db::{
    Database, DbOpenError, PoolOptions,
    migrations::{self, MigrationError},
    replicas::ReplicaOptions,
    url::{DatabaseUrl, UrlError},
};
use crate::events::{
    EventHub, EventOptions, HubOptions, expire_events,
    relay::{self, NatsOptions},
};
use crate::health::Health;
use crate::metrics::{CountRefused, MetricsEndpoint, RpcMetrics};
use crate::reflection::Reflection;
use crate::service::{
    UsersService, forget_expired_request_ids, request_id::EchoRequestIds, stamp_arrival,
};
use crate::telemetry;
use crate::tls::{self, TlsError, TlsMode};
use tower::Layer;

/// A server with its database ready and its socket bound, not yet serving.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    /// `Server::builder()`, with TLS if configured: built in
    /// [`build`](Self::build) so that unusable certificates stop start-up.
    server: Server,
    tls: TlsMode,
    db: Database,
    request_id_ttl: Duration,
    /// How the change events are kept and polled.
    events: EventOptions,
    health_check_interval: Duration,
    drain_timeout: Duration,
    default_timeout: Duration,
    limits: Limits,
    /// Checks bearer tokens, if `--auth-tokens-file` is set.
    authenticator: Option<Authenticator>,
    /// Whether health and reflection need a token too.
    auth_all: bool,
    /// Whether gRPC-Web is served, and the CORS rules for browsers.
    grpc_web: Option<Option<tower_http::cors::CorsLayer>>,
    /// `--metrics-listen`, bound.
    metrics: Option<MetricsEndpoint>,
}

/// What a connection or a request may take, from the [`Config`].
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_request_size: usize,
    max_concurrent_calls: usize,
    max_call_wait: Duration,
    keepalive_interval: Duration,
    keepalive_timeout: Duration,
    max_connection_age: Option<Duration>,
}

impl Limits {
    fn new(config: &Config) -> Self {
        Self {
            max_request_size: config.max_request_size as usize,
            max_concurrent_calls: config.max_concurrent_calls as usize,
            max_call_wait: config.max_call_wait,
            keepalive_interval: config.http2_keepalive_interval,
            keepalive_timeout: config.http2_keepalive_timeout,
            max_connection_age: config.max_connection_age,
        }
    }

    /// `server` with these limits.
    fn apply(&self, server: Server) -> Server {
        let server = server
            .http2_keepalive_interval(Some(self.keepalive_interval))
            .http2_keepalive_timeout(Some(self.keepalive_timeout));
        // No `max_connection_age_grace`: with one, tonic 0.14 sends no
        // GOAWAY at the age and cuts the connection after age + grace.
        match self.max_connection_age {
            Some(age) => server.max_connection_age(age),
            None => server,
        }
    }
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
    /// `--auth-tokens-file` cannot be used.
    #[error("invalid --auth-tokens-file: {0}")]
    Tokens(#[from] TokensError),
    /// `--cors-allow-origin` is not an origin.
    #[error(transparent)]
    WebOrigin(#[from] crate::web::InvalidOrigin),
    /// `--listen` cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why the OS refused.
        #[source]
        source: std::io::Error,
    },
    /// The TLS files cannot be read, or rustls refuses them.
    #[error(transparent)]
    Tls(#[from] TlsError),
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
    Reflection(#[from] crate::reflection::DescriptorError),
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
            | Self::Tokens(_)
            | Self::WebOrigin(_)
            | Self::Bind { .. }
            | Self::Tls(_)
            | Self::MetricsBind { .. } => 2,
            Self::Migrations(_) | Self::Reflection(_) | Self::Serve(_) => 1,
        }
    }
}

impl Application {
    /// Reads the TLS files, opens the database, applies migrations (or
    /// checks them with `--skip-migrations`), and binds `config.listen` and
    /// `config.metrics_listen`.
    pub async fn build(config: &Config) -> Result<Self, StartupError> {
        // First: reading files is quick, and their errors need no database.
        let server = tls::server_builder(&config.tls)?;
        let url: DatabaseUrl = config.database_url.parse()?;
        let authenticator = config
            .auth_tokens_file
            .as_deref()
            .map(Authenticator::from_file)
            .transpose()?;
        let grpc_web = config
            .grpc_web
            .then(|| crate::web::cors(&config.cors_allow_origins))
            .transpose()?;
        let pool = PoolOptions {
            size: config.pool_size,
            timeout: config.pool_timeout,
            isolation: config.isolation,
        };
        let replicas = ReplicaOptions {
            urls: config.read_replica_urls.clone(),
            max_lag: config.max_replica_lag,
        };
        // Opens no connection yet: settings that cannot work are refused
        // before the database is touched.
        let db = Database::open(url.clone(), pool)?.with_read_replicas(&replicas, pool)?;
        let mode = if config.skip_migrations {
            migrations::Mode::Check
        } else {
            migrations::Mode::Apply
        };
        let applied = migrations::prepare(&url, mode).await?;
        if !applied.is_empty() {
            tracing::info!(?applied, "applied migrations");
        }
        db.watch_read_replicas();

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
            server,
            tls: config.tls.mode(),
            db,
            request_id_ttl: config.request_id_ttl,
            events: EventOptions {
                retention: config.events_retention,
                hub: HubOptions {
                    poll_interval: config.events_poll_interval,
                    ..HubOptions::default()
                },
                nats: config.events_nats_url.as_ref().map(|url| NatsOptions {
                    url: url.clone(),
                    stream: config.events_nats_stream.clone(),
                    subject_prefix: config.events_nats_subject_prefix.clone(),
                    duplicate_window: config.events_nats_duplicate_window,
                }),
            },
            health_check_interval: config.health_check_interval,
            drain_timeout: config.drain_timeout,
            default_timeout: config.default_timeout,
            limits: Limits::new(config),
            authenticator,
            auth_all: config.auth_all,
            grpc_web,
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

    /// Serves until `shutdown` completes; then reports NOT_SERVING, stops
    /// accepting connections (new ones are refused), lets the calls in
    /// flight finish for up to the drain timeout, and returns. Connections
    /// still busy then are left to the runtime: in the `users-server`
    /// program, they close as it exits.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), StartupError> {
        let addr = self.local_addr();
        let (reporter, health_service) = tonic_health::server::health_reporter();
        let health = Health::new(reporter);
        health.set(ServingStatus::Serving).await;
        let follow_database = tokio::spawn(
            health
                .clone()
                .follow_database(self.db.clone(), self.health_check_interval),
        );

        // Both reflection versions: grpcurl 1.8 speaks v1alpha, newer tools v1.
        let reflection = Reflection::new()?;
        let (reflection_v1, reflection_v1alpha) = (reflection.v1(), reflection.v1alpha());

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
        tracing::info!(%addr, database = %self.db.url(), tls = %self.tls, "serving users.v1.UserService");
        if self.tls == TlsMode::Off && !addr.ip().is_loopback() {
            tracing::warn!(%addr, "serving plaintext beyond loopback; see --tls-cert");
        }

        let purge = tokio::spawn(forget_expired_request_ids(
            self.db.clone(),
            self.request_id_ttl,
        ));
        let events = EventHub::new(self.db.clone(), self.events.hub);
        let numbering = tokio::spawn(events.clone().run());
        let expiry = tokio::spawn(expire_events(
            self.db.clone(),
            self.events.retention,
            self.events.nats.is_some(),
        ));
        let relay = self.events.nats.clone().map(|nats| {
            tracing::info!(url = %nats.url, stream = %nats.stream, "publishing change events to NATS JetStream");
            tokio::spawn(relay::run(events.clone(), nats))
        });
        let (draining, drain_started) = tokio::sync::oneshot::channel();
        let stop_serving = {
            let follow_database = follow_database.abort_handle();
            let events = events.clone();
            async move {
                shutdown.await;
                // Watches never end by themselves: end them, so that
                // their callers resume elsewhere.
                events.close();
                // Before reporting: the follower must not report SERVING again.
                follow_database.abort();
                health.set(ServingStatus::NotServing).await;
                tracing::info!("shutting down: no new connections, finishing calls in flight");
                let _ = draining.send(());
            }
        };
        let reload_tokens = self
            .authenticator
            .clone()
            .map(|authenticator| tokio::spawn(authenticator.reload_on_sighup()));
        let users_guard = Guard(self.authenticator.clone());
        let tools_guard = Guard(self.authenticator.filter(|_| self.auth_all));
        let rpc_metrics_for_refusals = rpc_metrics.clone();
        let users = UserServiceServer::new(
            UsersService::new(self.db, self.request_id_ttl)
                .with_events(events)
                .with_metrics(rpc_metrics)
                .with_default_timeout(self.default_timeout),
        )
        .max_decoding_message_size(self.limits.max_request_size);
        // CORS first: it answers browsers' preflight requests itself; then
        // gRPC-Web text bodies are decoded, for tonic-web to take as binary.
        // Health and reflection share the listener, and so its TLS.
        let served = self
            .limits
            .apply(self.server)
            .accept_http1(self.grpc_web.is_some())
            .layer(tower::util::option_layer(self.grpc_web.clone().flatten()))
            .layer(tower::util::option_layer(self.grpc_web.is_some().then(
                || crate::web::DecodeText::new(self.limits.max_request_size),
            )))
            .layer(tower::util::option_layer(
                self.grpc_web.is_some().then(tonic_web::GrpcWebLayer::new),
            ))
            .add_service(InterceptedService::new(health_service, tools_guard.clone()))
            .add_service(InterceptedService::new(reflection_v1, tools_guard.clone()))
            .add_service(InterceptedService::new(reflection_v1alpha, tools_guard))
            // Request ids given outermost, so that refusals carry theirs
            // too; refusals counted next; arrival stamped next, so that
            // waits count against the deadline; authenticated next: a
            // refused caller takes no turn.
            .add_service(
                EchoRequestIds.layer(
                    CountRefused::new(rpc_metrics_for_refusals).layer(InterceptedService::new(
                        InterceptedService::new(
                            CallLimit::new(
                                self.limits.max_concurrent_calls,
                                self.limits.max_call_wait,
                            )
                            .layer(users),
                            users_guard,
                        ),
                        stamp_arrival as fn(_) -> _,
                    )),
                ),
            )
            .serve_with_incoming_shutdown(incoming, stop_serving);
        let drain_timeout = self.drain_timeout;
        let drain_over = async move {
            match drain_started.await {
                Ok(()) => tokio::time::sleep(drain_timeout).await,
                // The server stopped on its own: `served` says why.
                Err(_) => std::future::pending().await,
            }
        };
        let result = tokio::select! {
            served = served => served,
            () = drain_over => {
                tracing::warn!(?drain_timeout, "calls still in flight after the drain timeout: closing their connections");
                Ok(())
            }
        };
        purge.abort();
        numbering.abort();
        expiry.abort();
        if let Some(relay) = relay {
            relay.abort();
        }
        follow_database.abort();
        if let Some(reload_tokens) = reload_tokens {
            reload_tokens.abort();
        }
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        result?;
        tracing::info!("stopped");
        Ok(())
    }
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
    let args = crate::config_file::with_file_settings(std::env::args_os().collect(), |name| {
        std::env::var_os(name)
    });
    let config = match args {
        Ok(args) => Config::parse_from(args),
        Err(error) => {
            eprintln!("users-server: invalid --config: {error}");
            return ExitCode::from(2);
        }
    };
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
