//! [`UsersClient`]: the users service as plain Rust calls.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, SystemTime},
};

use futures_util::{Stream, StreamExt, TryStreamExt, stream};
use tokio::time::Instant;
use tonic::{Status, transport::Channel};

use crate::consistency::ConsistencyToken;
use crate::endpoints::{Credentials, Endpoints, RawClient};
use crate::pb;
use crate::retry::{Failure, Idempotence};
use crate::{ClientBuilder, ClientError, RetryPolicy};

/// A connection to the users service: to one server, or to several
/// interchangeable ones that calls are spread over.
///
/// Cheap to clone: clones share the HTTP/2 connections, and calls from
/// many tasks are multiplexed over them.
///
/// Calls that fail because a server is away, or answers UNAVAILABLE, are
/// sent again (to another server, if there are several) when that is safe,
/// as its [`RetryPolicy`] says. A call takes as long as it takes unless a
/// timeout is set, for all calls with
/// [`ClientBuilder::timeout`] or for some with
/// [`with_timeout`](Self::with_timeout).
///
/// Reads made after a write see it, even from a server that serves reads
/// from read replicas: calls carry the consistency token of the client's
/// writes ([`consistency`](crate::consistency)).
///
/// ```no_run
/// # async fn run() -> Result<(), users_client::ClientError> {
/// let client = users_client::UsersClient::connect("http://127.0.0.1:50051").await?;
/// let user = client.create_user("Ada").await?;
/// println!("stored {} as id {}", user.name, user.id);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct UsersClient {
    pub(crate) endpoints: Arc<Endpoints>,
    /// Bounds each call, its retries included.
    timeout: Option<Duration>,
    pub(crate) retry: RetryPolicy,
    /// From the client's writes, sent with its calls; shared by clones.
    consistency: Arc<ConsistencyToken>,
}

