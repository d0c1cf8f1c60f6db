//! Hostile input, as properties: whatever a caller sends, validation answers
//! `Ok` or an `Invalid` naming the field, never panics, and valid input
//! round-trips; page tokens never decode for another query; bytes that
//! decode as a request go through the real handlers without an INTERNAL.
//!
//! Case counts are proptest's default (256), a few seconds in all;
//! `PROPTEST_CASES=100000` runs longer. The `fuzz/` targets explore the same
//! ground with coverage guidance.

use std::{cell::Cell, time::Duration};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, NaiveDateTime};
use proptest::prelude::*;
use prost::Message;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;
use users_client::pb::{self, user_service_server::UserService};
use users_server::{
    db::{Database, PoolOptions, migrations},
    domain::{
        After, Etag, Invalid, NamePrefix, OrderBy, PageSize, PageToken, RequestId, SortField,
        UpdateMask, UserFilter, UserId, UserName,
    },
    service::UsersService,
};

// ---- Strategies -----------------------------------------------------------

/// Text a hostile caller might send: any Unicode, control characters, blank
/// runs, strings around the 256-character limit, SQL and LIKE wildcards.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ \t\n\r\0\u{1}\u{7f}\u{85}\u{a0}\u{3000}a-zA-Z0-9%_'\"\\\\;-]{0,12}",
        "\\PC{250,260}",
        "[ \u{3000}]{1,5}",
        "\\PC{0,3}[\0-\u{1f}\u{7f}-\u{9f}]\\PC{0,3}",
        "\\PC{1,20}",
    ]
}

/// Names that follow the rules.
fn valid_name() -> impl Strategy<Value = String> {
    "\\PC{1,256}".prop_filter("not only whitespace", |name| {
        !name.chars().all(char::is_whitespace)
    })
}

fn order() -> impl Strategy<Value = OrderBy> {
    (
        prop_oneof![
            Just(SortField::Id),
            Just(SortField::Name),
            Just(SortField::CreateTime)
        ],
        any::<bool>(),
    )
        .prop_map(|(field, descending)| OrderBy { field, descending })
}

fn filter() -> impl Strategy<Value = UserFilter> {
    (
        proptest::option::of(valid_name()),
        proptest::option::of("\\PC{1,20}"),
    )
        .prop_map(|(name, prefix)| UserFilter {
            name: name.map(|name| UserName::parse("name", name).unwrap()),
            name_prefix: prefix
                .and_then(|prefix| NamePrefix::parse("name_prefix", prefix).unwrap()),
        })
}

/// A position that fits `order`, as FindUsers issues them.
fn position(order: OrderBy) -> BoxedStrategy<After> {
    match order.field {
        SortField::Id => any::<i64>().prop_map(After::Id).boxed(),
        SortField::Name => (valid_name(), any::<i64>())
            .prop_map(|(name, id)| After::Name(name, id))
            .boxed(),
        SortField::CreateTime => (any_time(), any::<i64>())
            .prop_map(|(time, id)| After::CreateTime(time, id))
            .boxed(),
    }
}

/// Any time from year 1 to 9999 (a server clock reading; tokens refuse
/// others), at the microsecond precision the database stores.
fn any_time() -> impl Strategy<Value = NaiveDateTime> {
    let min: i64 = -62_135_596_800_000_000; // 0001-01-01
    let max: i64 = 253_402_300_799_999_999; // 9999-12-31T23:59:59.999999
    (min..=max).prop_map(|micros| DateTime::from_timestamp_micros(micros).unwrap().naive_utc())
}

/// A real token, the filter and order it was issued for.
fn issued_token() -> impl Strategy<Value = (String, UserFilter, OrderBy, After)> {
    (filter(), order()).prop_flat_map(|(filter, order)| {
        position(order).prop_map(move |after| {
            let token = PageToken::new(after.clone()).encode(&filter, order);
            (token, filter.clone(), order, after)
        })
    })
}

