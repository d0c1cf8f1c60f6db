//! The change events under faults: 1,000 mixed writes (creates, renames,
//! deletes, and writes the server refuses) from 16 callers, with the
//! server killed with SIGKILL once and NATS killed and started again once
//! midway. In the end the JetStream stream and a WatchUsers client that
//! reconnected by itself hold the same events: exactly one per
//! acknowledged write, none for a refused one, at most one for a write
//! whose answer was lost, every user's in commit order, and together they
//! tell what the table holds.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{StreamExt, TryStreamExt};
use tonic::Code;
use users_client::{
    ClientError, EventKind, FindUsers, User, UserEvent, UsersClient, WatchUsers, pb,
    watch::WATCH_FROM,
};
use users_tests::{Backend, PrivateNats, TestDatabase, TestStream};

use crate::server::ServerProcess;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_events_survive_a_killed_server_and_a_restarted_nats() {
    events_under_faults(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_events_survive_a_killed_server_and_a_restarted_nats() {
    events_under_faults(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_events_survive_a_killed_server_and_a_restarted_nats() {
    events_under_faults(Backend::Mysql).await;
}

/// Writes answered (acknowledged or refused), over all callers.
const WRITES: usize = 1000;
const CALLERS: usize = 16;
/// Long enough for any loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// A write a caller sent.
#[derive(Debug, Clone)]
enum Write {
    Create { name: String },
    Rename { id: i64, name: String, etag: String },
    Delete { id: i64, etag: String },
}

/// What it got back.
#[derive(Debug, Clone)]
enum Outcome {
    /// Done; for a create or rename, the user as written.
    Acknowledged(Option<User>),
    /// Refused (invalid, stale etag, missing): it must leave no event.
    Refused(Code),
    /// No answer, or a broken connection: it may or may not have happened.
    Unknown(String),
}

#[derive(Debug, Clone)]
struct Sent {
    write: Write,
    outcome: Outcome,
}

async fn events_under_faults(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let nats = PrivateNats::start().await;
    let stream = TestStream::on(&nats.url());
    let args = stream.server_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = ServerProcess::start(&db.url(), &args);
    let endpoint = format!("http://{}", server.addr);

    // The watcher: the client's default settings, which resume a broken
    // watch after the last event received.
    let watcher = UsersClient::builder(&endpoint).connect().await.unwrap();
    let watched = Arc::new(Mutex::new(Vec::<UserEvent>::new()));
    let watching = tokio::spawn({
        let watched = Arc::clone(&watched);
        async move {
            let mut events = Box::pin(watcher.watch_users(WatchUsers::new().after(0)));
            while let Some(event) = events.next().await {
                match event {
                    Ok(event) => watched
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(event),
                    Err(error) => panic!("the watch failed for good: {error}"),
                }
            }
        }
    });

    let answered = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let client = tokio::spawn({
                let endpoint = endpoint.clone();
                async move {
                    UsersClient::builder(endpoint)
                        .retry_policy(users_client::RetryPolicy::none())
                        .connect()
                        .await
                        .unwrap()
                }
            });
            let answered = Arc::clone(&answered);
            tokio::spawn(async move { write_load(caller, client.await.unwrap(), &answered).await })
        })
        .collect();
    let wait_for_answers = async |count: usize| {
        let started = Instant::now();
        while answered.load(Ordering::Relaxed) < count {
            assert!(
                started.elapsed() < PATIENCE,
                "the writers are stuck at {} answers",
                answered.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };

    wait_for_answers(WRITES * 3 / 10).await;
    server.kill();
    server.restart_on_same_port();
    wait_for_answers(WRITES * 5 / 10).await;
    nats.kill();
    // Writes go on while NATS is down.
    wait_for_answers(WRITES * 7 / 10).await;
    nats.start_again().await;

    let mut sent: Vec<Sent> = Vec::new();
    for caller in callers {
        sent.extend(caller.await.expect("a writer panicked"));
    }
    let client = server.client().await;
    let last: i64 = client
        .raw()
        .export_users(pb::ExportUsersRequest::default())
        .await
        .unwrap()
        .metadata()
        .get(WATCH_FROM)
        .expect("an export says where the log stands")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // A write after the export: once both ends have its event, they hold
    // every event up to `last` (sequences may skip numbers).
    client.create_user("after-the-load").await.unwrap();
    let published: Vec<UserEvent> = stream
        .wait_for(last + 1)
        .await
        .into_iter()
        .map(|message| message.event)
        .filter(|event| event.sequence <= last)
        .collect();
    let started = Instant::now();
    let watched = loop {
        let watched = watched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if watched.last().is_some_and(|event| event.sequence > last) {
            break watched
                .into_iter()
                .filter(|event| event.sequence <= last)
                .collect::<Vec<_>>();
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the watcher has {} events, none after {last}",
            watched.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    watching.abort();

    let mut refused: BTreeMap<String, usize> = BTreeMap::new();
    let mut unknown: BTreeMap<String, usize> = BTreeMap::new();
    for write in &sent {
        match &write.outcome {
            Outcome::Acknowledged(_) => {}
            Outcome::Refused(code) => *refused.entry(format!("{code:?}")).or_default() += 1,
            Outcome::Unknown(why) => *unknown.entry(why.clone()).or_default() += 1,
        }
    }
    println!(
        "events under faults ({backend:?}): {} writes sent, {} acknowledged, refused {refused:?}, \
         no answer {unknown:?}; {} events",
        sent.len(),
        sent.len() - refused.values().sum::<usize>() - unknown.values().sum::<usize>(),
        published.len(),
    );

    if let Some(at) =
        (0..published.len().max(watched.len())).find(|&at| published.get(at) != watched.get(at))
    {
        let gaps: Vec<(i64, i64)> = watched
            .windows(2)
            .filter(|pair| pair[1].sequence != pair[0].sequence + 1)
            .map(|pair| (pair[0].sequence, pair[1].sequence))
            .collect();
        panic!(
            "JetStream ({} events) and the watcher ({}, first {:?}, jumps {gaps:?}) disagree from event {}:\n\
             JetStream: {:#?}\nwatcher: {:#?}",
            published.len(),
            watched.len(),
            watched.first().map(|event| event.sequence),
            at + 1,
            &published[at.min(published.len())..(at + 3).min(published.len())],
            &watched[at.min(watched.len())..(at + 3).min(watched.len())],
        );
    }
    // Each event once, in order (sequences may skip numbers: PostgreSQL's
    // are transaction ids).
    let sequences: Vec<i64> = published.iter().map(|event| event.sequence).collect();
    assert!(
        sequences.windows(2).all(|pair| pair[0] < pair[1]),
        "each event once, in order: {sequences:?}"
    );
    check_events_against_writes(&published, &sent);
    let stored: Vec<User> = client
        .find_all_users(FindUsers::new())
        .try_collect::<Vec<User>>()
        .await
        .unwrap()
        .into_iter()
        .filter(|user| user.name != "after-the-load")
        .collect();
    check_table_against_events(&stored, &published);
}

/// One caller: creates, renames and deletes its own users, and sends
/// writes the server must refuse, until [`WRITES`] were answered in all.
async fn write_load(caller: usize, client: UsersClient, answered: &AtomicUsize) -> Vec<Sent> {
    let mut sent = Vec::new();
    // Its users as it last wrote them, and etags they had before.
    let mut live: Vec<User> = Vec::new();
    let mut stale: Vec<(i64, String)> = Vec::new();
    for step in 0.. {
        if answered.load(Ordering::Relaxed) >= WRITES {
            break;
        }
        let name = format!("c{caller}-{step}");
        let write = match (step % 8, live.first()) {
            (2 | 5, Some(user)) => Write::Rename {
                id: user.id,
                name,
                etag: user.etag.clone(),
            },
            (6, Some(user)) => Write::Delete {
                id: user.id,
                etag: user.etag.clone(),
            },
            (7, _) => match stale.pop() {
                // Refused: written since.
                Some((id, etag)) => Write::Rename { id, name, etag },
                // Refused: not a valid name.
                None => Write::Create {
                    name: String::new(),
                },
            },
            _ => Write::Create { name },
        };
        let answer = tokio::time::timeout(Duration::from_secs(10), send(&client, &write)).await;
        let outcome = match answer {
            Ok(Ok(user)) => Outcome::Acknowledged(user),
            Ok(Err(error)) => match error.code() {
                Some(
                    code @ (Code::InvalidArgument
                    | Code::NotFound
                    | Code::FailedPrecondition
                    | Code::Aborted
                    | Code::AlreadyExists),
                ) => Outcome::Refused(code),
                _ => Outcome::Unknown(error.to_string()),
            },
            Err(_) => Outcome::Unknown("no answer".to_owned()),
        };
        // What the caller now knows of its users.
        let target = match &write {
            Write::Create { .. } => None,
            Write::Rename { id, .. } | Write::Delete { id, .. } => Some(*id),
        };
        let known = target.and_then(|id| live.iter().position(|user| user.id == id));
        match (&write, &outcome, known) {
            (Write::Create { .. }, Outcome::Acknowledged(Some(user)), _) => live.push(user.clone()),
            (Write::Rename { .. }, Outcome::Acknowledged(Some(user)), Some(at)) => {
                let before = std::mem::replace(&mut live[at], user.clone());
                stale.push((before.id, before.etag));
                live.rotate_left(1);
            }
            (Write::Delete { .. }, Outcome::Acknowledged(_), Some(at)) => {
                live.remove(at);
            }
            // The user's state is unknown: leave it alone.
            (_, Outcome::Unknown(_), Some(at)) => {
                live.remove(at);
            }
            _ => {}
        }
        match &outcome {
            Outcome::Unknown(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            _ => {
                answered.fetch_add(1, Ordering::Relaxed);
            }
        }
        sent.push(Sent { write, outcome });
    }
    sent
}

async fn send(client: &UsersClient, write: &Write) -> Result<Option<User>, ClientError> {
    match write {
        Write::Create { name } => client.create_user(name.as_str()).await.map(Some),
        Write::Rename { id, name, etag } => client
            .rename_user(*id, name.as_str(), Some(etag))
            .await
            .map(Some),
        Write::Delete { id, etag } => client.delete_user(*id, Some(etag)).await.map(|()| None),
    }
}

/// What an event says happened, to match it with the write that did it:
/// names are unique to a write, so a create or rename is found by the name
/// it wrote, a delete by the user's id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Change {
    Created(String),
    Renamed(i64, String),
    Deleted(i64),
}

fn change_of(event: &UserEvent) -> Change {
    match event.kind {
        EventKind::Created => Change::Created(event.user.name.clone()),
        EventKind::Updated => Change::Renamed(event.user.id, event.user.name.clone()),
        EventKind::Deleted => Change::Deleted(event.user.id),
    }
}

fn change_written(write: &Write) -> Change {
    match write {
        Write::Create { name } => Change::Created(name.clone()),
        Write::Rename { id, name, .. } => Change::Renamed(*id, name.clone()),
        Write::Delete { id, .. } => Change::Deleted(*id),
    }
}

fn check_events_against_writes(events: &[UserEvent], sent: &[Sent]) {
    let mut events_per_change: HashMap<Change, Vec<&UserEvent>> = HashMap::new();
    for event in events {
        events_per_change
            .entry(change_of(event))
            .or_default()
            .push(event);
    }
    let mut writes_per_change: HashMap<Change, Vec<&Sent>> = HashMap::new();
    for write in sent {
        writes_per_change
            .entry(change_written(&write.write))
            .or_default()
            .push(write);
    }
    for write in sent {
        let change = change_written(&write.write);
        let found = events_per_change
            .get(&change)
            .map_or(&[][..], Vec::as_slice);
        match &write.outcome {
            Outcome::Acknowledged(user) => {
                assert_eq!(
                    found.len(),
                    1,
                    "an acknowledged write: {write:?}: {found:?}"
                );
                if let Some(user) = user {
                    assert_eq!(&found[0].user, user, "the event holds the user as written");
                }
            }
            Outcome::Refused(_) => {
                assert!(
                    found.is_empty(),
                    "a refused write has an event: {write:?}: {found:?}"
                );
            }
            Outcome::Unknown(_) => {
                assert!(
                    found.len() <= 1,
                    "a write with two events: {write:?}: {found:?}"
                );
            }
        }
    }
    for (change, found) in &events_per_change {
        let writes = writes_per_change.get(change).map_or(&[][..], Vec::as_slice);
        assert!(
            writes
                .iter()
                .any(|write| !matches!(write.outcome, Outcome::Refused(_))),
            "an event no write explains: {found:?}"
        );
    }

    // Per user, in commit order: created, renamed, deleted last, each
    // event later than the one before.
    let mut per_user: BTreeMap<i64, Vec<&UserEvent>> = BTreeMap::new();
    for event in events {
        per_user.entry(event.user.id).or_default().push(event);
    }
    for (id, history) in per_user {
        let kinds: Vec<EventKind> = history.iter().map(|event| event.kind).collect();
        assert_eq!(kinds[0], EventKind::Created, "user {id}: {history:#?}");
        assert!(
            kinds[1..].iter().enumerate().all(|(at, kind)| match kind {
                EventKind::Created => false,
                EventKind::Updated => true,
                EventKind::Deleted => at == kinds.len() - 2,
            }),
            "user {id}: {kinds:?}"
        );
        for pair in history.windows(2) {
            let (before, after) = (&pair[0].user, &pair[1].user);
            if pair[1].kind == EventKind::Deleted {
                assert_eq!(
                    before, after,
                    "user {id}: a delete holds the user as it was"
                );
            } else {
                assert!(
                    before.update_time <= after.update_time && before.etag != after.etag,
                    "user {id}: {history:#?}"
                );
            }
        }
    }
}

/// The events, replayed, give the table: every user whose last event is
/// not a delete, with the name of its last event.
fn check_table_against_events(stored: &[User], events: &[UserEvent]) {
    let mut replayed: BTreeMap<i64, &User> = BTreeMap::new();
    for event in events {
        match event.kind {
            EventKind::Created | EventKind::Updated => {
                replayed.insert(event.user.id, &event.user);
            }
            EventKind::Deleted => {
                replayed.remove(&event.user.id);
            }
        }
    }
    let stored: BTreeMap<i64, &User> = stored.iter().map(|user| (user.id, user)).collect();
    assert_eq!(stored, replayed, "the table and the replayed events");
}
