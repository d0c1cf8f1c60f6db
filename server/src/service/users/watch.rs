//! WatchUsers: the change events after a sequence number, then as they
//! are committed, for as long as the caller reads.
//!
//! A watch first reads what it asked for from the table, a page at a time
//! (catching up), then follows this server's [`EventHub`]. It subscribes to
//! the hub before it reads, so that nothing falls between the two: an
//! event sent before the subscription was in the table when it read;
//! one sent after is received (and skipped if the read had it). If it
//! falls behind the hub's channel, or receives an event whose predecessor
//! it has not seen (the hub skipped some, numbered while nobody watched
//! or before it started), it catches up from the table again.

use std::{collections::VecDeque, pin::Pin};

use futures_util::{Stream, stream};
use tokio::sync::{broadcast, watch};
use tonic::Status;
use tracing::Instrument;
use users_client::pb;

use super::UsersService;
use crate::db::Database;
use crate::domain::{Invalid, NamePrefix, UserFilter, UserName};
use crate::error::ApiError;
use crate::events::{READ_PAGE, Sent};
use crate::models::{Event, Kept};

/// The events a WatchUsers call streams.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<pb::WatchUsersResponse, Status>> + Send>>;

/// Where a watch stands.
struct Watch {
    db: Database,
    filter: UserFilter,
    /// The last sequence sent, or skipped as not matching.
    after: i64,
    /// Reading from the table, not from the hub.
    catching_up: bool,
    received: broadcast::Receiver<Sent>,
    closing: watch::Receiver<bool>,
    ready: VecDeque<pb::WatchUsersResponse>,
    /// The caller's deadline, if it gave one.
    deadline: Option<tokio::time::Instant>,
    /// How long one read of the table may take.
    read_timeout: std::time::Duration,
}

