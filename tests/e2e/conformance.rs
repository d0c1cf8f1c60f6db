//! Conformance: one scenario, run on SQLite, PostgreSQL and MySQL/MariaDB,
//! must give the same answers field by field: every user (id, name, times,
//! etag), every page (its users and `next_page_token`), every stream and
//! every error (code and message).
//!
//! Each run writes a transcript, one line per call, and the transcripts
//! must be equal. Times cannot be equal across runs, so each is checked
//! where it first appears (UTC: within a second of the test's own clock
//! around the call; whole microseconds) and written as `t<n>`, the n-th
//! distinct time of the run: the transcripts still show which fields hold
//! the same time and that a read returns the time a write returned. Page
//! tokens of `create_time` listings hold a time and are written the same
//! way; other tokens are compared as they are.
//!
//! The scenario also asserts the answers that matter most, so three
//! backends agreeing on a wrong answer fail too.

use std::{
    ops::Range,
    time::{Duration, SystemTime},
};

use futures_util::TryStreamExt;
use prost_types::{FieldMask, Timestamp};
use tonic::{Code, Status};
use users_client::pb;
use users_tests::{Backend, TestApp, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_backend_gives_the_same_answers() {
    let sqlite = transcript(Backend::Sqlite).await;
    for backend in [Backend::Postgres, Backend::Mysql] {
        assert_same(&sqlite, &transcript(backend).await, backend);
    }
}

/// Names a case-insensitive, space-padding, normalizing or accent-blind
/// collation would confuse, names full of `LIKE` wildcards and escapes,
/// and characters beyond the Basic Multilingual Plane. Created in this
/// order, so their ids are in this order.
const NAMES: &[&str] = &[
    "John",
    "john",
    "JOHN",
    "John ",
    " John",
    "John\u{a0}",
    "Jöhn",
    "Jo\u{308}hn",
    "Ｊｏｈｎ",
    "ß",
    "ss",
    "SS",
    "é",
    "e\u{301}",
    "i",
    "I",
    "ı",
    "İ",
    "100%",
    "100% sure",
    "100x sure",
    "1000",
    "100_",
    "a_b",
    "axb",
    r"a\b",
    r"a\\b",
    r"a\%",
    "a%b",
    "😀",
    "😀 party",
    "🎉",
    "\u{fffd}",
    "\u{10ffff}",
    "z\u{10ffff}",
    "John",
];

async fn scenario(s: &mut Session) {
    for name in NAMES {
        s.create(name, "").await.unwrap();
    }
    // 256 characters of 1, 2 and 4 bytes: all fit; 257 never does.
    let longest = ["a".repeat(256), "é".repeat(256), "😀".repeat(256)];
    for name in &longest {
        assert_eq!(s.create(name, "").await.unwrap().name, *name);
    }
    for name in [
        "a".repeat(257),
        "😀".repeat(257),
        String::new(),
        "   ".into(),
        "a\0b".into(),
    ] {
        assert_eq!(
            s.create(&name, "").await.unwrap_err(),
            Code::InvalidArgument
        );
    }
    let everyone: Vec<String> = NAMES
        .iter()
        .map(|name| name.to_string())
        .chain(longest.iter().cloned())
        .collect();

    exact_names(s).await;
    prefixes(s, &longest).await;
    orders(s, &everyone).await;
    page_tokens(s).await;
    batches(s).await;
    changes(s).await;
    exports(s).await;
    ids_are_never_reused(s).await;
    // Last: on PostgreSQL and MySQL a create that finds its request id
    // taken has used up an id (sequences and AUTO_INCREMENT are not rolled
    // back), so no user may be created after this.
    request_ids(s).await;
    let listed = s.all_pages(query().page_size(50)).await;
    assert!(listed.windows(2).all(|pair| pair[0].id < pair[1].id));
}

async fn exact_names(s: &mut Session) {
    let cases: &[(&str, &[&str])] = &[
        ("John", &["John", "John"]),
        ("john", &["john"]),
        ("JOHN", &["JOHN"]),
        ("John ", &["John "]),
        (" John", &[" John"]),
        ("Jöhn", &["Jöhn"]),
        ("Jo\u{308}hn", &["Jo\u{308}hn"]),
        ("ss", &["ss"]),
        ("ß", &["ß"]),
        ("é", &["é"]),
        ("i", &["i"]),
        ("ı", &["ı"]),
        ("😀", &["😀"]),
        (r"a\b", &[r"a\b"]),
        ("100%", &["100%"]),
        ("100_", &["100_"]),
        ("Joh", &[]),
        ("%", &[]),
    ];
    for (name, expected) in cases {
        let page = s.find(query().name(name)).await.unwrap();
        assert_eq!(names(&page.users), *expected, "name {name:?}");
    }
}

async fn prefixes(s: &mut Session, longest: &[String; 3]) {
    let [a256, e256, smiley256] = longest.each_ref().map(String::as_str);
    let cases: &[(&str, &[&str])] = &[
        (
            "Jo",
            &["John", "John ", "John\u{a0}", "Jo\u{308}hn", "John"],
        ),
        ("jo", &["john"]),
        ("John ", &["John "]),
        ("100%", &["100%", "100% sure"]),
        ("100_", &["100_"]),
        ("100", &["100%", "100% sure", "100x sure", "1000", "100_"]),
        ("a_", &["a_b"]),
        (r"a\", &[r"a\b", r"a\\b", r"a\%"]),
        (r"a\\", &[r"a\\b"]),
        (r"a\%", &[r"a\%"]),
        ("a%", &["a%b"]),
        ("a", &["a_b", "axb", r"a\b", r"a\\b", r"a\%", "a%b", a256]),
        ("%", &[]),
        ("_", &[]),
        (r"\", &[]),
        ("e", &["e\u{301}"]),
        ("é", &["é", e256]),
        ("😀", &["😀", "😀 party", smiley256]),
        ("\u{10ffff}", &["\u{10ffff}"]),
        ("z", &["z\u{10ffff}"]),
    ];
    for (prefix, expected) in cases {
        let page = s.find(query().prefix(prefix)).await.unwrap();
        assert_eq!(names(&page.users), *expected, "prefix {prefix:?}");
    }
    // Both filters: the name must match and start with the prefix.
    let page = s.find(query().name("John").prefix("Jo")).await.unwrap();
    assert_eq!(names(&page.users), ["John", "John"]);
    let page = s.find(query().name("John").prefix("jo")).await.unwrap();
    assert_eq!(names(&page.users), Vec::<&str>::new());
}

async fn orders(s: &mut Session, everyone: &[String]) {
    let mut by_name = everyone.to_vec();
    // Code point order; equal names in id order (a stable sort keeps it).
    by_name.sort();
    let listed = s.all_pages(query().order("name").page_size(7)).await;
    assert_eq!(names(&listed), by_name);
    let listed = s.all_pages(query().order("name desc").page_size(5)).await;
    let mut reversed = by_name.clone();
    reversed.reverse();
    assert_eq!(names(&listed), reversed);

    let listed = s.all_pages(query().order("id desc").page_size(4)).await;
    assert!(listed.windows(2).all(|pair| pair[0].id > pair[1].id));
    assert_eq!(listed.len(), everyone.len());
    // Every create above came in its own call: creation times grow with ids.
    let listed = s.all_pages(query().order("create_time").page_size(6)).await;
    assert_eq!(names(&listed), everyone);
    s.all_pages(query().order("create_time desc").page_size(6))
        .await;

    let listed = s
        .all_pages(query().prefix("a").order("name").page_size(2))
        .await;
    assert_eq!(
        names(&listed),
        [
            "a%b",
            r"a\%",
            r"a\\b",
            r"a\b",
            "a_b",
            &"a".repeat(256),
            "axb"
        ]
    );
    s.all_pages(query().prefix("100").order("name desc").page_size(2))
        .await;
    s.all_pages(query().name("John").order("create_time desc").page_size(1))
        .await;
}

async fn page_tokens(s: &mut Session) {
    let first = s.find(query().order("name").page_size(3)).await.unwrap();
    let token = first.next_page_token;
    // A token is good only for the filters and order it was issued for.
    for misused in [
        query().page_size(3).token(&token),
        query().order("name desc").page_size(3).token(&token),
        query().order("name").prefix("J").page_size(3).token(&token),
        query()
            .order("name")
            .name("John")
            .page_size(3)
            .token(&token),
        query().order("name").page_size(3).token("not a token"),
        query().order("name").page_size(3).token(&token[1..]),
    ] {
        assert_eq!(s.find(misused).await.unwrap_err(), Code::InvalidArgument);
    }
    // The page size may change between pages.
    let next = s
        .find(query().order("name").page_size(2).token(&token))
        .await
        .unwrap();
    assert_eq!(next.users.len(), 2);
    for bad in [
        query().page_size(-1),
        query().order("name sideways"),
        query().order("email"),
        query().order("ID"),
        query().order("update_time"),
    ] {
        assert_eq!(s.find(bad).await.unwrap_err(), Code::InvalidArgument);
    }
    // 0 means 50; above 1000 means 1000.
    let page = s.find(query().page_size(0)).await.unwrap();
    assert_eq!(page.users.len(), 39);
    assert!(page.next_page_token.is_empty());
    s.find(query().page_size(5000)).await.unwrap();
}

async fn batches(s: &mut Session) {
    let (one, two) = (
        "00000000-0000-4000-8000-000000000001",
        "00000000-0000-4000-8000-000000000002",
    );
    let entries = [
        ("Batch b", one),
        ("Batch a", ""),
        ("Batch 😀", two),
        ("Batch c", one),
    ];
    // One request id with two names: refused, nothing stored.
    assert_eq!(
        s.batch(&entries).await.unwrap_err(),
        Code::FailedPrecondition
    );
    let stored = s.batch(&entries[..3]).await.unwrap();
    // One transaction, one time: ties in create_time order go by id.
    assert!(
        stored
            .iter()
            .all(|user| user.create_time == stored[0].create_time)
    );
    let listed = s
        .all_pages(query().prefix("Batch").order("create_time").page_size(2))
        .await;
    assert_eq!(names(&listed), ["Batch b", "Batch a", "Batch 😀"]);
    let listed = s
        .all_pages(
            query()
                .prefix("Batch")
                .order("create_time desc")
                .page_size(2),
        )
        .await;
    assert_eq!(names(&listed), ["Batch 😀", "Batch a", "Batch b"]);
    let too_many = vec![("x", ""); 1001];
    assert_eq!(s.batch(&too_many).await.unwrap_err(), Code::InvalidArgument);
    assert_eq!(s.batch(&[]).await.unwrap_err(), Code::InvalidArgument);
    let invalid = [("fine", ""), ("", "")];
    assert_eq!(s.batch(&invalid).await.unwrap_err(), Code::InvalidArgument);
}

async fn changes(s: &mut Session) {
    let john = s.only(query().name("john")).await;
    let renamed = s.rename(john.id, "Johnny 🎉", &john.etag).await.unwrap();
    assert_eq!(renamed.create_time, john.create_time);
    assert_ne!(renamed.update_time, john.update_time);
    assert_ne!(renamed.etag, john.etag);
    // The old etag is stale now; a bad name or id changes nothing.
    assert_eq!(
        s.rename(john.id, "Jack", &john.etag).await.unwrap_err(),
        Code::Aborted
    );
    assert_eq!(
        s.rename(john.id, "", "").await.unwrap_err(),
        Code::InvalidArgument
    );
    assert_eq!(
        s.rename(john.id, &"😀".repeat(257), "").await.unwrap_err(),
        Code::InvalidArgument
    );
    assert_eq!(
        s.rename(999_999, "Jack", "").await.unwrap_err(),
        Code::NotFound
    );
    assert_eq!(s.get(john.id).await.unwrap(), renamed);
    assert!(s.find(query().name("john")).await.unwrap().users.is_empty());
    s.only(query().name("Johnny 🎉")).await;
    let listed = s.all_pages(query().order("name").prefix("Jo")).await;
    assert_eq!(
        names(&listed),
        // Code point order: 'n' (U+006E) sorts before U+00A0 and U+0308.
        [
            "John",
            "John",
            "John ",
            "Johnny 🎉",
            "John\u{a0}",
            "Jo\u{308}hn"
        ]
    );

    // Deletes, conditional and not.
    let upper = s.only(query().name("JOHN")).await;
    // Etags are per user: `renamed`'s is not `upper`'s.
    assert_eq!(
        s.delete(upper.id, &renamed.etag).await.unwrap_err(),
        Code::Aborted
    );
    s.delete(upper.id, &upper.etag).await.unwrap();
    assert_eq!(s.get(upper.id).await.unwrap_err(), Code::NotFound);
    assert_eq!(s.delete(upper.id, "").await.unwrap_err(), Code::NotFound);
    for id in [0, -1] {
        assert_eq!(s.get(id).await.unwrap_err(), Code::InvalidArgument);
    }

    // Paging goes on past a user deleted between its pages.
    let first = s.find(query().order("name").page_size(5)).await.unwrap();
    let on_next_page = s
        .find(
            query()
                .order("name")
                .page_size(5)
                .token(&first.next_page_token),
        )
        .await
        .unwrap();
    let gone = &on_next_page.users[2];
    s.delete(gone.id, "").await.unwrap();
    let rest = s
        .all_pages(
            query()
                .order("name")
                .page_size(5)
                .token(&first.next_page_token),
        )
        .await;
    let expected: Vec<_> = on_next_page
        .users
        .iter()
        .filter(|user| user.id != gone.id)
        .cloned()
        .collect();
    assert_eq!(rest[..4], expected[..]);
}

async fn exports(s: &mut Session) {
    let streamed = s.export(query().order("name")).await.unwrap();
    assert_eq!(
        streamed,
        s.all_pages(query().order("name").page_size(9)).await
    );
    s.export(query().prefix("😀").order("create_time desc"))
        .await
        .unwrap();
    // From a page token on: the rest of the listing.
    let first = s.find(query().order("id").page_size(10)).await.unwrap();
    let rest = s
        .export(query().order("id").token(&first.next_page_token))
        .await
        .unwrap();
    assert!(rest.first().is_some_and(|user| user.id > first.users[9].id));
    assert_eq!(
        s.export(query().order("name").token(&first.next_page_token))
            .await
            .unwrap_err(),
        Code::InvalidArgument
    );
}

async fn ids_are_never_reused(s: &mut Session) {
    let newest = s.create("newest", "").await.unwrap();
    s.delete(newest.id, "").await.unwrap();
    s.restart().await;
    let next = s.create("after restart", "").await.unwrap();
    assert!(next.id > newest.id, "{} reused {}", next.id, newest.id);
}

async fn request_ids(s: &mut Session) {
    let rid = "6f1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d";
    let first = s.create("Retry me", rid).await.unwrap();
    let batch = [
        ("Retry me", rid),
        ("Batch b", "6f1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c01"),
    ];
    // Known request ids: the users their first creates made.
    let again = s.batch(&batch).await.unwrap();
    assert_eq!(again[0], first);
    assert_eq!(again[1].name, "Batch b");
    assert_eq!(s.batch(&batch).await.unwrap(), again);
    assert_eq!(s.create("Retry me", rid).await.unwrap(), first);
    assert_eq!(
        s.create("Someone else", rid).await.unwrap_err(),
        Code::FailedPrecondition
    );
    assert_eq!(
        s.create("Retry me", "not-a-uuid").await.unwrap_err(),
        Code::InvalidArgument
    );
    // The user the request id made is gone: the retry says so.
    s.delete(first.id, "").await.unwrap();
    s.create("Retry me", rid).await.unwrap_err();
}

/// One backend's transcript of [`scenario`].
async fn transcript(backend: Backend) -> Vec<String> {
    // Names the backend of a failed assertion (the test's output shows it).
    println!("conformance: the scenario on {backend:?}");
    let mut session = Session {
        app: spawn_app(backend).await,
        lines: Vec::new(),
        times: Vec::new(),
        time_tokens: Vec::new(),
        window: SystemTime::UNIX_EPOCH..SystemTime::UNIX_EPOCH,
    };
    scenario(&mut session).await;
    assert!(
        session.times.iter().any(|time| time.nanos % 1_000_000 != 0),
        "{backend:?}: no time kept its microseconds: {:?}",
        session.times
    );
    session.lines
}

fn assert_same(reference: &[String], other: &[String], backend: Backend) {
    let first_difference = reference
        .iter()
        .zip(other)
        .position(|(a, b)| a != b)
        .unwrap_or(reference.len().min(other.len()));
    if first_difference == reference.len() && reference.len() == other.len() {
        return;
    }
    let context = first_difference.saturating_sub(3)..first_difference;
    panic!(
        "{backend:?} answers differently from SQLite at call {first_difference}:\n\
         before it:\n  {}\nSQLite:\n  {}\n{backend:?}:\n  {}",
        reference[context].join("\n  "),
        reference
            .get(first_difference)
            .map_or("(nothing)", String::as_str),
        other
            .get(first_difference)
            .map_or("(nothing)", String::as_str),
    );
}

fn names(users: &[pb::User]) -> Vec<&str> {
    users.iter().map(|user| user.name.as_str()).collect()
}

fn query() -> pb::FindUsersRequest {
    pb::FindUsersRequest {
        page_size: 1000,
        ..Default::default()
    }
}

/// Builder methods on the request, to keep the scenario short.
trait Query {
    fn name(self, name: &str) -> Self;
    fn prefix(self, prefix: &str) -> Self;
    fn order(self, order_by: &str) -> Self;
    fn page_size(self, size: i32) -> Self;
    fn token(self, token: &str) -> Self;
}

impl Query for pb::FindUsersRequest {
    fn name(self, name: &str) -> Self {
        Self {
            name: name.into(),
            ..self
        }
    }
    fn prefix(self, prefix: &str) -> Self {
        Self {
            name_prefix: prefix.into(),
            ..self
        }
    }
    fn order(self, order_by: &str) -> Self {
        Self {
            order_by: order_by.into(),
            ..self
        }
    }
    fn page_size(self, page_size: i32) -> Self {
        Self { page_size, ..self }
    }
    fn token(self, token: &str) -> Self {
        Self {
            page_token: token.into(),
            ..self
        }
    }
}

/// A server on one backend, and the transcript of the calls made to it.
struct Session {
    app: TestApp,
    lines: Vec<String>,
    /// Every distinct time seen, in order: `t<n>` is `times[n]`.
    times: Vec<Timestamp>,
    /// Every page token of a `create_time` listing seen, likewise.
    time_tokens: Vec<String>,
    /// When the last call was sent and answered, by the test's clock.
    window: Range<SystemTime>,
}

impl Session {
    async fn create(&mut self, name: &str, request_id: &str) -> Result<pb::User, Code> {
        let request = pb::CreateUserRequest {
            name: name.into(),
            request_id: request_id.into(),
        };
        let call = format!("CreateUser {name:?} {request_id:?}");
        let mut raw = self.app.client.raw();
        let answer = self
            .timed(raw.create_user(request))
            .await
            .map(|reply| reply.into_inner().user.expect("a user"));
        self.record(call, answer, Self::user)
    }

    /// BatchCreateUsers of `(name, request_id)` entries.
    async fn batch(&mut self, entries: &[(&str, &str)]) -> Result<Vec<pb::User>, Code> {
        let requests = entries
            .iter()
            .map(|(name, request_id)| pb::CreateUserRequest {
                name: (*name).into(),
                request_id: (*request_id).into(),
            })
            .collect();
        let call = match entries.len() {
            0..=10 => format!("BatchCreateUsers {entries:?}"),
            many => format!("BatchCreateUsers ({many} entries)"),
        };
        let mut raw = self.app.client.raw();
        let answer = self
            .timed(raw.batch_create_users(pb::BatchCreateUsersRequest { requests }))
            .await
            .map(|reply| reply.into_inner().users);
        self.record(call, answer, |s, users| s.users(users))
    }

    async fn get(&mut self, id: i64) -> Result<pb::User, Code> {
        let mut raw = self.app.client.raw();
        let answer = self
            .timed(raw.get_user(pb::GetUserRequest { id }))
            .await
            .map(|reply| reply.into_inner().user.expect("a user"));
        self.record(format!("GetUser {id}"), answer, Self::user)
    }

    async fn rename(&mut self, id: i64, name: &str, etag: &str) -> Result<pb::User, Code> {
        let request = pb::UpdateUserRequest {
            user: Some(pb::User {
                id,
                name: name.into(),
                etag: etag.into(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["name".into()],
            }),
        };
        let mut raw = self.app.client.raw();
        let answer = self
            .timed(raw.update_user(request))
            .await
            .map(|reply| reply.into_inner().user.expect("a user"));
        self.record(
            format!("UpdateUser {id} {name:?} etag {etag:?}"),
            answer,
            Self::user,
        )
    }

    async fn delete(&mut self, id: i64, etag: &str) -> Result<(), Code> {
        let request = pb::DeleteUserRequest {
            id,
            etag: etag.into(),
        };
        let mut raw = self.app.client.raw();
        let answer = self.timed(raw.delete_user(request)).await.map(|_| ());
        self.record(format!("DeleteUser {id} etag {etag:?}"), answer, |_, ()| {
            "deleted".into()
        })
    }

    async fn find(&mut self, request: pb::FindUsersRequest) -> Result<pb::FindUsersResponse, Code> {
        let call = format!("FindUsers {}", self.query(&request));
        let by_time = request.order_by.starts_with("create_time");
        let mut raw = self.app.client.raw();
        let answer = self
            .timed(raw.find_users(request))
            .await
            .map(|reply| reply.into_inner());
        self.record(call, answer, |s, page| {
            let token = s.token(by_time, &page.next_page_token);
            format!("{} next {token}", s.users(&page.users))
        })
    }

    /// Every page of `request`, each one recorded.
    async fn all_pages(&mut self, mut request: pb::FindUsersRequest) -> Vec<pb::User> {
        let mut users = Vec::new();
        loop {
            let page = self.find(request.clone()).await.unwrap();
            users.extend(page.users);
            if page.next_page_token.is_empty() {
                return users;
            }
            request.page_token = page.next_page_token;
        }
    }

    /// The only user `request` finds.
    async fn only(&mut self, request: pb::FindUsersRequest) -> pb::User {
        let mut users = self.find(request).await.unwrap().users;
        assert_eq!(users.len(), 1, "{users:?}");
        users.remove(0)
    }

    async fn export(&mut self, request: pb::FindUsersRequest) -> Result<Vec<pb::User>, Code> {
        let call = format!("ExportUsers {}", self.query(&request));
        let mut raw = self.app.client.raw();
        let answer = self
            .timed(async {
                let stream = raw
                    .export_users(pb::ExportUsersRequest::from(request))
                    .await?
                    .into_inner();
                stream.try_collect::<Vec<_>>().await
            })
            .await;
        self.record(call, answer, |s, users| s.users(users))
    }

    async fn restart(&mut self) {
        self.app.restart().await;
        self.lines.push("(server restarted)".into());
    }

    /// Runs `call`, noting when it was sent and answered.
    async fn timed<T>(&mut self, call: impl Future<Output = T>) -> T {
        let sent = SystemTime::now();
        let answer = call.await;
        self.window = sent..SystemTime::now();
        answer
    }

    /// Adds `call -> answer` to the transcript and returns the answer's
    /// value, or its code.
    fn record<T>(
        &mut self,
        call: String,
        answer: Result<T, Status>,
        show: impl FnOnce(&mut Self, &T) -> String,
    ) -> Result<T, Code> {
        let shown = match &answer {
            Ok(value) => show(self, value),
            Err(status) => format!("{:?}: {}", status.code(), status.message()),
        };
        self.lines.push(format!("{call} -> {shown}"));
        answer.map_err(|status| status.code())
    }

    fn query(&mut self, request: &pb::FindUsersRequest) -> String {
        let by_time = request.order_by.starts_with("create_time");
        format!(
            "name {:?} prefix {:?} order {:?} size {} token {}",
            request.name,
            request.name_prefix,
            request.order_by,
            request.page_size,
            self.token(by_time, &request.page_token),
        )
    }

    fn users(&mut self, users: &[pb::User]) -> String {
        let shown: Vec<String> = users.iter().map(|user| self.user(user)).collect();
        format!("[{}]", shown.join(", "))
    }

    fn user(&mut self, user: &pb::User) -> String {
        format!(
            "#{} {:?} created {} updated {} etag {:?}",
            user.id,
            user.name,
            self.time(user.create_time.as_ref()),
            self.time(user.update_time.as_ref()),
            user.etag,
        )
    }

    /// `t<n>` for the n-th distinct time; checks each new one.
    fn time(&mut self, time: Option<&Timestamp>) -> String {
        let time = time.expect("every user has its times");
        if let Some(n) = self.times.iter().position(|seen| seen == time) {
            return format!("t{n}");
        }
        let backend = self.app.backend();
        assert_eq!(
            time.nanos % 1000,
            0,
            "{backend:?}: {time:?} is finer than microseconds"
        );
        let at = SystemTime::try_from(*time).expect("a time after 1970");
        let slack = Duration::from_secs(1);
        assert!(
            self.window.start - slack <= at && at <= self.window.end + slack,
            "{backend:?}: {time:?} is not the UTC time of the call ({:?})",
            self.window
        );
        self.times.push(*time);
        format!("t{}", self.times.len() - 1)
    }

    /// A page token as the transcript shows it: as it is, or, for a
    /// `create_time` listing, which one it is.
    fn token(&mut self, by_time: bool, token: &str) -> String {
        if !by_time || token.is_empty() {
            return format!("{token:?}");
        }
        let n = match self.time_tokens.iter().position(|seen| seen == token) {
            Some(n) => n,
            None => {
                self.time_tokens.push(token.to_owned());
                self.time_tokens.len() - 1
            }
        };
        format!("time token {n}")
    }
}
