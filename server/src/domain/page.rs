//! Listings: filters, order, page sizes and page tokens.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Datelike, NaiveDateTime};

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

impl UserFilter {
    /// Whether `name` passes every filter that is set (as
    /// [`name_match`](Self::name_match) selects in a query).
    pub fn matches(&self, name: &str) -> bool {
        self.name
            .as_ref()
            .is_none_or(|wanted| wanted.as_str() == name)
            && self
                .name_prefix
                .as_ref()
                .is_none_or(|prefix| name.starts_with(prefix.as_str()))
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

/// The column a listing is sorted on. Ties are broken by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    /// Creation order.
    Id,
    /// Code point order.
    Name,
    /// Creation time.
    CreateTime,
}

/// `order_by`: a field, ascending or descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderBy {
    /// What to sort on.
    pub field: SortField,
    /// Largest first.
    pub descending: bool,
}

impl OrderBy {
    /// Ascending ids, when `order_by` is empty.
    pub const DEFAULT: Self = Self {
        field: SortField::Id,
        descending: false,
    };

    /// Reads `order_by`: `id`, `name` or `create_time`, optionally followed
    /// by ` desc` (or ` asc`).
    pub fn parse(field: &str, text: &str) -> Result<Self, Invalid> {
        let invalid = || {
            Invalid::new(
                field,
                "INVALID_ORDER_BY",
                format!(
                    "must be \"id\", \"name\" or \"create_time\", optionally followed by \" desc\" (got {text:?})"
                ),
            )
        };
        let words: Vec<&str> = text.split_whitespace().collect();
        let (column, descending) = match words.as_slice() {
            [] => return Ok(Self::DEFAULT),
            [column] => (*column, false),
            [column, "desc"] => (*column, true),
            [column, "asc"] => (*column, false),
            _ => return Err(invalid()),
        };
        let field = match column {
            "id" => SortField::Id,
            "name" => SortField::Name,
            "create_time" => SortField::CreateTime,
            _ => return Err(invalid()),
        };
        Ok(Self { field, descending })
    }

    /// One byte for the page token.
    fn code(self) -> u8 {
        let field = match self.field {
            SortField::Id => 0,
            SortField::Name => 1,
            SortField::CreateTime => 2,
        };
        field * 2 + u8::from(self.descending)
    }
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
            ..0 => Err(Invalid::new(
                "page_size",
                "INVALID_PAGE_SIZE",
                format!("must not be negative (got {requested})"),
            )),
            0 => Ok(Self::DEFAULT),
            size => Ok(u16::try_from(size).map_or(Self::MAX, |size| Self(size.min(Self::MAX.0)))),
        }
    }

    /// The size as a number.
    pub fn get(self) -> usize {
        usize::from(self.0)
    }
}

/// Where a listing continues: after the row with this sort key and id, in
/// the listing's order. Keyset paging: rows created or deleted meanwhile
/// never shift the pages, as they would an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum After {
    /// Ordered by id.
    Id(i64),
    /// Ordered by name, then id.
    Name(String, i64),
    /// Ordered by creation time, then id.
    CreateTime(NaiveDateTime, i64),
}

/// A position in a listing, bound to the query that issued it (filters and
/// order, AIP-158).
///
/// On the wire it is opaque: base64url of a version byte, the order, the
/// position, and a CRC-32 over all of it and the filters. The checksum
/// catches tokens that were edited, made up, or reused with other filters
/// or another order; it is not a secret, and needs none, since a token only
/// ever selects rows the caller may list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken {
    after: After,
}

/// Version 1 (ids only, ascending) is still read, so that paging survives
/// an upgrade of the server.
const TOKEN_V1: u8 = 1;
/// The years a token's `create_time` may fall in. Every real one is a
/// server clock reading; a forged one outside PostgreSQL's range (from 4713
/// BC) would fail the query as INTERNAL instead of the caller's mistake.
const CREATE_TIMES: std::ops::RangeInclusive<i32> = 1..=9999;
const TOKEN_V2: u8 = 2;

impl PageToken {
    /// Continue after `after`.
    pub fn new(after: After) -> Self {
        Self { after }
    }

    /// Where the page starts.
    pub fn after(&self) -> &After {
        &self.after
    }