impl UsersClient {
    /// Connects to a server at `endpoint`, such as `http://127.0.0.1:50051`,
    /// or over TLS, `https://users.example.com:50051`, trusting the
    /// operating system's root certificates. For a CA of your own or a
    /// client certificate, see [`builder`](Self::builder).
    ///
    /// Fails with [`ClientError::Connect`] if the URL is invalid or nothing
    /// answers there. Once connected, the channel reconnects by itself; calls
    /// made while the server is away fail with [`ClientError::Unavailable`].
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), users_client::ClientError> {
    /// let client = users_client::UsersClient::connect("http://127.0.0.1:50051").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(endpoint: impl Into<String>) -> Result<Self, ClientError> {
        Self::builder(endpoint).connect().await
    }

    /// Settings for connecting to `endpoint`: over TLS (`https://`) with a
    /// CA certificate file, and a client certificate for servers that
    /// require one.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), users_client::ClientError> {
    /// let client = users_client::UsersClient::builder("https://localhost:50051")
    ///     .ca_certificate_file("ca.pem")
    ///     .identity_files("client.pem", "client.key")
    ///     .connect()
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder(endpoint: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(endpoint.into())
    }

    /// Wraps a channel configured by the caller (TLS, timeouts, lazy
    /// connection, a load-balanced set of endpoints).
    ///
    /// ```no_run
    /// # fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use tonic::transport::Endpoint;
    ///
    /// let channel = Endpoint::from_static("http://127.0.0.1:50051")
    ///     .timeout(Duration::from_secs(5))
    ///     .connect_lazy();
    /// let client = users_client::UsersClient::from_channel(channel);
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_channel(channel: Channel) -> Self {
        Self::from_endpoints(
            Endpoints::new(vec![(channel, false)], &Credentials::default()),
            None,
            RetryPolicy::default(),
        )
    }

    pub(crate) fn from_endpoints(
        endpoints: Endpoints,
        timeout: Option<Duration>,
        retry: RetryPolicy,
    ) -> Self {
        Self {
            endpoints: Arc::new(endpoints),
            timeout,
            retry,
            consistency: Arc::default(),
        }
    }

    /// This client, with every call bounded by `timeout`, retries included:
    /// a call still unanswered then fails with
    /// [`ClientError::DeadlineExceeded`], and the server, which gets the
    /// deadline with the call, gives up on it too. Shares the connections.
    ///
    /// ```no_run
    /// # async fn run(client: users_client::UsersClient) -> Result<(), users_client::ClientError> {
    /// use std::time::Duration;
    ///
    /// let user = client.with_timeout(Duration::from_millis(300)).get_user(42).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        Self {
            timeout: Some(timeout),
            ..self.clone()
        }
    }

    /// This client, retrying as `policy` says. Shares the connections.
    ///
    /// ```no_run
    /// # async fn run(client: users_client::UsersClient) -> Result<(), users_client::ClientError> {
    /// use users_client::RetryPolicy;
    ///
    /// let once = client.with_retry_policy(RetryPolicy::none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_retry_policy(&self, policy: RetryPolicy) -> Self {
        Self {
            retry: policy,
            ..self.clone()
        }
    }

    /// The consistency token of this client's writes (and its clones'),
    /// the furthest one the server returned, if it returned any: to hand to
    /// another client or process whose reads must see those writes (it
    /// sends it as `x-consistency-token` metadata).
    pub fn consistency_token(&self) -> Option<String> {
        self.consistency.get()
    }

    /// The generated stub on one of the servers (the one the balancing
    /// picks), with the bearer token if there is one, for wire-level access
    /// to every field of the API. Its calls are sent once, with no timeout
    /// but their own.
    ///
    /// ```no_run
    /// # async fn run(client: users_client::UsersClient) -> Result<(), tonic::Status> {
    /// use users_client::pb::FindUsersRequest;
    ///
    /// let reply = client
    ///     .raw()
    ///     .find_users(FindUsersRequest { page_size: 5, ..Default::default() })
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn raw(&self) -> RawClient {
        self.endpoints.pick().stub()
    }

    /// Sends `request` with `send` on a server the balancing picks, again
    /// on failures the retry policy allows for a call of `idempotence`,
    /// within the client's timeout.
    async fn call<Req, Resp, Send, Sent>(
        &self,
        idempotence: Idempotence,
        request: Req,
        send: Send,
    ) -> Result<Resp, ClientError>
    where
        Req: Clone,
        Send: Fn(RawClient, tonic::Request<Req>) -> Sent,
        Sent: Future<Output = Result<tonic::Response<Resp>, Status>>,
    {
        let deadline = self.timeout.map(|timeout| Instant::now() + timeout);
        let mut attempt = 1;
        loop {
            let picked = self.endpoints.pick();
            let mut message = tonic::Request::new(request.clone());
            self.consistency.attach(message.metadata_mut());
            let answer = match deadline {
                Some(deadline) => {
                    // The server hears of the deadline and stops working on
                    // the call when it passes; the client stops waiting.
                    message.set_timeout(deadline.saturating_duration_since(Instant::now()));
                    tokio::time::timeout_at(deadline, send(picked.stub(), message))
                        .await
                        .unwrap_or_else(|_| Err(self.deadline_passed()))
                }
                None => send(picked.stub(), message).await,
            };
            let status = match answer {
                Ok(response) => {
                    picked.answered();
                    self.consistency.observe(response.metadata());
                    return Ok(response.into_inner());
                }
                Err(status) => status,
            };
            let failure = Failure::of(&status);
            match failure.is_connection_failure() {
                true => picked.connection_failed(),
                false => picked.answered(),
            }
            drop(picked);
            let status = match deadline {
                // tonic's own timer answers CANCELLED.
                Some(deadline) if Instant::now() >= deadline => {
                    return Err(self.deadline_passed().into());
                }
                _ => status,
            };
            if !(failure.is_retryable(idempotence) && self.retry.allows_another_after(attempt)) {
                return Err(status.into());
            }
            let resume = Instant::now() + self.retry.backoff_after(attempt);
            if deadline.is_some_and(|deadline| resume >= deadline) {
                return Err(status.into());
            }
            tokio::time::sleep_until(resume).await;
            attempt += 1;
        }
    }

    fn deadline_passed(&self) -> Status {
        Status::deadline_exceeded(format!(
            "no answer within the client's timeout of {:?}",
            self.timeout.unwrap_or_default()
        ))
    }

    /// Stores a user named `name` and returns it with its id and timestamps.
    ///
    /// The call carries a new request id, so the server stores the user
    /// once however often the same call is sent again (to retry it under
    /// your control with one request id, see
    /// [`create_user_with_request_id`](Self::create_user_with_request_id)).
    ///
    /// Fails with [`ClientError::InvalidArgument`] if the name is empty, only
    /// whitespace, longer than 256 characters or holds control characters.
    ///
    /// ```no_run
    /// # async fn run(client: users_client::UsersClient) -> Result<(), users_client::ClientError> {
    /// let john = client.create_user("John").await?;
    /// assert_eq!(john.name, "John");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn create_user(&self, name: impl Into<String>) -> Result<User, ClientError> {
        self.create_user_with_request_id(name, new_request_id())
            .await
    }

    /// Stores a user named `name` under `request_id`, a UUID: if the server
    /// has seen `request_id` within the last 24 hours (its setting), it
    /// stores nothing and returns the user it created then. So a create
    /// that failed with [`ClientError::Unavailable`] or a deadline can be
    /// sent again with the same `request_id`, without risking a second user.
    ///
    /// ```no_run
    /// # async fn run(client: users_client::UsersClient) -> Result<(), users_client::ClientError> {
    /// let request_id = "8d7c7ed4-4e5b-4bb4-9a6c-1f0f0e1b8a3c";
    /// let first = client.create_user_with_request_id("Ada", request_id).await?;
    /// let again = client.create_user_with_request_id("Ada", request_id).await?;
    /// assert_eq!(first.id, again.id);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn create_user_with_request_id(
        &self,
        name: impl Into<String>,
        request_id: impl Into<String>,
    ) -> Result<User, ClientError> {
        let request = pb::CreateUserRequest {
            name: name.into(),
            request_id: request_id.into(),
        };
        let response = self
            .call(Idempotence::Safe, request, |mut stub, request| async move {
                stub.create_user(request).await
            })
            .await?;
        User::from_response(response.user, "CreateUser returned no user")
    }

    /// Stores users named `names` (1 to 1000) in one transaction, all or
    /// none, and returns them in the same order. Each entry carries a new
    /// request id, as in [`create_user`](Self::create_user).
    ///
    /// Fails with [`ClientError::InvalidArgument`] naming the first bad entry
    /// (`requests[3].name`), and stores nothing then.
    ///
    /// ```no_run
    /// # async fn run(client: users_client::UsersClient) -> Result<(), users_client::ClientError> {
    /// let users = client.batch_create_users(["Ada", "Grace", "Edsger"]).await?;
    /// assert_eq!(users[1].name, "Grace");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn batch_create_users(
        &self,
        names: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Vec<User>, ClientError> {
        let requests = names
            .into_iter()
            .map(|name| pb::CreateUserRequest {
                name: name.into(),
                request_id: new_request_id(),
            })
            .collect();
        let request = pb::BatchCreateUsersRequest { requests };
        let response = self
            .call(Idempotence::Safe, request, |mut stub, request| async move {
                stub.batch_create_users(request).await
            })
            .await?;
        response.users.into_iter().map(User::try_from).collect()
    }

    /// The user with id `id`.
    ///
    /// Fails with [`ClientError::NotFound`] if there is none.
    ///
    /// ```no_run
    /// # async fn run(client: users_client::UsersClient) -> Result<(), users_client::ClientError> {
    /// let user = client.get_user(42).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_user(&self, id: i64) -> Result<User, ClientError> {
        let request = pb::GetUserRequest { id };
        let response = self
            .call(Idempotence::Safe, request, |mut stub, request| async move {
                stub.get_user(request).await
            })
            .await?;
        User::from_response(response.user, "GetUser returned no user")
    }

    /// Renames the user `id` and returns it as stored now, with a new
    /// `update_time` and `etag`. With `etag: Some(..)`, only if the user is
    /// still as it was when that etag was read: otherwise nothing changes
    /// and the call fails with [`ClientError::Aborted`].
    ///
    /// Fails with [`ClientError::NotFound`] if there is no such user, and
    /// [`ClientError::InvalidArgument`] for a name that breaks the rules.
    ///
    /// ```no_run
    /// # async fn run(client: users_client::UsersClient) -> Result<(), users_client::ClientError> {
    /// let user = client.get_user(42).await?;
    /// let renamed = client.rename_user(user.id, "Ada L.", Some(&user.etag)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn rename_user(
        &self,
        id: i64,
        name: impl Into<String>,
        etag: Option<&str>,
    ) -> Result<User, ClientError> {
        let request = pb::UpdateUserRequest {
            user: Some(pb::User {
                id,
                name: name.into(),
                etag: etag.unwrap_or_default().to_owned(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["name".to_owned()],
            }),
        };
        let response = self
            .call(
                Idempotence::Unsafe,
                request,
                |mut stub, request| async move { stub.update_user(request).await },
            )
            .await?;
        User::from_response(response.user, "UpdateUser returned no user")
    }

    /// Deletes the user `id`; with `etag: Some(..)`, only if the user is
    /// still as it was when that etag was read (else
    /// [`ClientError::Aborted`], and nothing is deleted).
    ///
    /// Fails with [`ClientError::NotFound`] if there is no such user.
    ///
    /// ```no_run
    /// # async fn run(client: users_client::UsersClient) -> Result<(), users_client::ClientError> {
    /// client.delete_user(42, None).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete_user(&self, id: i64, etag: Option<&str>) -> Result<(), ClientError> {
        let request = pb::DeleteUserRequest {
            id,
            etag: etag.unwrap_or_default().to_owned(),
        };
        self.call(
            Idempotence::Unsafe,
            request,
            |mut stub, request| async move { stub.delete_user(request).await },
        )
        .await?;
        Ok(())
    }

    /// Returns one page of the users that match `query`, in its order (ids
    /// by default).
    ///
    /// Continue with `query.page_token(token)` while the page has a
    /// [`next_page_token`](Page::next_page_token), or let
    /// [`find_all_users`](Self::find_all_users) do that.
    ///
    /// ```no_run
    /// # async fn run(client: users_client::UsersClient) -> Result<(), users_client::ClientError> {
    /// use users_client::FindUsers;
    ///
    /// let query = FindUsers::new().name_prefix("Jo").page_size(10);
    /// let page = client.find_users(&query).await?;
    /// for user in &page.users {
    ///     println!("{} {}", user.id, user.name);
    /// }
    /// if let Some(token) = page.next_page_token {
    ///     let next = client.find_users(&query.page_token(token)).await?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn find_users(&self, query: &FindUsers) -> Result<Page, ClientError> {
        let response = self
            .call(
                Idempotence::Safe,
                query.to_request(),
                |mut stub, request| async move { stub.find_users(request).await },
            )
            .await?;
        let users = response
            .users
            .into_iter()
            .map(User::try_from)
            .collect::<Result<_, _>>()?;
        let next_page_token = Some(response.next_page_token).filter(|token| !token.is_empty());
        Ok(Page {
            users,
            next_page_token,
        })
    }

    /// Every user that matches `query`, fetched a page at a time as the
    /// stream is polled, one `FindUsers` call per page. The stream ends after
    /// the last page, or after the first error. For large results,
    /// [`export_users`](Self::export_users) streams them in one call.
    ///
    /// ```no_run
    /// # async fn run(client: users_client::UsersClient) -> Result<(), users_client::ClientError> {
    /// use futures_util::TryStreamExt;
    /// use users_client::FindUsers;
    ///
    /// let everyone: Vec<_> = client.find_all_users(FindUsers::new()).try_collect().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn find_all_users(
        &self,
        query: FindUsers,
    ) -> impl Stream<Item = Result<User, ClientError>> + Send + 'static {
        let client = self.clone();
        let pages = stream::try_unfold(Some(query), move |query| {
            let client = client.clone();
            async move {
                let Some(query) = query else {
                    return Ok(None);
                };
                let page = client.find_users(&query).await?;
                let next = page.next_page_token.map(|token| query.page_token(token));
                Ok::<_, ClientError>(Some((page.users, next)))
            }
        });
        pages
            .map_ok(|users| stream::iter(users.into_iter().map(Ok)))
            .try_flatten()
    }

    /// Every user that matches `query`, in its order, streamed by the server
    /// in one `ExportUsers` call: for results far larger than a page. The
    /// server reads as fast as the stream is consumed, so neither side holds
    /// the whole result. `query`'s page size is ignored; its page token, if
    /// any, resumes after that page.
    ///
    /// ```no_run
    /// # async fn run(client: users_client::UsersClient) -> Result<(), users_client::ClientError> {
    /// use futures_util::TryStreamExt;
    /// use users_client::FindUsers;
    ///
    /// let mut users = client.export_users(FindUsers::new().name_prefix("J")).await?;
    /// while let Some(user) = users.try_next().await? {
    ///     println!("{} {}", user.id, user.name);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn export_users(
        &self,
        query: FindUsers,
    ) -> Result<impl Stream<Item = Result<User, ClientError>> + Send + 'static, ClientError> {
        let deadline = self.timeout.map(|timeout| Instant::now() + timeout);
        let users = self
            .call(
                Idempotence::Safe,
                pb::ExportUsersRequest::from(query.to_request()),
                |mut stub, request| async move { stub.export_users(request).await },
            )
            .await?;
        let users = users.map_err(ClientError::from);
        let users = match deadline {
            Some(deadline) => until_deadline(users, deadline, self.deadline_passed())
                .boxed()
                .left_stream(),
            None => users.right_stream(),
        };
        Ok(users.and_then(|user| std::future::ready(User::try_from(user))))
    }
}