/// An edit of a token: one character changed, cut short, lengthened, or
/// two characters swapped.
#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, char),
    Truncate(usize),
    Insert(usize, char),
    Swap(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let base64_char = prop_oneof![
        proptest::char::range('A', 'Z'),
        proptest::char::range('a', 'z'),
        proptest::char::range('0', '9'),
        Just('-'),
        Just('_'),
        Just('='),
        Just('+'),
        Just('/'),
        any::<char>(),
    ];
    prop_oneof![
        (any::<usize>(), base64_char.clone()).prop_map(|(at, c)| Edit::Replace(at, c)),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), base64_char).prop_map(|(at, c)| Edit::Insert(at, c)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::Swap(a, b)),
    ]
}

fn apply(token: &str, edit: &Edit) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let len = chars.len();
    match *edit {
        Edit::Replace(at, c) => chars[at % len] = c,
        Edit::Truncate(at) => chars.truncate(at % len),
        Edit::Insert(at, c) => chars.insert(at % (len + 1), c),
        Edit::Swap(a, b) => chars.swap(a % len, b % len),
    }
    chars.into_iter().collect()
}

/// A refusal is about `field`, and says why in the documented form.
fn assert_refuses(invalid: &Invalid, field: &str, reason: &str) {
    assert_eq!(invalid.field, field);
    assert_eq!(invalid.reason, reason);
    assert!(!invalid.description.is_empty());
    assert_eq!(
        invalid.to_string(),
        format!("{field} {}", invalid.description)
    );
}

// ---- Request validation ---------------------------------------------------

