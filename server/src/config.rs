//! [`Config`]: the command line, with environment fallbacks, and a
//! configuration file under both ([`config_file`](crate::config_file)).

use std::{net::SocketAddr, time::Duration};

use clap::Parser;

use crate::db::Isolation;
use crate::telemetry::LogFormat;
use crate::tls::TlsFlags;

/// How to run the server. Every flag has an environment fallback so that the
/// same binary configures from a shell or from a container spec.
#[derive(Debug, Clone, Parser)]
#[command(name = "users-server", version, about = "The users gRPC service")]
pub struct Config {
    /// Settings from a TOML file: each key a flag's long name
    /// (`pool-size = 16`). Flags override the environment, which overrides
    /// the file.
    #[arg(long, env = "USERS_CONFIG")]
    pub config: Option<std::path::PathBuf>,

    /// Address to serve gRPC on; port 0 picks a free port.
    #[arg(long, env = "USERS_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// Where users are stored: `sqlite://PATH` (created if missing),
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` or
    /// `mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (MySQL, MariaDB).
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://users.db")]
    pub database_url: String,

    /// A PostgreSQL hot standby of `--database-url` to serve reads
    /// (FindUsers, GetUser, ExportUsers) from; repeat for several, which
    /// take turns. Writes always go to the primary. A standby that is down,
    /// or further behind than `--max-replica-lag`, is skipped; a read that
    /// presents a write's consistency token (`x-consistency-token`) waits
    /// for nothing: it goes to a standby that has replayed the write, or to
    /// the primary. The environment variable takes URLs separated by spaces.
    #[arg(
        long = "read-replica-url",
        env = "USERS_READ_REPLICA_URLS",
        value_delimiter = ' '
    )]
    pub read_replica_urls: Vec<String>,

    /// How far behind the primary a read replica may be and still serve
    /// reads, e.g. `1s` or `500ms`; measured every 100 ms.
    #[arg(long, env = "USERS_MAX_REPLICA_LAG", default_value = "1s",
          value_parser = parse_positive_duration)]
    pub max_replica_lag: Duration,

    /// Database connections, opened as needed. PostgreSQL: this many shared
    /// connections carry the one-statement calls, pipelined, plus up to this
    /// many more for calls in an explicit transaction. SQLite: this many
    /// readers, plus one writer. MySQL: this many, one per call.
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

    /// How often the database is asked for an answer, so that health
    /// reports NOT_SERVING while it is unreachable, e.g. `1s`.
    #[arg(long, env = "USERS_HEALTH_CHECK_INTERVAL", default_value = "1s",
          value_parser = parse_positive_duration)]
    pub health_check_interval: Duration,

    /// On SIGTERM or Ctrl-C: how long calls in flight (streams included)
    /// may take to finish before their connections are closed and the
    /// server exits, e.g. `20s`.
    #[arg(long, env = "USERS_DRAIN_TIMEOUT", default_value = "20s",
          value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,

    /// The largest request accepted, in bytes; a larger one fails with
    /// OUT_OF_RANGE before it is read into memory.
    #[arg(long, env = "USERS_MAX_REQUEST_SIZE", default_value_t = 4 * 1024 * 1024,
          value_parser = clap::value_parser!(u32).range(1024..))]
    pub max_request_size: u32,

    /// How often an idle connection is pinged (HTTP/2 PING), so that a
    /// client that vanished without closing is noticed, e.g. `60s`.
    #[arg(long, env = "USERS_HTTP2_KEEPALIVE_INTERVAL", default_value = "60s",
          value_parser = parse_positive_duration)]
    pub http2_keepalive_interval: Duration,

    /// How long a ping may go unanswered before the connection is closed.
    #[arg(long, env = "USERS_HTTP2_KEEPALIVE_TIMEOUT", default_value = "20s",
          value_parser = parse_positive_duration)]
    pub http2_keepalive_timeout: Duration,

    /// Connections older than this are asked to go away (HTTP/2 GOAWAY):
    /// their calls in flight finish, and clients reconnect, so that load
    /// spreads over replicas added since. Off by default.
    #[arg(long, env = "USERS_MAX_CONNECTION_AGE", value_parser = parse_positive_duration)]
    pub max_connection_age: Option<Duration>,

    /// Require a bearer token (`authorization: Bearer TOKEN`) on every
    /// users.v1 call: the tokens are the lines of this file (blank lines and
    /// `#` comments skipped), read again on SIGHUP. Off by default.
    #[arg(long, env = "USERS_AUTH_TOKENS_FILE")]
    pub auth_tokens_file: Option<std::path::PathBuf>,

    /// Require the token for health checks and reflection too.
    #[arg(long, env = "USERS_AUTH_ALL", requires = "auth_tokens_file")]
    pub auth_all: bool,

    /// Also serve gRPC-Web (HTTP/1.1 and HTTP/2), so that browsers and
    /// HTTP/1 proxies can call the service. Off by default.
    #[arg(long, env = "USERS_GRPC_WEB")]
    pub grpc_web: bool,

    /// With `--grpc-web`: a web origin whose pages may call the service
    /// (CORS), e.g. `https://app.example.com`; repeat for several, `*` for
    /// any. None by default: only same-origin pages and non-browser
    /// clients.
    #[arg(
        long = "cors-allow-origin",
        env = "USERS_CORS_ALLOW_ORIGINS",
        value_delimiter = ',',
        requires = "grpc_web"
    )]
    pub cors_allow_origins: Vec<String>,

    /// users.v1 calls handled at once at most; a call beyond waits up to
    /// `--max-call-wait` for a turn, then fails with RESOURCE_EXHAUSTED.
    /// Health checks and reflection are not counted.
    #[arg(long, env = "USERS_MAX_CONCURRENT_CALLS", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_calls: u32,

    /// How long a call beyond `--max-concurrent-calls` waits for a turn.
    #[arg(long, env = "USERS_MAX_CALL_WAIT", default_value = "100ms",
          value_parser = humantime::parse_duration)]
    pub max_call_wait: Duration,

    /// How long a call may take when its caller set no deadline
    /// (`grpc-timeout`); past it, or past the caller's deadline, the call
    /// ends with DEADLINE_EXCEEDED and its database work is cancelled.
    #[arg(long, env = "USERS_DEFAULT_TIMEOUT", default_value = "30s",
          value_parser = parse_positive_duration)]
    pub default_timeout: Duration,

    /// Do not apply pending migrations at start-up; refuse to start if the
    /// schema is behind instead.
    #[arg(long, env = "USERS_SKIP_MIGRATIONS")]
    pub skip_migrations: bool,

    /// How long a create's `request_id` is remembered: a retry within this
    /// time returns the user the first call created, e.g. `24h` or `30m`.
    #[arg(long, env = "USERS_REQUEST_ID_TTL", default_value = "24h",
          value_parser = parse_positive_duration)]
    pub request_id_ttl: Duration,

    /// How long change events (WatchUsers) are kept, e.g. `7d`: a watch
    /// resumed after an older sequence gets OUT_OF_RANGE.
    #[arg(long, env = "USERS_EVENTS_RETENTION", default_value = "7d",
          value_parser = parse_positive_duration)]
    pub events_retention: Duration,

    /// How often the server looks for change events written by other
    /// servers sharing its database (its own are sent at once).
    #[arg(long, env = "USERS_EVENTS_POLL_INTERVAL", default_value = "200ms",
          value_parser = parse_positive_duration)]
    pub events_poll_interval: Duration,

    /// Publish every change event to this NATS server's JetStream
    /// (`nats://HOST:PORT`; several, comma-separated, for a cluster), on
    /// the subjects `<prefix>.created`, `.updated` and `.deleted`, with
    /// `Nats-Msg-Id` set to the event's sequence; off when not given.
    /// While NATS is down, writes go on and their events wait.
    #[arg(long, env = "USERS_EVENTS_NATS_URL", value_parser = parse_nats_urls)]
    pub events_nats_url: Option<String>,

    /// The JetStream stream events go to, created if missing.
    #[arg(long, env = "USERS_EVENTS_NATS_STREAM", default_value = "USERS_EVENTS",
          value_parser = parse_stream_name)]
    pub events_nats_stream: String,

    /// The subjects' prefix: events go to `<prefix>.<kind>`.
    #[arg(long, env = "USERS_EVENTS_NATS_SUBJECT_PREFIX", default_value = "users.v1.events",
          value_parser = parse_subject_prefix)]
    pub events_nats_subject_prefix: String,

    /// The duplicate window of a stream the server creates: how long
    /// JetStream drops a second send of one event (two servers relaying one
    /// database).
    #[arg(long, env = "USERS_EVENTS_NATS_DUPLICATE_WINDOW", default_value = "2m",
          value_parser = parse_positive_duration)]
    pub events_nats_duplicate_window: Duration,

    /// TLS: plaintext unless `--tls-cert` and `--tls-key` are given.
    #[command(flatten)]
    pub tls: TlsFlags,
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
fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(ttl) if ttl.is_zero() => Err("must be longer than 0".to_owned()),
        Ok(ttl) => Ok(ttl),
        Err(error) => Err(error.to_string()),
    }
}

