//! Paging: filters, page sizes and page tokens.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

use super::{Invalid, NamePrefix, UserName};

/// The filters of a `FindUsers` call; every one that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFilter {
    /// Exact name.
    pub name: Option<UserName>,
    /// Start of the name, taken literally.
    pub name_prefix: Option<NamePrefix>,
}

impl UserFilter {
    /// What the filters select, in the form the queries take: one exact
    /// name, one prefix range, everyone, or no one (a name that does not
    /// start with the prefix).
    pub fn name_match(&self) -> NameMatch<'_> {
        match (&self.name, &self.name_prefix) {
            (None, None) => NameMatch::Any,
            (Some(name), None) => NameMatch::Exact(name.as_str()),
            (Some(name), Some(prefix)) if name.as_str().starts_with(prefix.as_str()) => {
                NameMatch::Exact(name.as_str())
            }
            (Some(_), Some(_)) => NameMatch::Nothing,
            (None, Some(prefix)) => NameMatch::Prefix {
                from: prefix.as_str(),
                below: prefix.upper_bound(),
            },
        }
    }
}

/// The names a [`UserFilter`] selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameMatch<'a> {
    /// Every name.
    Any,
    /// This name exactly.
    Exact(&'a str),
    /// `from <= name < below`: the names that start with `from`. No `below`
    /// means no upper bound.
    Prefix {
        /// The prefix itself, the least name that starts with it.
        from: &'a str,
        /// The least string above all names that start with `from`.
        below: Option<String>,
    },
    /// No name at all.
    Nothing,
}

/// How many users a page holds: 1 to [`PageSize::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize(u16);

impl PageSize {
    /// What `page_size = 0` means.
    pub const DEFAULT: Self = Self(50);
    /// Larger requests are served this many.
    pub const MAX: Self = Self(1000);

    /// 0 is the default, above the maximum is the maximum, negative is
    /// invalid.
    pub fn parse(requested: i32) -> Result<Self, Invalid> {
        match requested {
            ..0 => Err(Invalid(format!(
                "page_size must not be negative (got {requested})"
            ))),
            0 => Ok(Self::DEFAULT),
            size => Ok(u16::try_from(size).map_or(Self::MAX, |size| Self(size.min(Self::MAX.0)))),
        }
    }

    /// The size as a number.
    pub fn get(self) -> usize {
        usize::from(self.0)
    }
}

/// Where the next page starts: after the user with id `after_id`, for the
/// same filters. Keyset paging, so users created meanwhile never shift the
/// pages (as an offset would).
///
/// On the wire it is opaque: base64url of a version byte, the id, and a
/// CRC-32 over both and the filters. The checksum catches tokens that were
/// edited, made up, or reused with other filters; it is not a secret, and
/// needs none, since a token only ever selects rows the caller may list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageToken {
    after_id: i64,
}

const TOKEN_VERSION: u8 = 1;
const TOKEN_LEN: usize = 1 + 8 + 4;

impl PageToken {
    /// Continue after `after_id`.
    pub fn after(after_id: i64) -> Self {
        Self { after_id }
    }

    /// The id the page starts after.
    pub fn after_id(self) -> i64 {
        self.after_id
    }

    /// Reads a `page_token`; the empty token means the first page (`None`).
    pub fn parse(token: &str, filter: &UserFilter) -> Result<Option<Self>, Invalid> {
        if token.is_empty() {
            return Ok(None);
        }
        let invalid = || {
            Invalid("page_token is not one this server issued for this name and name_prefix; pass next_page_token unchanged, with the same filters".to_owned())
        };
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        let bytes: [u8; TOKEN_LEN] = bytes.try_into().map_err(|_| invalid())?;
        let (body, checksum) = bytes.split_at(1 + 8);
        if body[0] != TOKEN_VERSION || checksum != Self::checksum(body, filter).to_be_bytes() {
            return Err(invalid());
        }
        let after_id = i64::from_be_bytes(body[1..].try_into().map_err(|_| invalid())?);
        Ok(Some(Self { after_id }))
    }

