//! Request values after validation. Handlers parse wire input into these
//! types first, so everything past that point can trust them.

mod name;
mod page;

pub use name::{NamePrefix, UserName};
pub use page::{NameMatch, PageSize, PageToken, UserFilter};

/// Input that breaks the API's rules; the message says which rule, for the
/// caller to read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);