proptest! {
    #[test]
    fn names_are_accepted_exactly_when_they_follow_the_rules(text in hostile_text()) {
        let follows_rules = !text.is_empty()
            && text.chars().count() <= 256
            && !text.chars().any(char::is_control)
            && !text.chars().all(char::is_whitespace);
        match UserName::parse("requests[7].name", text.clone()) {
            Ok(name) => {
                prop_assert!(follows_rules, "{text:?} accepted");
                prop_assert_eq!(name.as_str(), text.as_str());
            }
            Err(invalid) => {
                prop_assert!(!follows_rules, "{text:?} refused: {invalid}");
                assert_refuses(&invalid, "requests[7].name", "INVALID_NAME");
            }
        }
    }

    #[test]
    fn valid_names_round_trip(name in valid_name()) {
        let parsed = UserName::parse("name", name.clone()).unwrap();
        prop_assert_eq!(parsed.as_str(), name.as_str());
    }

    #[test]
    fn prefixes_are_kept_or_refused_and_bound_every_name_they_start(
        text in hostile_text(),
        rest in "\\PC{0,5}",
    ) {
        match NamePrefix::parse("name_prefix", text.clone()) {
            Ok(None) => prop_assert!(text.is_empty()),
            Ok(Some(prefix)) => {
                prop_assert_eq!(prefix.as_str(), text.as_str());
                // Every name starting with the prefix lies in the range the
                // query uses: prefix <= name < upper_bound.
                let name = format!("{text}{rest}");
                prop_assert!(prefix.as_str() <= name.as_str());
                if let Some(upper) = prefix.upper_bound() {
                    prop_assert!(name.as_str() < upper.as_str(), "{name:?} >= {upper:?}");
                }
            }
            Err(invalid) => assert_refuses(&invalid, "name_prefix", "INVALID_NAME_PREFIX"),
        }
    }

    #[test]
    fn ids_are_accepted_exactly_when_positive(id in any::<i64>()) {
        match UserId::parse("user.id", id) {
            Ok(parsed) => prop_assert!(id > 0 && parsed.get() == id),
            Err(invalid) => {
                prop_assert!(id <= 0);
                assert_refuses(&invalid, "user.id", "INVALID_USER_ID");
            }
        }
    }

    #[test]
    fn etags_are_issued_revisions_or_refused(text in hostile_text(), revision in 1..=i64::MAX) {
        match Etag::parse("user.etag", &text) {
            Ok(None) => prop_assert!(text.is_empty()),
            Ok(Some(etag)) => prop_assert!(etag.revision() > 0),
            Err(invalid) => assert_refuses(&invalid, "user.etag", "INVALID_ETAG"),
        }
        let issued = Etag::of(revision).to_string();
        prop_assert_eq!(Etag::parse("etag", &issued), Ok(Some(Etag::of(revision))));
    }

    #[test]
    fn request_ids_are_uuids_in_one_spelling_or_refused(
        text in prop_oneof![hostile_text(), "[0-9a-fA-F{}-]{30,40}"],
        uuid in any::<u128>().prop_filter("not nil", |bits| *bits != 0),
    ) {
        match RequestId::parse("request_id", &text) {
            Ok(None) => prop_assert!(text.is_empty()),
            Ok(Some(id)) => {
                // Canonical: reading it again gives itself.
                let again = RequestId::parse("request_id", id.as_str()).unwrap().unwrap();
                prop_assert_eq!(again.as_str(), id.as_str());
            }
            Err(invalid) => assert_refuses(&invalid, "request_id", "INVALID_REQUEST_ID"),
        }
        let uuid = uuid::Uuid::from_u128(uuid);
        let canonical = uuid.hyphenated().to_string();
        for spelling in [
            canonical.clone(),
            canonical.to_uppercase(),
            uuid.simple().to_string(),
            uuid.braced().to_string(),
        ] {
            let id = RequestId::parse("request_id", &spelling).unwrap().unwrap();
            prop_assert_eq!(id.as_str(), canonical.as_str());
        }
    }

    #[test]
    fn page_sizes_are_clamped_or_refused(size in any::<i32>()) {
        match PageSize::parse(size) {
            Ok(parsed) => {
                prop_assert!(size >= 0);
                prop_assert!((1..=1000).contains(&parsed.get()));
                if (1..=1000).contains(&size) {
                    prop_assert_eq!(parsed.get(), size as usize);
                }
            }
            Err(invalid) => {
                prop_assert!(size < 0);
                assert_refuses(&invalid, "page_size", "INVALID_PAGE_SIZE");
            }
        }
    }

    #[test]
    fn order_by_is_parsed_or_refused(text in prop_oneof![
        hostile_text(),
        "[ \t]{0,2}(id|name|create_time|desc|asc|NAME|x)([ \t]{1,2}(desc|asc|DESC|id)){0,2}[ \t]{0,2}",
    ]) {
        if let Err(invalid) = OrderBy::parse("order_by", &text) {
            assert_refuses(&invalid, "order_by", "INVALID_ORDER_BY");
        }
    }

    #[test]
    fn every_spelling_of_a_valid_order_reads_back(
        order in order(),
        space in "[ \t\n]{1,3}",
        edge in "[ \t]{0,2}",
        explicit_asc in any::<bool>(),
    ) {
        let field = match order.field {
            SortField::Id => "id",
            SortField::Name => "name",
            SortField::CreateTime => "create_time",
        };
        let direction = match (order.descending, explicit_asc) {
            (true, _) => format!("{space}desc"),
            (false, true) => format!("{space}asc"),
            (false, false) => String::new(),
        };
        let text = format!("{edge}{field}{direction}{edge}");
        prop_assert_eq!(OrderBy::parse("order_by", &text), Ok(order));
    }

    #[test]
    fn update_masks_name_the_name_or_are_refused(
        paths in proptest::collection::vec(
            prop_oneof![
                Just("name".to_owned()),
                Just("*".to_owned()),
                Just("id".to_owned()),
                Just("etag".to_owned()),
                hostile_text(),
            ],
            0..5,
        ),
    ) {
        let only_name = paths.iter().all(|path| path == "name" || path == "*");
        match UpdateMask::parse("update_mask", paths.iter().map(String::as_str)) {
            Ok(mask) => prop_assert!(only_name && mask.name),
            Err(invalid) => {
                prop_assert!(!only_name);
                assert_refuses(&invalid, "update_mask", "INVALID_UPDATE_MASK");
            }
        }
    }
}

// ---- Page tokens ----------------------------------------------------------

