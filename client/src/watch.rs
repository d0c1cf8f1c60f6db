//! [`UsersClient::watch_users`]: the changes to users as a stream that
//! survives broken connections and server restarts.

use std::time::SystemTime;

use futures_util::{Stream, StreamExt, stream};
use tonic::{Status, Streaming};

use crate::client::{User, UsersClient};
use crate::error::ClientError;
use crate::pb;
use crate::retry::Failure;

/// The response header of `WatchUsers` and `ExportUsers` that holds the
/// sequence the stream starts after.
pub const WATCH_FROM: &str = "x-users-event-sequence";

/// Which changes [`UsersClient::watch_users`] streams: from now, or after
/// a sequence number, for users whose names match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchUsers {
    name: String,
    name_prefix: String,
    after: Option<i64>,
}

impl WatchUsers {
    /// The changes committed from now on, to every user.
    pub fn new() -> Self {
        Self::default()
    }

    /// The changes after the event numbered `sequence` (the last one
    /// handled, to resume; or the sequence `ExportUsers` gave).
    pub fn after(mut self, sequence: i64) -> Self {
        self.after = Some(sequence);
        self
    }

    /// Only changes to users with exactly this name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Only changes to users whose name starts with `prefix`.
    pub fn name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.name_prefix = prefix.into();
        self
    }

    fn to_request(&self, after: Option<i64>) -> pb::WatchUsersRequest {
        pb::WatchUsersRequest {
            name: self.name.clone(),
            name_prefix: self.name_prefix.clone(),
            after_sequence: after.unwrap_or(0),
            from_now: after.is_none(),
        }
    }
}

/// What happened to a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Created (CreateUser, BatchCreateUsers).
    Created,
    /// Renamed (UpdateUser).
    Updated,
    /// Deleted (DeleteUser).
    Deleted,
}

/// One committed change to a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEvent {
    /// Grows with every event, in commit order.
    pub sequence: i64,
    /// What happened.
    pub kind: EventKind,
    /// The user as the write left it; for a delete, as it was.
    pub user: User,
    /// When the write happened (server clock).
    pub event_time: SystemTime,
    /// The `x-request-id` of the call that wrote.
    pub request_id: String,
}

impl UserEvent {
    /// Reads an event as the server publishes it to NATS JetStream
    /// (`--events-nats-url`): a message's payload is a protobuf
    /// `WatchUsersResponse`, the message WatchUsers streams.
    pub fn decode(payload: &[u8]) -> Result<Self, ClientError> {
        use prost::Message as _;
        let event = pb::WatchUsersResponse::decode(payload)
            .map_err(|_| ClientError::MalformedResponse("not a WatchUsersResponse"))?;
        Self::try_from(event)
    }
}

impl TryFrom<pb::WatchUsersResponse> for UserEvent {
    type Error = ClientError;

    fn try_from(event: pb::WatchUsersResponse) -> Result<Self, ClientError> {
        use pb::watch_users_response::Kind;
        let kind = match Kind::try_from(event.kind) {
            Ok(Kind::Created) => EventKind::Created,
            Ok(Kind::Updated) => EventKind::Updated,
            Ok(Kind::Deleted) => EventKind::Deleted,
            _ => return Err(ClientError::MalformedResponse("event of an unknown kind")),
        };
        let user = event
            .user
            .ok_or(ClientError::MalformedResponse("event without a user"))?;
        Ok(Self {
            sequence: event.sequence,
            kind,
            user: User::try_from(user)?,
            event_time: event
                .event_time
                .and_then(|time| SystemTime::try_from(time).ok())
                .ok_or(ClientError::MalformedResponse(
                    "event without a valid event_time",
                ))?,
            request_id: event.request_id,
        })
    }
}

