//! Change events: the outbox the writes fill ([`Event`]), in sequence order,
//! fanned out to the WatchUsers calls of this server.
//!
//! One task per server, [`EventHub::run`], does the database work for
//! every watcher: it learns where the log stands ([`Event::sequenced`];
//! on MySQL it numbers what was committed first,
//! [`Event::sequence_committed`]), reads what is new once, and sends it to
//! the watchers through a bounded broadcast channel. A watcher costs no
//! query while it keeps up; one that falls behind the channel (a slow
//! reader) reads what it missed from the table itself, a page at a time,
//! then follows the channel again. So a thousand idle watchers cost one
//! poll, and a slow one holds no connection and grows no memory.
//!
//! The hub wakes when a write on this server commits, and every poll
//! interval besides, for the writes of other servers sharing the database.
//!
//! Each event sent says which event the hub sent before it
//! ([`Sent::after`]): the hub skips what was numbered while nobody
//! watched, and at its first poll starts where the log stands (sending a
//! notice of it), so a watcher that finds a gap between what it has and
//! what it receives reads the gap from the table. That
//! keeps a watch whole without any ordering between the hub and the
//! watchers' reads.

pub mod relay;

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use chrono::{NaiveDateTime, TimeDelta};
use tokio::sync::{Notify, broadcast, watch};

use crate::db::Database;
use crate::domain::NameMatch;
use crate::models::{Event, now};

/// Events numbered per transaction of the numberer.
const NUMBER_BATCH: i64 = 5000;
/// Events read per query, by the hub and by watchers catching up.
pub const READ_PAGE: i64 = 1000;
/// Events the broadcast channel holds for watchers that fall behind,
/// before they must read from the table.
const CHANNEL_CAPACITY: usize = 4096;

/// An event as the hub sends it to the watchers.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The sequence of the event the hub sent before this one: a watcher
    /// that has not seen up to it missed some.
    pub after: i64,
    /// The event; `None` for a notice that the log stands at `after`
    /// (sent when the hub skipped events it did not send).
    pub event: Option<Arc<Event>>,
}

/// How the hub polls.
#[derive(Debug, Clone, Copy)]
pub struct HubOptions {
    /// How often it looks for events written by other servers.
    pub poll_interval: Duration,
    /// After a local commit wakes it, how long it waits for more before
    /// reading (and on MySQL numbering), so that a busy server reads many
    /// events per query.
    pub gather: Duration,
}

impl Default for HubOptions {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(200),
            gather: Duration::from_millis(2),
        }
    }
}

/// How change events are kept and sent.
#[derive(Debug, Clone)]
pub struct EventOptions {
    /// How long events are kept (`--events-retention`).
    pub retention: Duration,
    /// How the hub polls.
    pub hub: HubOptions,
    /// Where events are published (`--events-nats-url`), if anywhere.
    pub nats: Option<relay::NatsOptions>,
}

/// Deletes the numbered events older than `retention` now and then, for
/// as long as it runs; a watch after a deleted one gets OUT_OF_RANGE. With
/// `keep_unpublished` (a relay runs), events JetStream has not
/// acknowledged are kept, however old.
pub async fn expire_events(db: Database, retention: Duration, keep_unpublished: bool) {
    let every = (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(600));
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let cutoff = TimeDelta::from_std(retention)
            .ok()
            .and_then(|retention| now().checked_sub_signed(retention))
            .unwrap_or(NaiveDateTime::MIN);
        let expired = db
            .write(async move |mut tx| Event::expire(&mut tx, cutoff, keep_unpublished).await)
            .await;
        match expired {
            Ok(0) => {}
            Ok(count) => tracing::debug!(count, "deleted expired change events"),
            Err(error) => tracing::warn!(%error, "cannot delete expired change events"),
        }
    }
}

/// Numbers committed events and sends them to this server's watchers.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventHub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Database,
    options: HubOptions,
    sender: broadcast::Sender<Sent>,
    /// Rung by the writes of this server.
    committed: Notify,
    /// The last sequence number sent to the watchers (or, with none,
    /// numbered).
    sent: AtomicI64,
    /// Set once the server shuts down: watches end.
    closing: watch::Sender<bool>,
    /// The last sequence number given, as the hub last saw it: the relay
    /// waits on it.
    numbered: watch::Sender<i64>,
}

impl EventHub {
    /// A hub for `db`; it does nothing until [`run`](Self::run).
    pub fn new(db: Database, options: HubOptions) -> Self {
        let (sender, _) = broadcast::channel(CHANNEL_CAPACITY);
        Self {
            inner: Arc::new(Inner {
                db,
                options,
                sender,
                committed: Notify::new(),
                sent: AtomicI64::new(-1),
                closing: watch::Sender::new(false),
                numbered: watch::Sender::new(0),
            }),
        }
    }