impl UsersService {
    /// Validates the request, checks that the events asked for are kept,
    /// and returns the stream, with the sequence it starts after (for
    /// `from_now`, where the log stands: a caller that loses the stream
    /// before its first event resumes from there). As for ExportUsers, the stream is polled only
    /// as fast as the caller reads, so a slow watcher holds no connection
    /// (it reads the table only when polled) and no more than a page.
    pub(super) async fn watch_users_inner(
        &self,
        request: pb::WatchUsersRequest,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<(EventStream, i64), ApiError> {
        let filter = UserFilter {
            name: match request.name {
                name if name.is_empty() => None,
                name => Some(UserName::parse("name", name)?),
            },
            name_prefix: NamePrefix::parse("name_prefix", request.name_prefix)?,
        };
        if request.after_sequence < 0 {
            return Err(Invalid::new(
                "after_sequence",
                "INVALID_SEQUENCE",
                format!("must not be negative (got {})", request.after_sequence),
            )
            .into());
        }
        let received = self.events.subscribe();
        let now = match request.from_now {
            true => Some(self.log_position(deadline).await?),
            false => None,
        };
        let kept = self
            .db
            .read_primary(async |mut tx| Event::kept(&mut tx).await)
            .await?;
        let after = if let Some(now) = now {
            now
        } else {
            check_kept(request.after_sequence, kept)?;
            request.after_sequence
        };
        let state = Watch {
            db: self.db.clone(),
            filter,
            after,
            catching_up: true,
            received,
            closing: self.events.closing(),
            ready: VecDeque::new(),
            deadline,
            read_timeout: self.default_timeout,
        };
        let call = tracing::Span::current();
        let events = stream::unfold(Some(state), move |state| {
            let call = call.clone();
            async move {
                let mut state = state?;
                match state.next().await {
                    Ok(event) => Some((Ok(event), Some(state))),
                    Err(error) => {
                        tracing::info!(%error, after = state.after, "watch ended");
                        Some((Err(Status::from(error)), None))
                    }
                }
            }
            .instrument(call)
        });
        Ok((Box::pin(events), after))
    }
}

impl UsersService {
    /// Where the event log stands once every write committed before the
    /// call is in it ([`EventHub::number_committed`]): on PostgreSQL,
    /// that waits for the write transactions running now, for no longer
    /// than the call's deadline or the default timeout.
    pub(super) async fn log_position(
        &self,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<i64, ApiError> {
        let bound = tokio::time::Instant::now() + self.default_timeout;
        let bound = deadline.map_or(bound, |call| call.min(bound));
        Ok(
            tokio::time::timeout_at(bound, self.events.number_committed())
                .await
                .map_err(|_| ApiError::DeadlineExceeded)??,
        )
    }
}

/// Whether the events after `after` are all still kept, and `after` was
/// issued.
fn check_kept(after: i64, kept: Kept) -> Result<(), ApiError> {
    if after < kept.expired {
        return Err(ApiError::EventsExpired {
            after,
            expired: kept.expired,
        });
    }
    if after > kept.sequenced {
        return Err(Invalid::new(
            "after_sequence",
            "INVALID_SEQUENCE",
            format!(
                "{after} was never issued: the last event is {}",
                kept.sequenced
            ),
        )
        .into());
    }
    Ok(())
}

impl Watch {
    /// The next event to send: waits for one as long as it takes, unless
    /// the caller's deadline passes or the server shuts down.
    async fn next(&mut self) -> Result<pb::WatchUsersResponse, ApiError> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(event);
            }
            if *self.closing.borrow() {
                return Err(ApiError::ShuttingDown { after: self.after });
            }
            if self.catching_up {
                self.catch_up().await?;
                continue;
            }
            let deadline = self.deadline;
            let past_deadline = async move {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                received = self.received.recv() => match received {
                    Ok(sent) => self.take(&sent),
                    // Fell behind the channel: the table has what it missed.
                    Err(broadcast::error::RecvError::Lagged(_)) => self.catching_up = true,
                    Err(broadcast::error::RecvError::Closed) => {
                        return Err(ApiError::ShuttingDown { after: self.after });
                    }
                },
                changed = self.closing.changed() => if changed.is_err() {
                    // The hub is gone: the server has stopped.
                    return Err(ApiError::ShuttingDown { after: self.after });
                },
                () = past_deadline => return Err(ApiError::DeadlineExceeded),
            }
        }
    }

    /// Reads the next page of events from the table; once a page is not
    /// full, follows the hub.
    async fn catch_up(&mut self) -> Result<(), ApiError> {
        let names = self.filter.name_match();
        let after = self.after;
        // Three reads, which at READ COMMITTED see different moments:
        // where the log stood before the page (the page reads up to it,
        // and the watch skips past only that), and what was deleted after it (an event
        // deleted meanwhile is missing from the page: that must be seen).
        let read = self.db.read_primary(async |mut tx| {
            let before = Event::kept(&mut tx).await?;
            let events = Event::after(&mut tx, after, before.sequenced, &names, READ_PAGE).await?;
            let after = Event::kept(&mut tx).await?;
            Ok((
                Kept {
                    sequenced: before.sequenced,
                    expired: after.expired,
                },
                events,
            ))
        });
        let read_deadline = tokio::time::Instant::now() + self.read_timeout;
        let read_deadline = self
            .deadline
            .map_or(read_deadline, |call| call.min(read_deadline));
        let (kept, events) = tokio::time::timeout_at(read_deadline, read)
            .await
            .map_err(|_| ApiError::DeadlineExceeded)??;
        // Events may expire while a slow watcher catches up.
        check_kept(after, kept)?;
        if (events.len() as i64) < READ_PAGE {
            self.catching_up = false;
            // Nothing matched up to where the log stood: skip past it.
            self.after = self.after.max(kept.sequenced);
        }
        for event in &events {
            self.after = self.after.max(event.sequence);
            self.ready.push_back(event.into());
        }
        Ok(())
    }

    /// An event from the hub: sent if new and matching; after a gap, the
    /// table is read first.
    fn take(&mut self, sent: &Sent) {
        if sent.after > self.after {
            // Events this watch has not seen were numbered, and not sent.
            self.catching_up = true;
            return;
        }
        let Some(event) = sent.event.as_deref() else {
            return;
        };
        if event.sequence <= self.after {
            return;
        }
        self.after = event.sequence;
        if self.filter.matches(&event.user.name) {
            self.ready.push_back(event.into());
        }
    }
}