/// Where a watch stands between events.
struct Watching {
    client: UsersClient,
    query: WatchUsers,
    /// The sequence of the last event received, or the one the stream
    /// started after; `None` before the first answer of a watch from now.
    after: Option<i64>,
    stream: Option<Streaming<pb::WatchUsersResponse>>,
    /// Failed attempts since the last answer, for the backoff.
    failures: u32,
}

impl UsersClient {
    /// The changes to users that `query` selects, in commit order, as they
    /// are committed, for as long as the stream is read.
    ///
    /// The stream resumes by itself after a broken connection, a server
    /// restart or an UNAVAILABLE server (another server of the client's,
    /// if it has several), from the last event it returned: it misses
    /// nothing and repeats nothing, however often it resumes, waiting the
    /// retry policy's backoff between attempts (attempts are not limited:
    /// drop the stream to stop). It ends with an error the server gives
    /// for the watch itself: [`ClientError::OutOfRange`] if the events
    /// after the position are no longer kept, an invalid query, a refused
    /// token. The client's timeout does not apply: a watch has no end.
    ///
    /// ```no_run
    /// # async fn run(client: users_client::UsersClient) -> Result<(), users_client::ClientError> {
    /// use futures_util::TryStreamExt;
    /// use users_client::WatchUsers;
    ///
    /// let mut events = std::pin::pin!(client.watch_users(WatchUsers::new().name_prefix("J")));
    /// while let Some(event) = events.try_next().await? {
    ///     println!("#{} {:?} {} {}", event.sequence, event.kind, event.user.id, event.user.name);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn watch_users(
        &self,
        query: WatchUsers,
    ) -> impl Stream<Item = Result<UserEvent, ClientError>> + Send + 'static {
        let watching = Watching {
            client: self.clone(),
            after: query.after,
            query,
            stream: None,
            failures: 0,
        };
        stream::unfold(Some(watching), |watching| async move {
            let mut watching = watching?;
            match watching.next().await {
                Ok(event) => Some((Ok(event), Some(watching))),
                Err(error) => Some((Err(error), None)),
            }
        })
    }
}

impl Watching {
    /// The next event, resuming as often as it takes.
    async fn next(&mut self) -> Result<UserEvent, ClientError> {
        loop {
            let Some(stream) = &mut self.stream else {
                match self.open().await {
                    Ok(stream) => self.stream = Some(stream),
                    Err(status) => self.failed(status).await?,
                }
                continue;
            };
            match stream.next().await {
                Some(Ok(event)) => {
                    self.failures = 0;
                    let event = UserEvent::try_from(event)?;
                    self.after = Some(event.sequence);
                    return Ok(event);
                }
                Some(Err(status)) => {
                    self.stream = None;
                    self.failed(status).await?;
                }
                // A watch does not end; a server that ends it is going away.
                None => {
                    self.stream = None;
                    self.failed(Status::unavailable("the server ended the watch"))
                        .await?;
                }
            }
        }
    }

    async fn open(&mut self) -> Result<Streaming<pb::WatchUsersResponse>, Status> {
        let picked = self.client.endpoints.pick();
        let request = tonic::Request::new(self.query.to_request(self.after));
        match picked.stub().watch_users(request).await {
            Ok(response) => {
                picked.answered();
                if self.after.is_none() {
                    self.after = response
                        .metadata()
                        .get(WATCH_FROM)
                        .and_then(|value| value.to_str().ok())
                        .and_then(|value| value.parse().ok());
                }
                Ok(response.into_inner())
            }
            Err(status) => {
                if Failure::of(&status).is_connection_failure() {
                    picked.connection_failed();
                } else {
                    picked.answered();
                }
                Err(status)
            }
        }
    }

    /// After `status`: waits to resume, or ends the watch with it.
    async fn failed(&mut self, status: Status) -> Result<(), ClientError> {
        if Failure::of(&status) == Failure::Final {
            return Err(status.into());
        }
        self.failures = self.failures.saturating_add(1);
        tokio::time::sleep(self.client.retry.backoff_after(self.failures)).await;
        Ok(())
    }
}