/// `items`, ended by `error` at `deadline` if they have not ended by then.
fn until_deadline<T>(
    items: impl Stream<Item = Result<T, ClientError>> + Send + 'static,
    deadline: Instant,
    error: Status,
) -> impl Stream<Item = Result<T, ClientError>> + Send + 'static {
    let items = Box::pin(items);
    stream::unfold(Some((items, error)), move |state| async move {
        let (mut items, error) = state?;
        // Items the transport holds already are ready at once: a timer
        // alone would let them through after the deadline.
        if Instant::now() >= deadline {
            return Some((Err(error.into()), None));
        }
        match tokio::time::timeout_at(deadline, items.next()).await {
            Ok(Some(item)) => Some((item, Some((items, error)))),
            Ok(None) => None,
            Err(_) => Some((Err(error.into()), None)),
        }
    })
}

/// A new request id: a random (version 4) UUID.
fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A stored user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Server-assigned, unique, never reused; grows in creation order.
    pub id: i64,
    /// The name exactly as it was given.
    pub name: String,
    /// When the user was created (server clock).
    pub create_time: SystemTime,
    /// When the user was last changed; equal to `create_time` until then.
    pub update_time: SystemTime,
    /// Changes on every write to the user; pass it to
    /// [`UsersClient::rename_user`] or [`UsersClient::delete_user`] to write
    /// only if nobody changed the user since.
    pub etag: String,
}

