//! `users.v1.UserService`: each RPC's handler, by what it does.
//!
//! - [`create`]: CreateUser, BatchCreateUsers, request ids;
//! - [`find`]: FindUsers, ExportUsers;
//! - [`change`]: GetUser, UpdateUser, DeleteUser;
//! - [`wire`]: stored users as wire users.

mod change;
mod create;
mod find;
mod wire;

use std::time::Duration;

use tonic::{Request, Response, Status};
use users_client::pb::{self, user_service_server::UserService};

use super::rpc;
use crate::db::Database;
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
}

impl UsersService {
    /// Serves users stored in `db`, remembering request ids for
    /// `request_id_ttl`.
    pub fn new(db: Database, request_id_ttl: Duration) -> Self {
        Self {
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
        rpc(
            &self.metrics,
            self.default_timeout,
            "ExportUsers",
            request,
            |message| std::future::ready(self.export_users_inner(message, deadline)),
        )
        .await
    }
}