proptest! {
    #[test]
    fn tokens_round_trip_under_their_own_filter_and_order(
        (token, filter, order, after) in issued_token(),
    ) {
        prop_assert_eq!(
            PageToken::parse(&token, &filter, order),
            Ok(Some(PageToken::new(after)))
        );
    }

    #[test]
    fn tokens_never_decode_for_another_filter_or_order(
        (token, filter, order, _after) in issued_token(),
        other_filter in filter(),
        other_order in order(),
    ) {
        if other_filter != filter || other_order != order {
            let parsed = PageToken::parse(&token, &other_filter, other_order);
            prop_assert!(parsed.is_err(), "{token} decoded for another query: {parsed:?}");
        }
    }

    /// CRC-32 catches every error burst up to 32 bits, so one character
    /// changed or added is always refused, and so are cuts and swaps in
    /// practice (accepted once in 2^32, if ever).
    #[test]
    fn edited_tokens_are_refused(
        (token, filter, order, _after) in issued_token(),
        edit in edit(),
        query_filter in prop_oneof![Just(None), filter().prop_map(Some)],
    ) {
        let edited = apply(&token, &edit);
        prop_assume!(edited != token);
        let query_filter = query_filter.unwrap_or(filter);
        match PageToken::parse(&edited, &query_filter, order) {
            Err(invalid) => assert_refuses(&invalid, "page_token", "INVALID_PAGE_TOKEN"),
            // Cut to nothing: no token, the first page.
            Ok(None) => prop_assert!(edited.is_empty()),
            Ok(Some(parsed)) => prop_assert!(false, "{edit:?} of {token} gave {edited}, read as {parsed:?}"),
        }
    }

    #[test]
    fn made_up_tokens_are_refused_without_panicking(
        text in prop_oneof![hostile_text(), "[A-Za-z0-9_-]{0,80}"],
        filter in filter(),
        order in order(),
    ) {
        match PageToken::parse(&text, &filter, order) {
            Ok(None) => prop_assert!(text.is_empty()),
            Ok(Some(token)) => prop_assert!(false, "{text:?} read as {token:?}"),
            Err(invalid) => assert_refuses(&invalid, "page_token", "INVALID_PAGE_TOKEN"),
        }
    }

    /// Tokens are checksummed, not signed: anyone can forge one whose
    /// checksum is right. Forged bodies of any shape must still be read
    /// without panicking, as a position or as a refusal.
    #[test]
    fn forged_tokens_with_a_right_checksum_never_panic(
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            (0u8..8, proptest::collection::vec(any::<u8>(), 0..40)).prop_map(|(code, rest)| {
                let mut body = vec![2, code];
                body.extend(rest);
                body
            }),
        ],
        filter in filter(),
        order in order(),
    ) {
        let token = URL_SAFE_NO_PAD.encode(with_checksum(body, &filter));
        if let Err(invalid) = PageToken::parse(&token, &filter, order) {
            assert_refuses(&invalid, "page_token", "INVALID_PAGE_TOKEN");
        }
    }
}

/// `body` followed by the checksum `PageToken` expects for `filter`: the
/// token layout of `domain::page`, restated.
fn with_checksum(mut body: Vec<u8>, filter: &UserFilter) -> Vec<u8> {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&body);
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
    body.extend_from_slice(&hasher.finalize().to_be_bytes());
    body
}

#[test]
fn a_forged_checksum_matches_the_real_one() {
    // Guards the restated layout above: if the format changes, the forging
    // property would silently stop reaching the body.
    let filter = UserFilter::default();
    let mut body = vec![2, 0];
    body.extend_from_slice(&42i64.to_be_bytes());
    let token = URL_SAFE_NO_PAD.encode(with_checksum(body, &filter));
    assert_eq!(
        PageToken::parse(&token, &filter, OrderBy::DEFAULT),
        Ok(Some(PageToken::new(After::Id(42))))
    );
}

// ---- Proto decoding, through the real handlers -----------------------------

/// The users service on a fresh SQLite file, and a runtime to call it on.
struct Handlers {
    runtime: tokio::runtime::Runtime,
    service: UsersService,
    _dir: tempfile::TempDir,
}