impl User {
    fn from_response(user: Option<pb::User>, missing: &'static str) -> Result<Self, ClientError> {
        Self::try_from(user.ok_or(ClientError::MalformedResponse(missing))?)
    }
}

impl TryFrom<pb::User> for User {
    type Error = ClientError;

    fn try_from(user: pb::User) -> Result<Self, ClientError> {
        let time = |timestamp: Option<prost_types::Timestamp>, missing| {
            timestamp
                .and_then(|timestamp| SystemTime::try_from(timestamp).ok())
                .ok_or(ClientError::MalformedResponse(missing))
        };
        Ok(Self {
            id: user.id,
            name: user.name,
            create_time: time(user.create_time, "user without a valid create_time")?,
            update_time: time(user.update_time, "user without a valid update_time")?,
            etag: user.etag,
        })
    }
}

/// One page of [`UsersClient::find_users`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The users of this page, in the query's order.
    pub users: Vec<User>,
    /// Where the next page starts; `None` on the last page.
    pub next_page_token: Option<String>,
}

/// A `FindUsers` query: filters that must all match, an order, and where
/// to page from.
///
/// `FindUsers::new()` lists everyone by id, 50 users a page.
///
/// ```
/// use users_client::{FindUsers, SortField};
///
/// let johns = FindUsers::new().name("John");
/// let j_something = FindUsers::new().name_prefix("J").page_size(100);
/// let newest_first = FindUsers::new().order_by(SortField::CreateTime).descending();
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindUsers {
    name: Option<String>,
    name_prefix: Option<String>,
    page_size: Option<u32>,
    page_token: Option<String>,
    order_by: SortField,
    descending: bool,
}

