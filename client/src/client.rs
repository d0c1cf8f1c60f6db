//! [`UsersClient`]: the users service as plain Rust calls.

use std::time::SystemTime;

use futures_util::{Stream, TryStreamExt, stream};
use tonic::transport::{Channel, Endpoint};

use crate::ClientError;
use crate::pb::{self, user_service_client::UserServiceClient};

/// A connection to the users service.
///
/// Cheap to clone: clones share one HTTP/2 connection, and calls from many
/// tasks are multiplexed over it.
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
    inner: UserServiceClient<Channel>,
}

impl UsersClient {
    /// Connects to a server at `endpoint`, such as `http://127.0.0.1:50051`.
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
        let endpoint = endpoint.into();
        let channel = match Endpoint::from_shared(endpoint.clone()) {
            Ok(builder) => builder.connect().await,
            Err(error) => Err(error),
        };
        channel
            .map(Self::from_channel)
            .map_err(|source| ClientError::Connect { endpoint, source })
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
        Self {
            inner: UserServiceClient::new(channel),
        }
    }

    /// The generated stub underneath, for wire-level access to every field
    /// of the API.
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
    pub fn raw(&self) -> UserServiceClient<Channel> {
        self.inner.clone()
    }

    /// Stores a user named `name` and returns it with its id and timestamps.
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
        let request = pb::CreateUserRequest { name: name.into() };
        let response = self.inner.clone().create_user(request).await?.into_inner();
        let user = response.user.ok_or(ClientError::MalformedResponse(
            "CreateUser returned no user",
        ))?;
        User::try_from(user)
    }

    /// Returns one page of the users that match `query`, in id order.
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
            .inner
            .clone()
            .find_users(query.to_request())
            .await?
            .into_inner();
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
    /// stream is polled. The stream ends after the last page, or after the
    /// first error.
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
        })
    }
}

/// One page of [`UsersClient::find_users`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The users of this page, in ascending id order.
    pub users: Vec<User>,
    /// Where the next page starts; `None` on the last page.
    pub next_page_token: Option<String>,
}

/// A `FindUsers` query: filters that must all match, and where to page from.
///
/// `FindUsers::new()` lists everyone, 50 users a page.
///
/// ```
/// use users_client::FindUsers;
///
/// let johns = FindUsers::new().name("John");
/// let j_something = FindUsers::new().name_prefix("J").page_size(100);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindUsers {
    name: Option<String>,
    name_prefix: Option<String>,
    page_size: Option<u32>,
    page_token: Option<String>,
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

    /// Continue after the page that returned `token`.
    pub fn page_token(mut self, token: impl Into<String>) -> Self {
        self.page_token = Some(token.into());
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
        }
    }
}