    /// Into where the page starts.
    pub fn into_after(self) -> After {
        self.after
    }

    /// Reads a `page_token` issued for `filter` and `order`; the empty token
    /// means the first page (`None`).
    pub fn parse(
        token: &str,
        filter: &UserFilter,
        order: OrderBy,
    ) -> Result<Option<Self>, Invalid> {
        if token.is_empty() {
            return Ok(None);
        }
        let invalid = || {
            Invalid::new(
                "page_token",
                "INVALID_PAGE_TOKEN",
                "was not issued for this name, name_prefix and order_by; pass next_page_token unchanged, with the same filters and order",
            )
        };
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        let (body, checksum) = bytes.split_last_chunk::<4>().ok_or_else(invalid)?;
        if *checksum != checksum_of(body, filter).to_be_bytes() {
            return Err(invalid());
        }
        let mut reader = Reader(body);
        let after = match reader.byte() {
            Some(TOKEN_V1) if order == OrderBy::DEFAULT => {
                After::Id(reader.i64().ok_or_else(invalid)?)
            }
            Some(TOKEN_V2) if reader.byte() == Some(order.code()) => {
                let id = reader.i64().ok_or_else(invalid)?;
                match order.field {
                    SortField::Id => After::Id(id),
                    SortField::Name => {
                        let len = reader.u32().ok_or_else(invalid)?;
                        let name = reader.bytes(len).ok_or_else(invalid)?;
                        After::Name(String::from_utf8(name.to_vec()).map_err(|_| invalid())?, id)
                    }
                    SortField::CreateTime => {
                        let micros = reader.i64().ok_or_else(invalid)?;
                        let time = DateTime::from_timestamp_micros(micros)
                            .filter(|time| CREATE_TIMES.contains(&time.year()))
                            .ok_or_else(invalid)?;
                        After::CreateTime(time.naive_utc(), id)
                    }
                }
            }
            _ => return Err(invalid()),
        };
        if !reader.0.is_empty() {
            return Err(invalid());
        }
        Ok(Some(Self { after }))
    }

    /// The opaque text for this position under `filter` and `order`.
    pub fn encode(&self, filter: &UserFilter, order: OrderBy) -> String {
        let mut bytes = vec![TOKEN_V2, order.code()];
        match &self.after {
            After::Id(id) => bytes.extend_from_slice(&id.to_be_bytes()),
            After::Name(name, id) => {
                bytes.extend_from_slice(&id.to_be_bytes());
                // Names are at most 256 characters, far below u32::MAX bytes.
                bytes.extend_from_slice(&(name.len() as u32).to_be_bytes());
                bytes.extend_from_slice(name.as_bytes());
            }
            After::CreateTime(time, id) => {
                bytes.extend_from_slice(&id.to_be_bytes());
                bytes.extend_from_slice(&time.and_utc().timestamp_micros().to_be_bytes());
            }
        }
        let checksum = checksum_of(&bytes, filter);
        bytes.extend_from_slice(&checksum.to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }
}

/// CRC-32 over a token's body and the filters it is bound to.
fn checksum_of(body: &[u8], filter: &UserFilter) -> u32 {
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

/// Reads a token's body front to back; `None` when it runs short.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes(&mut self, len: u32) -> Option<&'a [u8]> {
        let len = usize::try_from(len).ok()?;
        let taken = self.0.get(..len)?;
        self.0 = &self.0[len..];
        Some(taken)
    }