    /// The database the events are in.
    pub fn db(&self) -> &Database {
        &self.inner.db
    }

    /// Tells the hub that a write committed here: its event is sent soon,
    /// not at the next poll, if anyone follows the events here (a watch,
    /// the relay). With nobody, the hub waits for the poll: a busy server
    /// then looks (and on MySQL numbers) once per poll interval, not per
    /// handful of writes (a watch from now and an export find where the
    /// log stands themselves).
    pub fn committed(&self) {
        let inner = &self.inner;
        if inner.sender.receiver_count() > 0 || inner.numbered.receiver_count() > 0 {
            inner.committed.notify_one();
        }
    }

    /// The events sent from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Sent> {
        let receiver = self.inner.sender.subscribe();
        // What was committed while nobody watched is numbered now.
        self.inner.committed.notify_one();
        receiver
    }

    /// Completes once the server shuts down.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.inner.closing.subscribe()
    }

    /// The last sequence number given, updated as events are numbered.
    pub fn numbered(&self) -> watch::Receiver<i64> {
        self.inner.numbered.subscribe()
    }

    /// Ends every watch (the server is shutting down).
    pub fn close(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Numbers and sends events for as long as it runs. Database errors
    /// are logged and the work tried again at the next wake-up: events
    /// wait in the table meanwhile.
    pub async fn run(self) {
        let inner = &self.inner;
        let mut failing = false;
        loop {
            match self.poll_once().await {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("change events flow again");
                }
                Ok(()) => {}
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(%error, "cannot number or read change events; retrying");
                }
                Err(_) => {}
            }
            tokio::select! {
                () = inner.committed.notified() => tokio::time::sleep(inner.options.gather).await,
                () = tokio::time::sleep(inner.options.poll_interval) => {}
            }
        }
    }

    /// Where the log stands once every event committed before the call
    /// is in it: what is committed after gets larger numbers. So the result
    /// is where a watch "from now", or after an export, starts.
    ///
    /// On PostgreSQL that waits for the write transactions running at the
    /// call to end (see [`Event::sequenced`]); elsewhere it numbers what is
    /// committed (MySQL) or only reads.
    pub async fn number_committed(&self) -> Result<i64, crate::db::DbError> {
        let db = &self.inner.db;
        let Some(end) = db
            .read_statement_primary(async |mut tx| Event::running_end(&mut tx).await)
            .await?
        else {
            return self.sequence().await;
        };
        let mut pause = Duration::from_millis(1);
        while self.sequence().await? < end {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
        Ok(end)
    }

    /// Where the log stands, after numbering what is committed (MySQL).
    async fn sequence(&self) -> Result<i64, crate::db::DbError> {
        let db = &self.inner.db;
        loop {
            let (last, unnumbered) = db
                .read_statement_primary(async |mut tx| Event::numbering(&mut tx).await)
                .await?;
            if !unnumbered {
                return Ok(last);
            }
            let (before, after) = db
                .write(async |mut tx| {
                    let before = Event::sequenced(&mut tx).await?;
                    let after = Event::sequence_committed(&mut tx, NUMBER_BATCH).await?;
                    Ok((before, after))
                })
                .await?;
            if after - before < NUMBER_BATCH {
                return Ok(after);
            }
        }
    }

    /// Numbers what was committed and sends what is new.
    async fn poll_once(&self) -> Result<(), crate::db::DbError> {
        let inner = &self.inner;
        let db = &inner.db;
        let numbered = self.sequence().await?;
        inner.numbered.send_if_modified(|last| {
            let newer = numbered > *last;
            if newer {
                *last = numbered;
            }
            newer
        });
        let mut sent = inner.sent.load(Ordering::Acquire);
        if sent < 0 || inner.sender.receiver_count() == 0 {
            // Nobody to send to (or, at the first poll, nothing known of
            // what was sent): only where the log stands.
            inner.sent.store(numbered, Ordering::Release);
            if inner.sender.receiver_count() == 0 {
                return Ok(());
            }
            // Watchers that have not read this far must, now: they learn
            // it from this notice, not only from the next event.
            let _ = inner.sender.send(Sent {
                after: numbered,
                event: None,
            });
            sent = numbered;
        }
        loop {
            let page = db
                .read_statement_primary(async |mut tx| {
                    Event::after(&mut tx, sent, numbered, &NameMatch::Any, READ_PAGE).await
                })
                .await?;
            let full = page.len() as i64 == READ_PAGE;
            for event in page {
                let after = std::mem::replace(&mut sent, event.sequence);
                // No receiver (they all left meanwhile) is no error.
                let _ = inner.sender.send(Sent {
                    after,
                    event: Some(Arc::new(event)),
                });
            }
            inner.sent.store(sent, Ordering::Release);
            if !full {
                return Ok(());
            }
        }
    }
}