/// NATS server addresses, comma-separated.
fn parse_nats_urls(text: &str) -> Result<String, String> {
    for url in text.split(',') {
        url.trim()
            .parse::<async_nats::ServerAddr>()
            .map_err(|error| format!("{url:?}: {error}"))?;
    }
    Ok(text.to_owned())
}

/// A JetStream stream name: no spaces, dots, wildcards or path separators.
fn parse_stream_name(text: &str) -> Result<String, String> {
    let bad = |c: char| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\');
    if text.is_empty() || text.contains(bad) {
        return Err(
            "a stream name must be non-empty, with no spaces, '.', '*', '>', '/' or '\\'"
                .to_owned(),
        );
    }
    Ok(text.to_owned())
}

/// A subject prefix: dot-separated tokens, none empty, no wildcards.
fn parse_subject_prefix(text: &str) -> Result<String, String> {
    let bad_token = |token: &str| {
        token.is_empty() || token.contains(|c: char| c.is_whitespace() || c == '*' || c == '>')
    };
    if text.split('.').any(bad_token) {
        return Err(
            "a subject prefix is dot-separated tokens, none empty, with no spaces or wildcards"
                .to_owned(),
        );
    }
    Ok(text.to_owned())
}

impl Config {
    /// The defaults, serving on `listen` and storing in `database_url`.
    pub fn new(listen: SocketAddr, database_url: impl Into<String>) -> Self {
        Self {
            config: None,
            listen,
            database_url: database_url.into(),
            read_replica_urls: Vec::new(),
            max_replica_lag: Duration::from_secs(1),
            pool_size: 8,
            pool_timeout: Duration::from_secs(5),
            isolation: Isolation::ReadCommitted,
            health_check_interval: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(20),
            max_request_size: 4 * 1024 * 1024,
            http2_keepalive_interval: Duration::from_secs(60),
            http2_keepalive_timeout: Duration::from_secs(20),
            max_connection_age: None,
            auth_tokens_file: None,
            auth_all: false,
            grpc_web: false,
            default_timeout: Duration::from_secs(30),
            max_concurrent_calls: 1024,
            max_call_wait: Duration::from_millis(100),
            cors_allow_origins: Vec::new(),
            skip_migrations: false,
            request_id_ttl: Duration::from_secs(24 * 60 * 60),
            events_retention: Duration::from_secs(7 * 24 * 60 * 60),
            events_poll_interval: Duration::from_millis(200),
            events_nats_url: None,
            events_nats_stream: "USERS_EVENTS".to_owned(),
            events_nats_subject_prefix: "users.v1.events".to_owned(),
            events_nats_duplicate_window: Duration::from_secs(120),
            tls: TlsFlags::default(),
            metrics_listen: None,
            log_format: LogFormat::Text,
        }
    }
}
