//! [`Config`]: the command line, with environment fallbacks.

use std::{net::SocketAddr, time::Duration};

use clap::Parser;

use crate::db::Isolation;
use crate::telemetry::LogFormat;

/// How to run the server. Every flag has an environment fallback so that the
/// same binary configures from a shell or from a container spec.
#[derive(Debug, Clone, Parser)]
#[command(name = "users-server", version, about = "The users gRPC service")]
pub struct Config {
    /// Address to serve gRPC on; port 0 picks a free port.
    #[arg(long, env = "USERS_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// Where users are stored: `sqlite://PATH` (created if missing) or
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://users.db")]
    pub database_url: String,

    /// Database connections, opened as needed. PostgreSQL: this many shared
    /// connections carry the one-statement calls, pipelined, plus up to this
    /// many more for calls in an explicit transaction. SQLite: this many
    /// readers, plus one writer.
    #[arg(long, env = "USERS_POOL_SIZE", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub pool_size: u32,

    /// How long a call waits for its turn on a database connection before it
    /// fails with UNAVAILABLE, e.g. `5s` or `500ms`.
    #[arg(long, env = "USERS_POOL_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub pool_timeout: Duration,

    /// The isolation level of every transaction on PostgreSQL. At
    /// `serializable`, a transaction that conflicts with a concurrent one is
    /// rolled back by PostgreSQL and run again here, with backoff, within
    /// the caller's deadline. SQLite's transactions are always
    /// serializable.
    #[arg(long, env = "USERS_ISOLATION", value_enum, default_value_t = Isolation::ReadCommitted)]
    pub isolation: Isolation,

    /// Do not apply pending migrations at start-up; refuse to start if the
    /// schema is behind instead.
    #[arg(long, env = "USERS_SKIP_MIGRATIONS")]
    pub skip_migrations: bool,

    /// How long a create's `request_id` is remembered: a retry within this
    /// time returns the user the first call created, e.g. `24h` or `30m`.
    #[arg(long, env = "USERS_REQUEST_ID_TTL", default_value = "24h",
          value_parser = parse_ttl)]
    pub request_id_ttl: Duration,

    /// Serve Prometheus metrics over HTTP at `/metrics` on this address
    /// (port 0 picks a free port); off when not given.
    #[arg(long, env = "USERS_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// How log lines are written to stderr: `text` for people, `json` (one
    /// object a line) for log collectors.
    #[arg(long, env = "USERS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// A positive duration.
fn parse_ttl(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(ttl) if ttl.is_zero() => Err("must be longer than 0".to_owned()),
        Ok(ttl) => Ok(ttl),
        Err(error) => Err(error.to_string()),
    }
}

impl Config {
    /// The defaults, serving on `listen` and storing in `database_url`.
    pub fn new(listen: SocketAddr, database_url: impl Into<String>) -> Self {
        Self {
            listen,
            database_url: database_url.into(),
            pool_size: 8,
            pool_timeout: Duration::from_secs(5),
            isolation: Isolation::ReadCommitted,
            skip_migrations: false,
            request_id_ttl: Duration::from_secs(24 * 60 * 60),
            metrics_listen: None,
            log_format: LogFormat::Text,
        }
    }
}
