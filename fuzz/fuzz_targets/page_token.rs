//! Page tokens as a hostile caller sends them: any text, under any filter
//! and order. Reading one never panics, and a token that reads as a
//! position is the one FindUsers would issue for it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use users_server::domain::{NamePrefix, OrderBy, PageToken, SortField, UserFilter, UserName};

fuzz_target!(|input: (&str, u8, Option<String>, Option<String>)| {
    let (token, order_code, name, prefix) = input;
    let order = OrderBy {
        field: match order_code % 3 {
            0 => SortField::Id,
            1 => SortField::Name,
            _ => SortField::CreateTime,
        },
        descending: order_code & 0x80 != 0,
    };
    let Ok(name) = name.map(|name| UserName::parse("name", name)).transpose() else {
        return;
    };
    let Ok(name_prefix) =
        prefix.map_or(Ok(None), |prefix| NamePrefix::parse("name_prefix", prefix))
    else {
        return;
    };
    let filter = UserFilter { name, name_prefix };
    match PageToken::parse(token, &filter, order) {
        Ok(None) => assert!(token.is_empty()),
        Ok(Some(position)) => {
            // Whatever reads as a position re-encodes to a token that reads
            // as the same position (not necessarily the same text: version 1
            // tokens are re-issued as version 2).
            let again = position.encode(&filter, order);
            assert_eq!(PageToken::parse(&again, &filter, order), Ok(Some(position)));
        }
        Err(invalid) => assert_eq!(invalid.reason, "INVALID_PAGE_TOKEN"),
    }
});
