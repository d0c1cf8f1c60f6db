//! `users.v1.UserService`.

use chrono::NaiveDateTime;
use tonic::{Request, Response, Status};
use users_client::pb::{self, user_service_server::UserService};

use super::rpc;
use crate::db::Database;
use crate::domain::{NamePrefix, PageSize, PageToken, UserFilter, UserName};
use crate::error::ApiError;
use crate::models::{NewUser, User};

/// Serves `users.v1.UserService` from a [`Database`].
#[derive(Debug, Clone)]
pub struct UsersService {
    db: Database,
}

impl UsersService {
    /// Serves users stored in `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    async fn create_user_inner(
        &self,
        request: pb::CreateUserRequest,
    ) -> Result<pb::CreateUserResponse, ApiError> {
        let name = UserName::parse("name", request.name)?;
        let new_user = NewUser::new(name);
        let user = self
            .db
            .write_statement(async move |mut tx| new_user.insert(&mut tx).await)
            .await?;
        Ok(pb::CreateUserResponse {
            user: Some(user.into()),
        })
    }

    async fn find_users_inner(
        &self,
        request: pb::FindUsersRequest,
    ) -> Result<pb::FindUsersResponse, ApiError> {
        let filter = UserFilter {
            name: match request.name {
                name if name.is_empty() => None,
                name => Some(UserName::parse("name", name)?),
            },
            name_prefix: NamePrefix::parse("name_prefix", request.name_prefix)?,
        };
        let page_size = PageSize::parse(request.page_size)?;
        // Ids start at 1, so the first page starts after 0.
        let after_id =
            PageToken::parse(&request.page_token, &filter)?.map_or(0, PageToken::after_id);

        // One row more than the page tells whether another page follows.
        let limit = i64::try_from(page_size.get() + 1).unwrap_or(i64::MAX);
        let mut users = self
            .db
            .read_statement(async |mut tx| {
                User::find(&mut tx, &filter.name_match(), after_id, limit).await
            })
            .await?;

        let next_page_token = if users.len() > page_size.get() {
            users.truncate(page_size.get());
            users
                .last()
                .map(|last| PageToken::after(last.id).encode(&filter))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(pb::FindUsersResponse {
            users: users.into_iter().map(Into::into).collect(),
            next_page_token,
        })
    }
}

#[tonic::async_trait]
impl UserService for UsersService {
    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
        rpc("CreateUser", self.create_user_inner(request.into_inner())).await
    }

    async fn find_users(
        &self,
        request: Request<pb::FindUsersRequest>,
    ) -> Result<Response<pb::FindUsersResponse>, Status> {
        rpc("FindUsers", self.find_users_inner(request.into_inner())).await
    }
}

impl From<User> for pb::User {
    fn from(user: User) -> Self {
        Self {
            id: user.id,
            name: user.name,
            create_time: Some(timestamp(user.create_time)),
            update_time: Some(timestamp(user.update_time)),
        }
    }
}

fn timestamp(utc: NaiveDateTime) -> prost_types::Timestamp {
    let utc = utc.and_utc();
    prost_types::Timestamp {
        seconds: utc.timestamp(),
        // Below 1e9 by construction, so it fits.
        nanos: i32::try_from(utc.timestamp_subsec_nanos()).unwrap_or(0),
    }
}
