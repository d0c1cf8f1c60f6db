//! `users.v1.UserService`: each RPC's handler, by what it does.
//!
//! - [`create`]: CreateUser, BatchCreateUsers, request ids;
//! - [`find`]: FindUsers, ExportUsers;
//! - [`change`]: GetUser, UpdateUser, DeleteUser;
//! - [`watch`]: WatchUsers, the change events;
//! - [`wire`]: stored users and events as wire messages.

mod change;
mod create;
mod find;
mod watch;
mod wire;

use std::time::Duration;

use tonic::{Request, Response, Status};
use users_client::pb::{self, user_service_server::UserService};

use super::rpc;
use crate::db::Database;
use crate::events::{EventHub, HubOptions};
use crate::metrics::RpcMetrics;

pub use create::forget_expired_request_ids;

/// Serves `users.v1.UserService` from a [`Database`].
#[derive(Debug, Clone)]
pub struct UsersService {
    db: Database,
    /// How long a create's request id is remembered.
    request_id_ttl: Duration,
    /// Where calls are counted.
    metrics: RpcMetrics,
    /// How long a call may take when its caller set no deadline.
    default_timeout: Duration,
    /// Where the writes' events go out to watchers.
    events: EventHub,
}

impl UsersService {
    /// Serves users stored in `db`, remembering request ids for
    /// `request_id_ttl`.
    ///
    /// Watchers are served by an [`EventHub`] of default options, which
    /// must run ([`events`](Self::events)) for them to see new events.
    pub fn new(db: Database, request_id_ttl: Duration) -> Self {
        Self {
            events: EventHub::new(db.clone(), HubOptions::default()),
            db,
            request_id_ttl,
            metrics: RpcMetrics::default(),
            default_timeout: Duration::from_secs(30),
        }
    }

    /// Ends calls without a deadline of their caller's after `timeout`.
    pub fn with_default_timeout(self, timeout: Duration) -> Self {
        Self {
            default_timeout: timeout,
            ..self
        }
    }

    /// Serves watchers from `events` (a hub on the same database).
    pub fn with_events(self, events: EventHub) -> Self {
        Self { events, ..self }
    }

    /// The hub watchers are served from.
    pub fn events(&self) -> &EventHub {
        &self.events
    }

    /// Counts calls in `metrics` (by default, in metrics of its own that
    /// nobody reads).
    pub fn with_metrics(self, metrics: RpcMetrics) -> Self {
        Self { metrics, ..self }
    }
}

#[tonic::async_trait]
impl UserService for UsersService {
    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
        rpc(
            &self.metrics,
            self.default_timeout,
            "CreateUser",
            request,
            |message| self.create_user_inner(message),
        )
        .await
    }

    async fn find_users(
        &self,
        request: Request<pb::FindUsersRequest>,
    ) -> Result<Response<pb::FindUsersResponse>, Status> {
        rpc(
            &self.metrics,
            self.default_timeout,
            "FindUsers",
            request,
            |message| self.find_users_inner(message),
        )
        .await
    }

    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::GetUserResponse>, Status> {
        rpc(
            &self.metrics,
            self.default_timeout,
            "GetUser",
            request,
            |message| self.get_user_inner(message),
        )
        .await
    }

    async fn update_user(
        &self,
        request: Request<pb::UpdateUserRequest>,
    ) -> Result<Response<pb::UpdateUserResponse>, Status> {
        rpc(
            &self.metrics,
            self.default_timeout,
            "UpdateUser",
            request,
            |message| self.update_user_inner(message),
        )
        .await
    }

    async fn delete_user(
        &self,
        request: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<pb::DeleteUserResponse>, Status> {
        rpc(
            &self.metrics,
            self.default_timeout,
            "DeleteUser",
            request,
            |message| self.delete_user_inner(message),
        )
        .await
    }

    async fn batch_create_users(
        &self,
        request: Request<pb::BatchCreateUsersRequest>,
    ) -> Result<Response<pb::BatchCreateUsersResponse>, Status> {
        rpc(
            &self.metrics,
            self.default_timeout,
            "BatchCreateUsers",
            request,
            |message| self.batch_create_users_inner(message),
        )
        .await
    }

    type ExportUsersStream = find::UserStream;

    async fn export_users(
        &self,
        request: Request<pb::ExportUsersRequest>,
    ) -> Result<Response<Self::ExportUsersStream>, Status> {
        let deadline = super::deadline::caller_deadline(&request);
        let response = rpc(
            &self.metrics,
            self.default_timeout,
            "ExportUsers",
            request,
            |message| self.export_users_inner(message, deadline),
        )
        .await?;
        Ok(with_watch_from(response))
    }

    type WatchUsersStream = watch::EventStream;

    async fn watch_users(
        &self,
        request: Request<pb::WatchUsersRequest>,
    ) -> Result<Response<Self::WatchUsersStream>, Status> {
        let deadline = super::deadline::caller_deadline(&request);
        let response = rpc(
            &self.metrics,
            self.default_timeout,
            "WatchUsers",
            request,
            |message| self.watch_users_inner(message, deadline),
        )
        .await?;
        Ok(with_watch_from(response))
    }
}

/// A stream's response, with the sequence it starts after in the
/// [`WATCH_FROM`](find::WATCH_FROM) header.
fn with_watch_from<S>(response: Response<(S, i64)>) -> Response<S> {
    let (mut metadata, (stream, watch_from), extensions) = response.into_parts();
    metadata.insert(find::WATCH_FROM, watch_from.into());
    Response::from_parts(metadata, stream, extensions)
}