    fn byte(&mut self) -> Option<u8> {
        Some(self.bytes(1)?[0])
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.bytes(4)?.try_into().ok()?))
    }

    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.bytes(8)?.try_into().ok()?))
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
            PageSize::parse(-1).unwrap_err().to_string(),
            "page_size must not be negative (got -1)"
        );
    }

    #[test]
    fn order_by_names_a_field_and_maybe_a_direction() {
        let order = |text| OrderBy::parse("order_by", text);
        assert_eq!(order(""), Ok(OrderBy::DEFAULT));
        assert_eq!(order("id"), Ok(OrderBy::DEFAULT));
        assert_eq!(
            order(" name  desc "),
            Ok(OrderBy {
                field: SortField::Name,
                descending: true
            })
        );
        assert_eq!(
            order("create_time asc"),
            Ok(OrderBy {
                field: SortField::CreateTime,
                descending: false
            })
        );
        for bad in [
            "age",
            "name,id",
            "name desc id",
            "NAME",
            "name DESC x",
            "desc",
        ] {
            assert_eq!(order(bad).unwrap_err().reason, "INVALID_ORDER_BY", "{bad}");
        }
    }

    fn positions() -> Vec<(OrderBy, After)> {
        let time = DateTime::from_timestamp_micros(1_764_000_000_123_456)
            .unwrap()
            .naive_utc();
        let by = |field, descending| OrderBy { field, descending };
        vec![
            (by(SortField::Id, false), After::Id(42)),
            (by(SortField::Id, true), After::Id(i64::MAX)),
            (by(SortField::Name, false), After::Name("Zoë 😀".into(), 7)),
            (by(SortField::Name, true), After::Name(String::new(), 1)),
            (by(SortField::CreateTime, false), After::CreateTime(time, 3)),
            (by(SortField::CreateTime, true), After::CreateTime(time, 0)),
        ]
    }

    #[test]
    fn tokens_round_trip_under_the_same_filter_and_order() {
        for (order, after) in positions() {
            let token = PageToken::new(after.clone()).encode(&filter("John"), order);
            assert_eq!(
                PageToken::parse(&token, &filter("John"), order),
                Ok(Some(PageToken::new(after)))
            );
        }
        assert_eq!(
            PageToken::parse("", &filter("John"), OrderBy::DEFAULT),
            Ok(None)
        );
    }

    #[test]
    fn tokens_for_other_filters_or_orders_or_made_up_are_refused() {
        for (order, after) in positions() {
            let token = PageToken::new(after).encode(&filter("John"), order);
            assert!(PageToken::parse(&token, &filter("Jane"), order).is_err());
            assert!(PageToken::parse(&token, &UserFilter::default(), order).is_err());
            for (other, _) in positions() {
                if other != order {
                    assert!(PageToken::parse(&token, &filter("John"), other).is_err());
                }
            }
            let mut edited = token.into_bytes();
            edited[3] = if edited[3] == b'A' { b'B' } else { b'A' };
            let edited = String::from_utf8(edited).unwrap();
            assert!(PageToken::parse(&edited, &filter("John"), order).is_err());
        }
        for junk in ["x", "not a token", "AAAAAAAAAAAAAAAAAA", "42", "%%%"] {
            let refused = PageToken::parse(junk, &filter("John"), OrderBy::DEFAULT).unwrap_err();
            assert_eq!(refused.reason, "INVALID_PAGE_TOKEN", "{junk}");
        }
    }

    #[test]
    fn forged_tokens_with_times_no_clock_shows_are_refused() {
        let by_time = OrderBy::parse("order_by", "create_time").unwrap();
        for micros in [
            -8_334_000_000_000_000_000_i64, // 262,000 BC, before PostgreSQL's range
            -62_135_596_800_000_001,        // a microsecond before year 1
            253_402_300_800_000_000,        // year 10000
        ] {
            let mut bytes = vec![TOKEN_V2, by_time.code()];
            bytes.extend_from_slice(&7i64.to_be_bytes());
            bytes.extend_from_slice(&micros.to_be_bytes());
            let crc = checksum_of(&bytes, &filter("John"));
            bytes.extend_from_slice(&crc.to_be_bytes());
            let token = URL_SAFE_NO_PAD.encode(bytes);
            let refused = PageToken::parse(&token, &filter("John"), by_time).unwrap_err();
            assert_eq!(refused.reason, "INVALID_PAGE_TOKEN", "{micros}");
        }
    }

    #[test]
    fn tokens_of_the_previous_version_still_page_by_id() {
        // Version 1: [1][id][crc], ids ascending only.
        let mut bytes = vec![1];
        bytes.extend_from_slice(&42i64.to_be_bytes());
        let crc = checksum_of(&bytes, &filter("John"));
        bytes.extend_from_slice(&crc.to_be_bytes());
        let token = URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(
            PageToken::parse(&token, &filter("John"), OrderBy::DEFAULT),
            Ok(Some(PageToken::new(After::Id(42))))
        );
        let by_name = OrderBy::parse("order_by", "name").unwrap();
        assert!(PageToken::parse(&token, &filter("John"), by_name).is_err());
    }
}