/// What users are sorted on; users that tie are sorted by id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortField {
    /// Creation order (the default).
    #[default]
    Id,
    /// Name, in code point order.
    Name,
    /// Creation time.
    CreateTime,
}

impl FindUsers {
    /// A query for all users, with the server's default page size (50).
    pub fn new() -> Self {
        Self::default()
    }

    /// Only users whose name is exactly `name` (case-sensitive).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Only users whose name starts with `prefix` (case-sensitive; `%` and
    /// `_` are ordinary characters).
    pub fn name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.name_prefix = Some(prefix.into());
        self
    }

    /// At most `size` users a page; the server caps it at 1000, and 0 means
    /// its default of 50.
    pub fn page_size(mut self, size: u32) -> Self {
        self.page_size = Some(size);
        self
    }

    /// Continue after the page that returned `token` (with the same
    /// filters and order).
    pub fn page_token(mut self, token: impl Into<String>) -> Self {
        self.page_token = Some(token.into());
        self
    }

    /// Sort on `field`, ascending unless [`descending`](Self::descending).
    pub fn order_by(mut self, field: SortField) -> Self {
        self.order_by = field;
        self
    }

    /// Largest first.
    pub fn descending(mut self) -> Self {
        self.descending = true;
        self
    }

    fn to_request(&self) -> pb::FindUsersRequest {
        pb::FindUsersRequest {
            name: self.name.clone().unwrap_or_default(),
            name_prefix: self.name_prefix.clone().unwrap_or_default(),
            // The server caps sizes at 1000 anyway; saturate rather than wrap.
            page_size: self
                .page_size
                .map_or(0, |size| i32::try_from(size).unwrap_or(i32::MAX)),
            page_token: self.page_token.clone().unwrap_or_default(),
            order_by: match (self.order_by, self.descending) {
                (SortField::Id, false) => "",
                (SortField::Id, true) => "id desc",
                (SortField::Name, false) => "name",
                (SortField::Name, true) => "name desc",
                (SortField::CreateTime, false) => "create_time",
                (SortField::CreateTime, true) => "create_time desc",
            }
            .to_owned(),
        }
    }
}