impl Handlers {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let url: users_server::db::DatabaseUrl =
            format!("sqlite://{}", dir.path().join("users.db").display())
                .parse()
                .unwrap();
        let service = runtime.block_on(async {
            migrations::prepare(&url, migrations::Mode::Apply)
                .await
                .unwrap();
            let db = Database::open(
                url,
                PoolOptions {
                    size: 2,
                    timeout: Duration::from_secs(5),
                    isolation: Default::default(),
                },
            )
            .unwrap();
            UsersService::new(db, Duration::from_secs(3600))
        });
        Self {
            runtime,
            service,
            _dir: dir,
        }
    }

    /// Decodes `bytes` as each request type and calls its handler with
    /// whatever decodes; returns the statuses of the calls made.
    fn call_with_bytes(&self, bytes: &[u8]) -> Vec<(&'static str, Result<(), Status>)> {
        let service = &self.service;
        let mut outcomes = Vec::new();
        self.runtime.block_on(async {
            if let Ok(request) = pb::CreateUserRequest::decode(bytes) {
                outcomes.push((
                    "CreateUser",
                    service.create_user(Request::new(request)).await.map(drop),
                ));
            }
            if let Ok(request) = pb::FindUsersRequest::decode(bytes) {
                outcomes.push((
                    "FindUsers",
                    service
                        .find_users(Request::new(request.clone()))
                        .await
                        .map(drop),
                ));
                outcomes.push(("ExportUsers", export(service, request).await));
            }
            if let Ok(request) = pb::GetUserRequest::decode(bytes) {
                outcomes.push((
                    "GetUser",
                    service.get_user(Request::new(request)).await.map(drop),
                ));
            }
            if let Ok(request) = pb::UpdateUserRequest::decode(bytes) {
                outcomes.push((
                    "UpdateUser",
                    service.update_user(Request::new(request)).await.map(drop),
                ));
            }
            if let Ok(request) = pb::DeleteUserRequest::decode(bytes) {
                outcomes.push((
                    "DeleteUser",
                    service.delete_user(Request::new(request)).await.map(drop),
                ));
            }
            if let Ok(request) = pb::BatchCreateUsersRequest::decode(bytes) {
                outcomes.push((
                    "BatchCreateUsers",
                    service
                        .batch_create_users(Request::new(request))
                        .await
                        .map(drop),
                ));
            }
        });
        outcomes
    }
}

/// Runs an export to its end (or its first error).
async fn export(service: &UsersService, request: pb::FindUsersRequest) -> Result<(), Status> {
    use futures_util::StreamExt;
    let mut users = service
        .export_users(Request::new(request.into()))
        .await?
        .into_inner();
    while let Some(user) = users.next().await {
        user?;
    }
    Ok(())
}

/// The statuses a caller's input can earn: never INTERNAL (our bug),
/// UNKNOWN (a panic) or UNAVAILABLE (the database gave way). An
/// INVALID_ARGUMENT names a field.
fn assert_callers_fault_at_most(method: &str, outcome: &Result<(), Status>) {
    let Err(status) = outcome else { return };
    assert!(
        matches!(
            status.code(),
            Code::InvalidArgument | Code::NotFound | Code::Aborted | Code::FailedPrecondition
        ),
        "{method}: {status:?}"
    );
    if status.code() == Code::InvalidArgument {
        let bad = status.get_details_bad_request().expect("a BadRequest");
        assert!(
            !bad.field_violations[0].field.is_empty(),
            "{method}: {status:?}"
        );
    }
}

/// Bytes that a request might hold: anything, or a real request with some
/// bytes changed.
fn request_bytes() -> impl Strategy<Value = Vec<u8>> {
    let real = prop_oneof![
        (hostile_text(), hostile_text()).prop_map(|(name, request_id)| {
            pb::CreateUserRequest { name, request_id }.encode_to_vec()
        }),
        (
            hostile_text(),
            hostile_text(),
            any::<i32>(),
            hostile_text(),
            hostile_text()
        )
            .prop_map(|(name, name_prefix, page_size, page_token, order_by)| {
                pb::FindUsersRequest {
                    name,
                    name_prefix,
                    page_size,
                    page_token,
                    order_by,
                }
                .encode_to_vec()
            }),
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        (
            real,
            proptest::collection::vec((any::<usize>(), any::<u8>()), 0..3)
        )
            .prop_map(|(mut bytes, flips)| {
                for (at, byte) in flips {
                    if !bytes.is_empty() {
                        let len = bytes.len();
                        bytes[at % len] = byte;
                    }
                }
                bytes
            }),
    ]
}

