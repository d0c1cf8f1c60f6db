//! The relay: sends the change events to a NATS JetStream stream
//! (`--events-nats-url`), in sequence order, and marks what JetStream
//! acknowledged in the `published` cursor.
//!
//! Exactly once in the stream, from at-least-once sends:
//! - each message carries `Nats-Msg-Id: <sequence>`, so JetStream drops a
//!   second send of an event within the stream's duplicate window (a
//!   second server relaying the same database, a send whose ack was lost);
//! - one event is in flight at a time, the next sent only once the last is
//!   acknowledged, so the stream holds a prefix of the log in order, never
//!   a later event without the earlier ones;
//! - so on (re)start the relay resumes after the last event in the stream,
//!   not only after the `published` cursor, which is marked once a second
//!   while busy: a relay killed between an ack and its mark sends nothing twice,
//!   however long it stayed down.
//!
//! NATS down: writes go on; their events wait in the table (expiry keeps
//! what was not published) and flow once NATS is back.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::PublishMessage, stream};
use bytes::Bytes;
use prost::Message as _;
use users_client::pb;

use super::{EventHub, READ_PAGE};
use crate::db::{Database, DbError};
use crate::domain::NameMatch;
use crate::models::{Event, EventKind, PUBLISHED};

/// Where and how events are published.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// The NATS server(s), `nats://HOST:PORT`, comma-separated.
    pub url: String,
    /// The JetStream stream, created if missing.
    pub stream: String,
    /// Events go to `<prefix>.created`, `.updated` and `.deleted`.
    pub subject_prefix: String,
    /// How long JetStream remembers a message id to drop a second send.
    pub duplicate_window: Duration,
}

impl NatsOptions {
    /// The defaults, on `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            stream: "USERS_EVENTS".to_owned(),
            subject_prefix: "users.v1.events".to_owned(),
            duplicate_window: Duration::from_secs(120),
        }
    }

    /// The subject of an event of `kind`.
    fn subject(&self, kind: EventKind) -> String {
        let kind = match kind {
            EventKind::Created => "created",
            EventKind::Updated => "updated",
            EventKind::Deleted => "deleted",
        };
        format!("{}.{kind}", self.subject_prefix)
    }
}

/// How often a busy relay marks what JetStream acknowledged.
const MARK_EVERY: Duration = Duration::from_secs(1);

/// Why a round of publishing stopped; it starts again after a pause.
#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("database: {0}")]
    Database(#[from] DbError),
    #[error("JetStream stream {stream:?}: {message}")]
    Stream { stream: String, message: String },
    #[error("publishing event {sequence}: {message}")]
    Publish { sequence: i64, message: String },
}

/// Pauses after a failed round: from 100 ms, doubling up to 5 s.
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const LONGEST_PAUSE: Duration = Duration::from_secs(5);
/// How long one ack may take before the send is tried again.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Publishes the events of `hub`'s database for as long as it runs.
pub async fn run(hub: EventHub, options: NatsOptions) {
    let client = match async_nats::ConnectOptions::new()
        .name("users-server events relay")
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connect(options.url.split(',').map(str::trim).collect::<Vec<_>>())
        .await
    {
        Ok(client) => client,
        Err(error) => {
            // Only a URL that does not parse gets here: the flag was
            // checked at start-up.
            tracing::error!(%error, url = %options.url, "cannot use NATS; events are not published");
            return;
        }
    };
    let jetstream = jetstream::ContextBuilder::new()
        .timeout(ACK_TIMEOUT)
        .build(client);
    let relay = Relay {
        db: hub.db().clone(),
        jetstream,
        options,
    };
    let mut numbered = hub.numbered();
    let mut backoff = Backoff::default();
    loop {
        let Err(error) = relay.publish_all(&mut numbered, &mut backoff).await;
        backoff.failed(&error);
        tokio::time::sleep(backoff.pause).await;
    }
}

/// The pauses between failed rounds, and whether to say so.
#[derive(Debug)]
struct Backoff {
    pause: Duration,
    failing: bool,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            pause: FIRST_PAUSE,
            failing: false,
        }
    }
}

impl Backoff {
    fn failed(&mut self, error: &RelayError) {
        if self.failing {
            tracing::debug!(%error, "change events still not published; retrying");
            self.pause = (self.pause * 2).min(LONGEST_PAUSE);
        } else {
            self.failing = true;
            tracing::warn!(%error, "cannot publish change events to NATS; they wait in the outbox");
        }
    }

