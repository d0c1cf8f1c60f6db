//! Request values after validation. Handlers parse wire input into these
//! types first, so everything past that point can trust them.

mod name;
mod page;
mod user;

pub use name::{NamePrefix, UserName};
pub use page::{After, NameMatch, OrderBy, PageSize, PageToken, SortField, UserFilter};
pub use user::{Etag, RequestId, UpdateMask, UserId};

/// Input that breaks the API's rules: which field, which rule, in words for
/// the caller to read ("name must not be empty").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {description}")]
pub struct Invalid {
    /// The request field, as a path (`requests[3].name`).
    pub field: String,
    /// Why, in UPPER_SNAKE, for programs (`INVALID_NAME`).
    pub reason: &'static str,
    /// What is wrong, starting with a verb ("must not be empty").
    pub description: String,
}

impl Invalid {
    /// `field` breaks a rule.
    pub fn new(field: &str, reason: &'static str, description: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            reason,
            description: description.into(),
        }
    }
}