#[test]
fn bytes_that_decode_as_a_request_never_earn_an_internal_error() {
    let handlers = Handlers::start();
    let calls = Cell::new(0);
    proptest!(|(bytes in request_bytes())| {
        for (method, outcome) in handlers.call_with_bytes(&bytes) {
            calls.set(calls.get() + 1);
            assert_callers_fault_at_most(method, &outcome);
        }
    });
    println!("handler calls made from decoded bytes: {}", calls.get());
}

/// Structured requests reach every branch of validation, which random bytes
/// rarely do.
fn hostile_request() -> impl Strategy<Value = Vec<u8>> {
    let id = prop_oneof![
        Just(0i64),
        Just(-1),
        Just(i64::MIN),
        Just(i64::MAX),
        1i64..5
    ];
    let etag = prop_oneof![Just(String::new()), Just("1".to_owned()), hostile_text()];
    prop_oneof![
        forged_find_request(),
        (id.clone(), etag.clone())
            .prop_map(|(id, etag)| pb::DeleteUserRequest { id, etag }.encode_to_vec()),
        id.clone()
            .prop_map(|id| pb::GetUserRequest { id }.encode_to_vec()),
        (
            proptest::option::of((id, hostile_text(), etag)),
            proptest::option::of(proptest::collection::vec(hostile_text(), 0..3)),
        )
            .prop_map(|(user, paths)| pb::UpdateUserRequest {
                user: user.map(|(id, name, etag)| pb::User {
                    id,
                    name,
                    etag,
                    ..Default::default()
                }),
                update_mask: paths.map(|paths| prost_types::FieldMask { paths }),
            }
            .encode_to_vec()),
        proptest::collection::vec((hostile_text(), hostile_text()), 0..4).prop_map(|entries| {
            pb::BatchCreateUsersRequest {
                requests: entries
                    .into_iter()
                    .map(|(name, request_id)| pb::CreateUserRequest { name, request_id })
                    .collect(),
            }
            .encode_to_vec()
        }),
    ]
}

/// A FindUsers with a forged token that decodes: extreme ids, times from
/// year -262143 to 262142 (refused outside years 1 to 9999), names no
/// CreateUser would accept.
fn forged_find_request() -> impl Strategy<Value = Vec<u8>> {
    (order(), any::<i64>(), any::<i64>(), hostile_text()).prop_map(|(order, id, micros, name)| {
        let filter = UserFilter::default();
        let after = match order.field {
            SortField::Id => After::Id(id),
            SortField::Name => After::Name(name, id),
            SortField::CreateTime => After::CreateTime(
                DateTime::from_timestamp_micros(micros)
                    .unwrap_or(DateTime::<chrono::Utc>::MIN_UTC)
                    .naive_utc(),
                id,
            ),
        };
        let field = match order.field {
            SortField::Id => "id",
            SortField::Name => "name",
            SortField::CreateTime => "create_time",
        };
        let direction = if order.descending { " desc" } else { "" };
        pb::FindUsersRequest {
            page_token: PageToken::new(after).encode(&filter, order),
            order_by: format!("{field}{direction}"),
            ..Default::default()
        }
        .encode_to_vec()
    })
}

#[test]
fn hostile_requests_of_every_kind_never_earn_an_internal_error() {
    let handlers = Handlers::start();
    let calls = Cell::new(0);
    proptest!(|(bytes in hostile_request())| {
        for (method, outcome) in handlers.call_with_bytes(&bytes) {
            calls.set(calls.get() + 1);
            assert_callers_fault_at_most(method, &outcome);
        }
    });
    println!("handler calls made from hostile requests: {}", calls.get());
}
