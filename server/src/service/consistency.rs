//! `x-consistency-token`: what gives a caller its own writes back when
//! reads may come from a read replica ([`replicas`](crate::db::replicas)).
//!
//! A write's response carries the token (a PostgreSQL WAL position, past
//! the write's commit); a read that sends it back sees that write. Only
//! servers with read replicas send tokens; every server accepts them.

use tonic::metadata::{AsciiMetadataValue, MetadataMap};

use crate::db::replicas::Lsn;
use crate::domain::Invalid;

/// The metadata key, in requests and in responses.
pub const KEY: &str = "x-consistency-token";

/// The token the caller presented, if any.
pub fn of_call(metadata: &MetadataMap) -> Result<Option<Lsn>, Invalid> {
    let Some(value) = metadata.get(KEY) else {
        return Ok(None);
    };
    let invalid = || {
        Invalid::new(
            KEY,
            "INVALID_CONSISTENCY_TOKEN",
            "must be the value of a write's x-consistency-token, a WAL position such as 16/B374D848",
        )
    };
    let text = value.to_str().map_err(|_| invalid())?;
    text.parse().map(Some).map_err(|_| invalid())
}

/// Sends `position`, the call's writes' token, back with its response.
pub fn send(position: Lsn, metadata: &mut MetadataMap) {
    let value = AsciiMetadataValue::try_from(position.to_string())
        .expect("a WAL position is printable ASCII");
    metadata.insert(KEY, value);
}
