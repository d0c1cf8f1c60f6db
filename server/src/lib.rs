//! The users service: `users.v1.UserService` over gRPC, backed by SQLite (the
//! default, embedded) or PostgreSQL.
//!
//! A request flows through these modules, top to bottom:
//! - [`startup`]: binds the listener, opens the database, assembles the gRPC
//!   server (users, health, reflection) and runs it until shutdown.
//! - [`service`]: one handler per RPC: parse the request into [`domain`]
//!   types, run one unit of work in one transaction, convert back.
//! - [`domain`]: validated request values (names, page sizes, page tokens);
//!   handlers never see unchecked input.
//! - [`models`]: the stored rows and the queries on them, each written once
//!   for every backend.
//! - [`db`]: database URLs, connection pools, per-backend connection set-up,
//!   transactions, their retries, and migrations.
//! - [`error`]: [`ApiError`](error::ApiError), the one place errors become
//!   gRPC statuses.
//! - [`tls`]: the TLS flags and the certificates they name, checked at
//!   start-up.
//! - [`metrics`]: what is counted, per server, and the `/metrics` endpoint.
//! - [`reflection`]: gRPC server reflection, for tools such as grpcurl.
//! - [`config`] and [`telemetry`]: command line and logging (text or JSON).

// The futures of units of work nest deeply (diesel's queries, per backend,
// in async closures): their layout needs more than the default 128.
#![recursion_limit = "256"]

mod accept;
pub mod auth;
pub mod call_limit;
pub mod config;
pub mod config_file;
pub mod db;
pub mod domain;
pub mod error;
pub mod events;
pub mod health;
pub mod metrics;
pub mod models;
pub mod reflection;
pub mod service;
pub mod startup;
pub mod telemetry;
pub mod tls;
pub mod web;

pub use config::Config;
pub use startup::{Application, StartupError, run, shutdown_signal};
