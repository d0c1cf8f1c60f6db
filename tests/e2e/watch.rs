//! WatchUsers: one event per committed write, none for failed ones, in
//! commit order, resumable without gaps or repeats.

use std::time::Duration;

use futures_util::{Stream, StreamExt, TryStreamExt};
use users_client::{
    ClientError, EventKind, FindUsers, User, UserEvent, WatchUsers, pb, watch::WATCH_FROM,
};
use users_tests::{Backend, spawn_app, spawn_app_with};

on_every_backend!(
    every_committed_write_has_one_event_and_failed_writes_none,
    a_resumed_watch_misses_nothing_and_repeats_nothing,
    a_watch_with_a_name_filter_sees_only_matching_users,
    a_watch_after_a_sequence_never_issued_is_invalid,
    an_export_says_where_to_watch_from,
    a_watcher_that_falls_behind_catches_up_from_the_table,
    a_watch_from_now_sees_only_later_writes,
    a_watch_after_expired_events_is_out_of_range,
    a_watch_on_one_server_sees_the_writes_of_another,
    a_watch_ends_when_its_server_shuts_down,
);

/// Long enough for any loaded machine; the events come in milliseconds.
const PATIENCE: Duration = Duration::from_secs(30);

/// The next `count` events of `events`, waiting for each.
async fn take(
    events: &mut (impl Stream<Item = Result<UserEvent, ClientError>> + Unpin),
    count: usize,
) -> Vec<UserEvent> {
    let mut taken = Vec::with_capacity(count);
    while taken.len() < count {
        let event = tokio::time::timeout(PATIENCE, events.next())
            .await
            .unwrap_or_else(|_| panic!("no event after {} of {count}: {taken:#?}", taken.len()))
            .expect("a watch does not end")
            .expect("an event");
        taken.push(event);
    }
    taken
}

/// Where the event log stands: the position a watch from now starts at.
async fn log_position(client: &users_client::UsersClient) -> i64 {
    let request = pb::WatchUsersRequest {
        from_now: true,
        ..Default::default()
    };
    let response = client.raw().watch_users(request).await.unwrap();
    let position = response.metadata().get(WATCH_FROM).expect("the header");
    position.to_str().unwrap().parse().unwrap()
}

fn summary(events: &[UserEvent]) -> Vec<(EventKind, i64, String)> {
    events
        .iter()
        .map(|event| (event.kind, event.user.id, event.user.name.clone()))
        .collect()
}

async fn every_committed_write_has_one_event_and_failed_writes_none(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = &app.client;
    let mut events = Box::pin(client.watch_users(WatchUsers::new().after(0)));

    let ada = client.create_user("Ada").await.unwrap();
    let request_id = "8d7c7ed4-4e5b-4bb4-9a6c-1f0f0e1b8a3c";
    let bob = client
        .create_user_with_request_id("Bob", request_id)
        .await
        .unwrap();
    // A retry under the same request id creates nothing: no event.
    let again = client
        .create_user_with_request_id("Bob", request_id)
        .await
        .unwrap();
    assert_eq!(again, bob);
    let batch = client.batch_create_users(["Cy", "Di"]).await.unwrap();
    let ann = client.rename_user(ada.id, "Ann", None).await.unwrap();
    // Failed writes: a stale etag, a missing user, an invalid name.
    assert!(matches!(
        client.rename_user(ada.id, "Eve", Some(&ada.etag)).await,
        Err(ClientError::Aborted(_))
    ));
    assert!(matches!(
        client.delete_user(999_999, None).await,
        Err(ClientError::NotFound(_))
    ));
    assert!(matches!(
        client.create_user("").await,
        Err(ClientError::InvalidArgument(_))
    ));
    client.delete_user(bob.id, Some(&bob.etag)).await.unwrap();

    let seen = take(&mut events, 6).await;
    assert_eq!(
        summary(&seen),
        [
            (EventKind::Created, ada.id, "Ada".to_owned()),
            (EventKind::Created, bob.id, "Bob".to_owned()),
            (EventKind::Created, batch[0].id, "Cy".to_owned()),
            (EventKind::Created, batch[1].id, "Di".to_owned()),
            (EventKind::Updated, ada.id, "Ann".to_owned()),
            (EventKind::Deleted, bob.id, "Bob".to_owned()),
        ]
    );
    // Each event holds the user as the write returned it (a delete: as it
    // was), and the numbers grow.
    let users: [&User; 6] = [&ada, &bob, &batch[0], &batch[1], &ann, &bob];
    for (event, user) in seen.iter().zip(users) {
        assert_eq!(&event.user, user);
        assert!(!event.request_id.is_empty(), "{event:?}");
    }
    assert!(
        seen.windows(2)
            .all(|pair| pair[0].sequence < pair[1].sequence)
    );

    // Nothing else came in between: the next event is the next write's.
    let last = client.create_user("Fay").await.unwrap();
    let next = take(&mut events, 1).await;
    assert_eq!(next[0].user, last);
}

