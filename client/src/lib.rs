//! Client for the users service (`users.v1.UserService`).
//!
//! [`UsersClient`] speaks plain Rust: it takes names and [`FindUsers`]
//! queries and returns [`User`]s, [`Page`]s and a typed [`ClientError`]. The
//! generated protobuf types and stubs sit underneath in [`pb`], for callers
//! that need the wire level.
//!
//! ```no_run
//! use users_client::{FindUsers, UsersClient};
//!
//! # async fn run() -> Result<(), users_client::ClientError> {
//! let mut client = UsersClient::connect("http://127.0.0.1:50051").await?;
//! let john = client.create_user("John").await?;
//! let page = client.find_users(&FindUsers::new().name("John")).await?;
//! assert!(page.users.iter().any(|user| user.id == john.id));
//! # Ok(())
//! # }
//! ```
//!
//! Modules:
//! - [`builder`]: [`ClientBuilder`]: several servers, TLS with a CA file
//!   and client certificates, a bearer token, a timeout.
//! - [`client`]: the [`UsersClient`] wrapper and its queries.
//! - [`endpoints`]: the servers a client balances its calls over, and
//!   which of them are away.
//! - [`codec`]: the protobuf codec of the stubs, which answers a request
//!   that does not decode with INVALID_ARGUMENT.
//! - [`consistency`]: the consistency token that lets a client read its
//!   own writes when reads come from read replicas.
//! - [`error`]: [`ClientError`], one variant per status a caller can act on.
//! - [`pb`]: the generated code.
//! - [`retry`]: [`RetryPolicy`], which failed calls are sent again.
//! - [`watch`]: [`WatchUsers`], the changes to users as a stream that
//!   resumes by itself.

pub mod builder;
pub mod client;
pub mod codec;
pub mod consistency;
pub mod endpoints;
pub mod error;
pub mod pb;
pub mod retry;
pub mod watch;

pub use builder::ClientBuilder;
pub use client::{FindUsers, Page, SortField, User, UsersClient};
pub use endpoints::RawClient;
pub use retry::RetryPolicy;
pub use watch::{EventKind, UserEvent, WatchUsers};

/// The README's Rust examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExamples;
pub use error::{ClientError, FieldViolation, ServerError, code_name};