    /// The opaque text for this position under `filter`.
    pub fn encode(self, filter: &UserFilter) -> String {
        let mut bytes = Vec::with_capacity(TOKEN_LEN);
        bytes.push(TOKEN_VERSION);
        bytes.extend_from_slice(&self.after_id.to_be_bytes());
        let checksum = Self::checksum(&bytes, filter);
        bytes.extend_from_slice(&checksum.to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn checksum(body: &[u8], filter: &UserFilter) -> u32 {
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(body);
        // Length-prefixed, so ("ab", "") and ("a", "b") differ.
        for field in [
            filter.name.as_ref().map(UserName::as_str),
            filter.name_prefix.as_ref().map(NamePrefix::as_str),
        ] {
            match field {
                None => hasher.update(&[0]),
                Some(text) => {
                    hasher.update(&[1]);
                    hasher.update(&(text.len() as u64).to_be_bytes());
                    hasher.update(text.as_bytes());
                }
            }
        }
        hasher.finalize()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(name: &str) -> UserFilter {
        UserFilter {
            name: Some(UserName::parse("name", name.to_owned()).unwrap()),
            name_prefix: None,
        }
    }

    #[test]
    fn name_and_prefix_together_reduce_to_one_match() {
        let prefix = |text: &str| NamePrefix::parse("name_prefix", text.to_owned()).unwrap();
        let both = |name_prefix| UserFilter {
            name_prefix,
            ..filter("John")
        };
        assert_eq!(both(prefix("Jo")).name_match(), NameMatch::Exact("John"));
        assert_eq!(both(prefix("Ja")).name_match(), NameMatch::Nothing);
        assert_eq!(UserFilter::default().name_match(), NameMatch::Any);
        assert_eq!(
            UserFilter {
                name: None,
                name_prefix: prefix("Jo"),
            }
            .name_match(),
            NameMatch::Prefix {
                from: "Jo",
                below: Some("Jp".to_owned())
            }
        );
    }

    #[test]
    fn page_sizes_default_cap_and_refuse_negatives() {
        assert_eq!(PageSize::parse(0).unwrap().get(), 50);
        assert_eq!(PageSize::parse(7).unwrap().get(), 7);
        assert_eq!(PageSize::parse(1000).unwrap().get(), 1000);
        assert_eq!(PageSize::parse(1001).unwrap().get(), 1000);
        assert_eq!(PageSize::parse(i32::MAX).unwrap().get(), 1000);
        assert_eq!(
            PageSize::parse(-1).unwrap_err().0,
            "page_size must not be negative (got -1)"
        );
    }

    #[test]
    fn tokens_round_trip_under_the_same_filter() {
        for id in [0, 1, 42, i64::MAX] {
            let token = PageToken::after(id).encode(&filter("John"));
            assert_eq!(
                PageToken::parse(&token, &filter("John")),
                Ok(Some(PageToken::after(id)))
            );
        }
        assert_eq!(PageToken::parse("", &filter("John")), Ok(None));
    }

    #[test]
    fn tokens_for_other_filters_or_made_up_are_refused() {
        let token = PageToken::after(42).encode(&filter("John"));
        assert!(PageToken::parse(&token, &filter("Jane")).is_err());
        assert!(PageToken::parse(&token, &UserFilter::default()).is_err());
        let mut edited = token.into_bytes();
        edited[3] = if edited[3] == b'A' { b'B' } else { b'A' };
        let edited = String::from_utf8(edited).unwrap();
        assert!(PageToken::parse(&edited, &filter("John")).is_err());
        for junk in ["x", "not a token", "AAAAAAAAAAAAAAAAAA", "42", "%%%"] {
            assert!(PageToken::parse(junk, &filter("John")).is_err(), "{junk}");
        }
    }
}
