//! User names, and the filters on them.

use super::Invalid;

/// Longest name, in characters (Unicode scalar values, not bytes).
pub const MAX_NAME_CHARS: usize = 256;

/// The reason of every error about a name.
const REASON: &str = "INVALID_NAME";

/// A valid user name: 1 to 256 characters, not only whitespace, no control
/// characters. Kept exactly as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    /// Checks `name` against the naming rules; `field` names the request
    /// field in the error message.
    pub fn parse(field: &str, name: String) -> Result<Self, Invalid> {
        if name.is_empty() {
            return Err(Invalid::new(field, REASON, "must not be empty"));
        }
        check_text(field, REASON, &name)?;
        if name.chars().all(char::is_whitespace) {
            return Err(Invalid::new(field, REASON, "must not be only whitespace"));
        }
        Ok(Self(name))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A `name_prefix` filter: up to 256 characters, no control characters.
/// Whitespace is allowed (names may start with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePrefix(String);

impl NamePrefix {
    /// Checks `prefix`; the empty prefix means "no filter" and is `None`.
    pub fn parse(field: &str, prefix: String) -> Result<Option<Self>, Invalid> {
        if prefix.is_empty() {
            return Ok(None);
        }
        check_text(field, "INVALID_NAME_PREFIX", &prefix)?;
        Ok(Some(Self(prefix)))
    }

    /// The prefix as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The least string above every string that starts with this prefix,
    /// in code point order (which is byte order for UTF-8, and so the order
    /// of PostgreSQL's "C" collation and SQLite's BINARY one): the prefix
    /// with its last character incremented. `None` if no such string exists
    /// (the prefix is all U+10FFFF).
    ///
    /// So "starts with `p`" is the range `p <= name < upper_bound(p)`, which
    /// an index serves with a plan that does not depend on the value, unlike
    /// `LIKE`, and with no wildcard characters to escape.
    pub fn upper_bound(&self) -> Option<String> {
        let mut chars: Vec<char> = self.0.chars().collect();
        while let Some(last) = chars.pop() {
            let next = match last {
                // Skip the surrogate block, which holds no chars.
                '\u{D7FF}' => Some('\u{E000}'),
                last => char::from_u32(u32::from(last) + 1),
            };
            if let Some(next) = next {
                chars.push(next);
                return Some(chars.into_iter().collect());
            }
        }
        None
    }
}

/// The rules shared by names and prefixes: length and control characters.
fn check_text(field: &str, reason: &'static str, text: &str) -> Result<(), Invalid> {
    let chars = text.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(Invalid::new(
            field,
            reason,
            format!("is {chars} characters long; at most {MAX_NAME_CHARS} are allowed"),
        ));
    }
    if let Some((at, c)) = text.chars().enumerate().find(|(_, c)| c.is_control()) {
        return Err(Invalid::new(
            field,
            reason,
            format!(
                "must not contain control characters (found U+{:04X} at character {})",
                u32::from(c),
                at + 1
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Result<UserName, String> {
        UserName::parse("name", text.to_owned()).map_err(|invalid| invalid.to_string())
    }

    #[test]
    fn names_are_kept_exactly_as_given() {
        for text in [
            "John",
            " padded ",
            "Zoë 😀",
            "O'Brien",
            "'; DROP TABLE users; --",
            "%_",
        ] {
            assert_eq!(name(text).unwrap().as_str(), text);
        }
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        assert!(name(&"é".repeat(256)).is_ok());
        assert_eq!(
            name(&"a".repeat(257)).unwrap_err(),
            "name is 257 characters long; at most 256 are allowed"
        );
    }

    #[test]
    fn empty_blank_and_control_characters_are_refused() {
        assert_eq!(name("").unwrap_err(), "name must not be empty");
        assert_eq!(
            name(" \t\u{3000}").unwrap_err(),
            "name must not contain control characters (found U+0009 at character 2)"
        );
        assert_eq!(
            name("  \u{3000}").unwrap_err(),
            "name must not be only whitespace"
        );
        assert_eq!(
            name("a\0b").unwrap_err(),
            "name must not contain control characters (found U+0000 at character 2)"
        );
        assert!(name("line\nbreak").is_err());
        assert!(name("del\u{7f}").is_err());
        assert!(name("c1\u{85}").is_err());
    }

    #[test]
    fn a_prefix_range_ends_at_the_prefix_with_its_last_char_incremented() {
        let upper = |text: &str| {
            NamePrefix::parse("name_prefix", text.to_owned())
                .unwrap()
                .unwrap()
                .upper_bound()
        };
        assert_eq!(upper("Jo").as_deref(), Some("Jp"));
        assert_eq!(upper("user-0099").as_deref(), Some("user-009:"));
        assert_eq!(upper("Zo\u{eb}").as_deref(), Some("Zo\u{ec}"));
        assert_eq!(upper("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(upper("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(upper("\u{10FFFF}\u{10FFFF}"), None);
    }

    #[test]
    fn prefixes_may_be_blank_but_not_control() {
        assert_eq!(NamePrefix::parse("name_prefix", String::new()), Ok(None));
        assert!(
            NamePrefix::parse("name_prefix", " ".into())
                .unwrap()
                .is_some()
        );
        assert!(NamePrefix::parse("name_prefix", "\0".into()).is_err());
        assert!(NamePrefix::parse("name_prefix", "x".repeat(257)).is_err());
    }
}