    /// JetStream answered.
    fn reached(&mut self) {
        self.pause = FIRST_PAUSE;
        if self.failing {
            self.failing = false;
            tracing::info!("change events flow to NATS again");
        }
    }
}

struct Relay {
    db: Database,
    jetstream: jetstream::Context,
    options: NatsOptions,
}

impl Relay {
    /// Makes sure the stream exists; the sequence of the last event in it.
    async fn stream(&self) -> Result<i64, RelayError> {
        let stream_error = |message: String| RelayError::Stream {
            stream: self.options.stream.clone(),
            message,
        };
        let mut stream = self
            .jetstream
            .get_or_create_stream(stream::Config {
                name: self.options.stream.clone(),
                subjects: vec![format!("{}.>", self.options.subject_prefix)],
                duplicate_window: self.options.duplicate_window,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|error| stream_error(error.to_string()))?;
        let last = stream
            .info()
            .await
            .map_err(|error| stream_error(error.to_string()))?
            .state
            .last_sequence;
        if last == 0 {
            return Ok(0);
        }
        let message = stream
            .get_raw_message(last)
            .await
            .map_err(|error| stream_error(format!("reading its last message: {error}")))?;
        let sequence = message
            .headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .and_then(|id| id.as_str().parse::<i64>().ok());
        // A message not ours (no sequence for an id) says nothing of ours.
        Ok(sequence.unwrap_or(0))
    }

    /// Publishes what is numbered, then waits for more; returns only on
    /// an error.
    async fn publish_all(
        &self,
        numbered: &mut tokio::sync::watch::Receiver<i64>,
        backoff: &mut Backoff,
    ) -> Result<std::convert::Infallible, RelayError> {
        let in_stream = self.stream().await?;
        backoff.reached();
        let sequenced = self
            .db
            .read_statement_primary(async |mut tx| Event::sequenced(&mut tx).await)
            .await?;
        let mut published = if in_stream > sequenced {
            // Not this database's events: trust only the cursor.
            tracing::error!(
                stream = %self.options.stream,
                in_stream,
                sequenced,
                "the JetStream stream holds later events than this database has numbered: \
                 is it another database's stream? publishing after the published cursor"
            );
            self.mark(0).await?
        } else {
            self.mark(in_stream).await?
        };
        let mut marked = Instant::now();
        let mut unmarked = false;
        loop {
            // Where the hub last saw the log stand: up to there, nothing
            // more can appear.
            let upto = *numbered.borrow_and_update();
            let page = self
                .db
                .read_statement_primary(async |mut tx| {
                    Event::after(&mut tx, published, upto, &NameMatch::Any, READ_PAGE).await
                })
                .await?;
            let full = page.len() as i64 == READ_PAGE;
            for event in &page {
                self.publish(event).await?;
                published = event.sequence;
            }
            unmarked |= !page.is_empty();
            // The mark serves expiry (what may be deleted) and another
            // server's relay (which follows it); a restart resumes from the
            // stream itself. So a busy relay marks once a second, not once
            // a page (a write transaction per page would cost the writes
            // around it), and an idle one as soon as it has caught up.
            if unmarked && (page.is_empty() || marked.elapsed() >= MARK_EVERY) {
                // Another server's relay may be further: follow it.
                published = self.mark(published).await?;
                marked = Instant::now();
                unmarked = false;
            }
            if !full {
                // Woken by new numbers, or by the poll for other servers'.
                let _ = tokio::time::timeout(Duration::from_secs(1), numbered.changed()).await;
            }
        }
    }

    /// Sends `event` and waits for JetStream's ack.
    async fn publish(&self, event: &Event) -> Result<(), RelayError> {
        let failed = |message: String| RelayError::Publish {
            sequence: event.sequence,
            message,
        };
        let payload = Bytes::from(pb::WatchUsersResponse::from(event).encode_to_vec());
        let message = PublishMessage::build()
            .payload(payload)
            .message_id(event.sequence.to_string())
            .expected_stream(&self.options.stream);
        self.jetstream
            .send_publish(self.options.subject(event.kind), message)
            .await
            .map_err(|error| failed(error.to_string()))?
            .await
            .map_err(|error| failed(error.to_string()))?;
        Ok(())
    }

    /// Moves the `published` cursor up to `sequence` (never back); where
    /// it stands now.
    async fn mark(&self, sequence: i64) -> Result<i64, RelayError> {
        Ok(self
            .db
            .write(async move |mut tx| Event::advance_cursor(&mut tx, PUBLISHED, sequence).await)
            .await?)
    }
}
