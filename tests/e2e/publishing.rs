//! Publishing change events to NATS JetStream (`--events-nats-url`): each
//! event once, in order, on its kind's subject, with its sequence as
//! `Nats-Msg-Id`; nothing twice after a restart; nothing expired before
//! JetStream has it.

use std::time::Duration;

use futures_util::{Stream, StreamExt};
use users_client::{ClientError, EventKind, UserEvent, WatchUsers};
use users_tests::{Backend, TestStream, free_port, spawn_app_with};

on_every_backend!(
    every_event_is_published_once_in_commit_order,
    a_restarted_relay_publishes_nothing_twice,
    events_jetstream_has_not_acknowledged_are_kept_past_their_retention,
);

/// Long enough for any loaded machine; the events come in milliseconds.
const PATIENCE: Duration = Duration::from_secs(30);

async fn next(
    events: &mut (impl Stream<Item = Result<UserEvent, ClientError>> + Unpin),
) -> Result<UserEvent, ClientError> {
    tokio::time::timeout(PATIENCE, events.next())
        .await
        .expect("an event or an error in time")
        .expect("a watch does not end")
}

async fn every_event_is_published_once_in_commit_order(backend: Backend) {
    let stream = TestStream::new().await;
    let app = spawn_app_with(backend, |config| stream.configure(config)).await;
    let client = &app.client;
    let mut watch = Box::pin(client.watch_users(WatchUsers::new().after(0)));

    let ada = client.create_user("Ada").await.unwrap();
    client.batch_create_users(["Cy", "Di"]).await.unwrap();
    let ann = client.rename_user(ada.id, "Ann", None).await.unwrap();
    // A failed write publishes nothing.
    assert!(
        client
            .rename_user(ada.id, "Eve", Some(&ada.etag))
            .await
            .is_err()
    );
    client.delete_user(ann.id, Some(&ann.etag)).await.unwrap();

    let mut watched = Vec::new();
    for _ in 0..5 {
        watched.push(next(&mut watch).await.unwrap());
    }
    let published = stream.wait_for(watched[4].sequence).await;
    let events: Vec<&UserEvent> = published.iter().map(|message| &message.event).collect();
    assert_eq!(
        events,
        watched.iter().collect::<Vec<_>>(),
        "what a watch sees"
    );
    for message in &published {
        let kind = match message.event.kind {
            EventKind::Created => "created",
            EventKind::Updated => "updated",
            EventKind::Deleted => "deleted",
        };
        assert_eq!(message.subject, format!("{}.{kind}", stream.subject_prefix));
        assert_eq!(message.message_id, message.event.sequence.to_string());
    }
}

async fn a_restarted_relay_publishes_nothing_twice(backend: Backend) {
    let stream = TestStream::new().await;
    // A window that will be over: only the relay itself can keep a second
    // send of an event out of the stream.
    let configure = |config: &mut users_server::Config| {
        stream.configure(config);
        config.events_nats_duplicate_window = Duration::from_millis(100);
    };
    let mut app = spawn_app_with(backend, configure).await;
    for name in ["a", "b", "c"] {
        app.client.create_user(name).await.unwrap();
    }
    let first: Vec<i64> = stream
        .wait_for_count(3)
        .await
        .iter()
        .map(|message| message.event.sequence)
        .collect();
    assert_eq!(first.len(), 3);
    app.stop().await;
    // As if the relay had been killed between JetStream's acks and
    // marking them, and stayed down past the duplicate window.
    app.database()
        .execute("UPDATE user_event_cursors SET sequence = 0 WHERE name = 'published'")
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    app.restart_with(configure).await;
    app.client.create_user("d").await.unwrap();
    // One send at a time, in order: a repeat of a to c would come before d.
    let published = stream.wait_for_count(4).await;
    let sequences: Vec<i64> = published
        .iter()
        .map(|message| message.event.sequence)
        .collect();
    assert_eq!(sequences[..3], first, "{sequences:?}");
    assert_eq!(published[3].event.user.name, "d");
    assert!(sequences[3] > first[2], "{sequences:?}");
}

async fn events_jetstream_has_not_acknowledged_are_kept_past_their_retention(backend: Backend) {
    // Nobody listens there: nothing is ever acknowledged.
    let unreachable = TestStream::on(&format!("nats://127.0.0.1:{}", free_port()));
    let configure = |config: &mut users_server::Config| unreachable.configure(config);
    let mut app = spawn_app_with(backend, configure).await;
    for name in ["a", "b", "c"] {
        app.client.create_user(name).await.unwrap();
    }
    let mut watch = Box::pin(app.client.watch_users(WatchUsers::new().after(0)));
    let a = next(&mut watch).await.unwrap().sequence;
    for _ in 0..2 {
        next(&mut watch).await.unwrap();
    }
    drop(watch);
    app.stop().await;
    // All three are long past their retention; JetStream has the first.
    app.database()
        .execute(&format!(
            "UPDATE user_events SET event_time = '2000-01-01 00:00:00'; \
             UPDATE user_event_cursors SET sequence = {a} WHERE name = 'published'",
        ))
        .await;

    // Expiry runs as the server starts: the first event goes, the other
    // two stay, however old, until JetStream has them.
    app.restart_with(configure).await;
    let started = std::time::Instant::now();
    loop {
        let mut watch = Box::pin(app.client.watch_users(WatchUsers::new().after(0)));
        match next(&mut watch).await {
            Err(ClientError::OutOfRange(_)) => break,
            Ok(event) => assert_eq!(event.sequence, a, "{event:?}"),
            Err(error) => panic!("{error}"),
        }
        assert!(started.elapsed() < PATIENCE, "event a was never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut watch = Box::pin(app.client.watch_users(WatchUsers::new().after(a)));
    let kept = [
        next(&mut watch).await.unwrap(),
        next(&mut watch).await.unwrap(),
    ];
    let names: Vec<&str> = kept.iter().map(|event| event.user.name.as_str()).collect();
    assert_eq!(names, ["b", "c"]);
}
