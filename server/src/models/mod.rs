//! Stored rows and the queries on them, apart from the wire types.
//! Queries run on a [`Tx`](crate::db::Tx), inside a unit of work, and
//! return diesel's `QueryResult`.

mod create_request;
mod event;
mod user;

pub use create_request::CreateRequest;
pub use event::{Event, EventKind, Kept, PUBLISHED};
pub use user::{InsertReturning, NewUser, User, Written, now};