async fn a_resumed_watch_misses_nothing_and_repeats_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = &app.client;
    for name in ["u1", "u2", "u3", "u4", "u5"] {
        client.create_user(name).await.unwrap();
    }
    let mut first = Box::pin(client.watch_users(WatchUsers::new().after(0)));
    let head = take(&mut first, 2).await;
    drop(first);

    let mut resumed = Box::pin(client.watch_users(WatchUsers::new().after(head[1].sequence)));
    client.create_user("u6").await.unwrap();
    let tail = take(&mut resumed, 4).await;
    let names: Vec<_> = head
        .iter()
        .chain(&tail)
        .map(|e| e.user.name.as_str())
        .collect();
    assert_eq!(names, ["u1", "u2", "u3", "u4", "u5", "u6"]);
}

async fn a_watch_with_a_name_filter_sees_only_matching_users(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = &app.client;
    let mut johns = Box::pin(client.watch_users(WatchUsers::new().after(0).name_prefix("Jo")));
    let mut exact = Box::pin(client.watch_users(WatchUsers::new().after(0).name("John")));
    let john = client.create_user("John").await.unwrap();
    client.create_user("Mary").await.unwrap();
    let joan = client.create_user("Joan").await.unwrap();
    client.rename_user(john.id, "Jon", None).await.unwrap();
    let marker = client.create_user("John").await.unwrap();

    let seen = take(&mut johns, 4).await;
    assert_eq!(
        summary(&seen),
        [
            (EventKind::Created, john.id, "John".to_owned()),
            (EventKind::Created, joan.id, "Joan".to_owned()),
            (EventKind::Updated, john.id, "Jon".to_owned()),
            (EventKind::Created, marker.id, "John".to_owned()),
        ]
    );
    let seen = take(&mut exact, 2).await;
    assert_eq!(
        summary(&seen),
        [
            (EventKind::Created, john.id, "John".to_owned()),
            (EventKind::Created, marker.id, "John".to_owned()),
        ]
    );
}

async fn a_watch_after_a_sequence_never_issued_is_invalid(backend: Backend) {
    let app = spawn_app(backend).await;
    app.client.create_user("Ada").await.unwrap();
    // Far past where the log stands on every backend (PostgreSQL's
    // sequences are transaction ids shifted 20 bits left).
    let unissued = log_position(&app.client).await + (1 << 50);
    for after in [unissued, -1] {
        let mut events = Box::pin(app.client.watch_users(WatchUsers::new().after(after)));
        let error = tokio::time::timeout(PATIENCE, events.next())
            .await
            .expect("an answer")
            .expect("an item")
            .expect_err("refused");
        assert!(matches!(error, ClientError::InvalidArgument(_)), "{error}");
        assert_eq!(error.reason(), Some("INVALID_SEQUENCE"), "{error}");
        // The refusal ends the stream.
        assert!(events.next().await.is_none());
    }
}

