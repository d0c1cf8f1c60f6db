//! Prometheus metrics: what the server counts, and the HTTP endpoint that
//! serves them (`--metrics-listen`).
//!
//! Each [`Application`](crate::Application) has a [`Registry`] of its own,
//! and its counters are values handed to the code that counts, not a
//! process-wide recorder. So servers that share a process (the end-to-end
//! tests run several at once) never count into one another's numbers, and
//! a test can assert exact counts of its own server. That is why the crate
//! is `prometheus-client`, the Prometheus project's own Rust client: its
//! registry is a plain value. The `metrics` facade records through one
//! global recorder, which every server of the process would share.
//!
//! What a call pays: a counter and a histogram bucket, found by labels
//! that borrow static strings (no allocation). Gauges cost calls nothing:
//! they are read from the pools when `/metrics` is scraped.
//!
//! - [`RpcMetrics`]: calls by method and status code, and their latency;
//!   [`CountRefused`] counts there the calls refused before a handler ran;
//! - [`Database::register_metrics`](crate::db::Database::register_metrics):
//!   the pools' gauges and the transaction retries;
//! - [`MetricsEndpoint`]: `GET /metrics` in the Prometheus text format.

mod endpoint;
mod refused;
mod rpc;

pub use endpoint::MetricsEndpoint;
pub use refused::{CountRefused, Handled};
pub use rpc::RpcMetrics;