async fn an_export_says_where_to_watch_from(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = &app.client;
    client.batch_create_users(["a", "b", "c"]).await.unwrap();
    let response = client
        .raw()
        .export_users(pb::ExportUsersRequest::default())
        .await
        .unwrap();
    let watch_from: i64 = response
        .metadata()
        .get(WATCH_FROM)
        .expect("the header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let exported: Vec<pb::User> = response.into_inner().try_collect().await.unwrap();
    assert_eq!(exported.len(), 3);
    // The export holds the users as of the three events.
    let created = take(
        &mut Box::pin(client.watch_users(WatchUsers::new().after(0))),
        3,
    )
    .await;
    assert!(
        created.iter().all(|event| event.sequence <= watch_from),
        "{watch_from} {created:?}"
    );

    let d = client.create_user("d").await.unwrap();
    let mut events = Box::pin(client.watch_users(WatchUsers::new().after(watch_from)));
    assert_eq!(take(&mut events, 1).await[0].user, d);
    assert_eq!(
        client
            .find_users(&FindUsers::new())
            .await
            .unwrap()
            .users
            .len(),
        4
    );
}

async fn a_watcher_that_falls_behind_catches_up_from_the_table(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = &app.client;
    let first = client.create_user("first").await.unwrap();
    let mut events = Box::pin(client.watch_users(WatchUsers::new().after(0)));
    // Having read the table and found no more, the watch follows the hub.
    let mut seen = take(&mut events, 1).await;
    assert_eq!(seen[0].user, first);
    // Now it reads nothing while more events are written than the
    // server's channel holds (4,096), and its HTTP/2 window is far
    // smaller: it falls behind, and must read them from the table.
    let mut written = vec![first];
    for batch in 0..5 {
        let names = (0..1000).map(|i| format!("u{batch}-{i}"));
        written.extend(client.batch_create_users(names).await.unwrap());
    }
    seen.extend(take(&mut events, 5000).await);
    let seen_users: Vec<&User> = seen.iter().map(|event| &event.user).collect();
    let written: Vec<&User> = written.iter().collect();
    assert_eq!(seen_users, written);
    assert!(
        seen.windows(2)
            .all(|pair| pair[0].sequence < pair[1].sequence)
    );
}

async fn a_watch_from_now_sees_only_later_writes(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = &app.client;
    client.create_user("before").await.unwrap();
    let request = pb::WatchUsersRequest {
        from_now: true,
        ..Default::default()
    };
    // The answer's headers come once the watch has its position.
    let response = client.raw().watch_users(request).await.unwrap();
    let watch_from: i64 = response
        .metadata()
        .get(WATCH_FROM)
        .expect("the header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let after = client.create_user("after").await.unwrap();
    let mut events = response.into_inner();
    let event = tokio::time::timeout(PATIENCE, events.message())
        .await
        .expect("an event")
        .unwrap()
        .expect("a watch does not end");
    assert!(event.sequence > watch_from, "{watch_from} {event:?}");
    assert_eq!(event.user.unwrap().id, after.id);
}

async fn a_watch_after_expired_events_is_out_of_range(backend: Backend) {
    let app = spawn_app_with(backend, |config| {
        config.events_retention = Duration::from_secs(1);
    })
    .await;
    let client = &app.client;
    client.create_user("old").await.unwrap();
    let newer = client.create_user("newer").await.unwrap();
    // The first event expires a second after its write, at the next purge
    // (every second): wait for the refusal.
    let patience = tokio::time::Instant::now() + PATIENCE;
    let error = loop {
        let mut events = Box::pin(client.watch_users(WatchUsers::new().after(0)));
        let first = tokio::time::timeout(PATIENCE, events.next())
            .await
            .expect("an answer")
            .expect("an item");
        match first {
            Err(error) => break error,
            Ok(_) if tokio::time::Instant::now() < patience => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(event) => panic!("event {event:?} is still kept after {PATIENCE:?}"),
        }
    };
    assert!(matches!(error, ClientError::OutOfRange(_)), "{error}");
    assert_eq!(error.reason(), Some("EVENTS_EXPIRED"), "{error}");

    // The refusal ends the watch: the client does not retry it.
    assert!(
        tokio::time::timeout(PATIENCE, async {
            let mut events = Box::pin(client.watch_users(WatchUsers::new().after(0)));
            while let Some(item) = events.next().await {
                if item.is_err() {
                    return events.next().await.is_none();
                }
            }
            false
        })
        .await
        .expect("an answer")
    );
    // A watch from now is never out of range.
    let response = client
        .raw()
        .watch_users(pb::WatchUsersRequest {
            from_now: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let later = client.create_user("later").await.unwrap();
    let event = tokio::time::timeout(PATIENCE, response.into_inner().message())
        .await
        .expect("an event")
        .unwrap()
        .expect("a watch does not end");
    assert_eq!(event.user.unwrap().id, later.id);
    assert!(later.id > newer.id);
}

async fn a_watch_on_one_server_sees_the_writes_of_another(backend: Backend) {
    let app = spawn_app(backend).await;
    let replica = app.replica().await;
    let mut events = Box::pin(replica.client.watch_users(WatchUsers::new().after(0)));
    // Written through the first server: the second finds it at its poll.
    let ada = app.client.create_user("Ada").await.unwrap();
    assert_eq!(take(&mut events, 1).await[0].user, ada);
    let bob = app.client.create_user("Bob").await.unwrap();
    assert_eq!(take(&mut events, 1).await[0].user, bob);
}

async fn a_watch_ends_when_its_server_shuts_down(backend: Backend) {
    let mut app = spawn_app_with(backend, |config| {
        // Were the watch left open, stopping would wait this long.
        config.drain_timeout = Duration::from_secs(600);
    })
    .await;
    let response = app
        .client
        .raw()
        .watch_users(pb::WatchUsersRequest {
            from_now: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut events = response.into_inner();
    tokio::time::timeout(PATIENCE, app.stop())
        .await
        .expect("the server stops, its watch ended");
    let status = events.message().await.expect_err("the watch ends");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    let error = ClientError::from(status);
    assert_eq!(error.reason(), Some("SHUTTING_DOWN"), "{error}");
}

/// PostgreSQL numbers an event by its transaction's id, given at the
/// transaction's first write, not at its commit: a transaction that began
/// writing before another, and commits after it, has the smaller number.
/// A watch that followed the number past the later one would miss it for
/// good; the log stands below the oldest transaction still running, so it
/// comes first.
async fn an_event_committed_late_with_a_smaller_sequence_is_not_passed(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = &app.client;
    let mut events = Box::pin(client.watch_users(WatchUsers::new().after(0)));
    let early = client.create_user("early").await.unwrap();
    let early_event = take(&mut events, 1).await.remove(0);
    assert_eq!(early_event.user, early);

    // A transaction that takes its id now and writes its event later, by
    // hand, as a server's write would.
    let open = app.database().begin("SELECT pg_current_xact_id()").await;
    let later = client.create_user("later").await.unwrap();
    // A watch that starts now reads the table at once: "later" is
    // committed, its number larger, and it must not be read yet.
    let request = pb::WatchUsersRequest {
        after_sequence: early_event.sequence,
        ..Default::default()
    };
    let mut started = client
        .raw()
        .watch_users(request)
        .await
        .unwrap()
        .into_inner();
    open.commit_after(&format!(
        "INSERT INTO user_events \
         (kind, user_id, name, create_time, update_time, revision, event_time, request_id) \
         VALUES (2, {id}, 'renamed-late', now(), now(), 2, now(), 'by hand')",
        id = early.id,
    ))
    .await;

    let expected = [
        (EventKind::Updated, early.id, "renamed-late".to_owned()),
        (EventKind::Created, later.id, "later".to_owned()),
    ];
    let seen = take(&mut events, 2).await;
    assert_eq!(summary(&seen), expected);
    assert!(seen[0].sequence < seen[1].sequence, "{seen:?}");
    let mut seen_by_started = Vec::new();
    for _ in 0..2 {
        let event = tokio::time::timeout(PATIENCE, started.message())
            .await
            .expect("an event")
            .unwrap()
            .expect("a watch does not end");
        seen_by_started.push(UserEvent::try_from(event).unwrap());
    }
    assert_eq!(summary(&seen_by_started), expected);
}

/// The log waits for the transactions that may still write events into
/// the service's database, not for every one on the PostgreSQL cluster:
/// another application's long transaction, in a database of its own,
/// holds back no watch and no export.
async fn a_transaction_in_another_database_holds_back_no_event(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = &app.client;
    let elsewhere = app
        .database()
        .begin_elsewhere("SELECT pg_current_xact_id()")
        .await;

    let mut events = Box::pin(client.watch_users(WatchUsers::new().after(0)));
    let created = client.create_user("John").await.unwrap();
    let seen = take(&mut events, 1).await;
    assert_eq!(seen[0].user, created);
    // A watch from now, and an export, begin once the log stands past
    // every write committed before them.
    let request = pb::WatchUsersRequest {
        from_now: true,
        ..Default::default()
    };
    tokio::time::timeout(PATIENCE, client.raw().watch_users(request))
        .await
        .expect("a watch from now begins")
        .unwrap();
    let exported = tokio::time::timeout(PATIENCE, client.export_users(FindUsers::new()))
        .await
        .expect("an export begins")
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    assert_eq!(exported, [created]);

    elsewhere.commit_after("SELECT 1").await;
}

on_backend!(
    postgres_only: Postgres;
    an_event_committed_late_with_a_smaller_sequence_is_not_passed,
    a_transaction_in_another_database_holds_back_no_event,
);
