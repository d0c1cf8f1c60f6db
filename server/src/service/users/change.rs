//! GetUser, UpdateUser, DeleteUser: one user, by id, with optimistic
//! concurrency on its etag.

use users_client::pb;

use super::UsersService;
use crate::domain::{Etag, Invalid, UpdateMask, UserId, UserName};
use crate::error::ApiError;
use crate::models::{User, Written, now};
use crate::service::request_id;

impl UsersService {
    pub(super) async fn get_user_inner(
        &self,
        request: pb::GetUserRequest,
    ) -> Result<pb::GetUserResponse, ApiError> {
        let id = UserId::parse("id", request.id)?;
        let user = self
            .db
            .read_statement(async |mut tx| User::get(&mut tx, id).await)
            .await?
            .ok_or(ApiError::UserNotFound { id: id.get() })?;
        Ok(pb::GetUserResponse {
            user: Some(user.into()),
        })
    }

    pub(super) async fn update_user_inner(
        &self,
        request: pb::UpdateUserRequest,
    ) -> Result<pb::UpdateUserResponse, ApiError> {
        let user = request
            .user
            .ok_or_else(|| Invalid::new("user", "INVALID_USER", "is required"))?;
        let id = UserId::parse("user.id", user.id)?;
        let expected = Etag::parse("user.etag", &user.etag)?;
        let paths = request.update_mask.iter().flat_map(|mask| &mask.paths);
        let mask = UpdateMask::parse("update_mask", paths.map(String::as_str))?;
        // `name` is the only field that can change, and every valid mask
        // names it.
        debug_assert!(mask.name);
        let name = UserName::parse("user.name", user.name)?;

        let call = request_id::current();
        let written = self
            .db
            // The time is taken in the unit: a run after a conflict is later.
            .write(async move |mut tx| {
                User::rename(&mut tx, id, expected, &name, now(), &call).await
            })
            .await?;
        match written {
            Written::Done(user) => {
                self.events.committed();
                Ok(pb::UpdateUserResponse {
                    user: Some(user.into()),
                })
            }
            Written::Missing => Err(ApiError::UserNotFound { id: id.get() }),
            Written::Stale => Err(ApiError::EtagMismatch { id: id.get() }),
        }
    }

    pub(super) async fn delete_user_inner(
        &self,
        request: pb::DeleteUserRequest,
    ) -> Result<pb::DeleteUserResponse, ApiError> {
        let id = UserId::parse("id", request.id)?;
        let expected = Etag::parse("etag", &request.etag)?;
        let call = request_id::current();
        let written = self
            .db
            .write(async move |mut tx| User::delete(&mut tx, id, expected, now(), &call).await)
            .await?;
        match written {
            Written::Done(()) => {
                self.events.committed();
                Ok(pb::DeleteUserResponse {})
            }
            Written::Missing => Err(ApiError::UserNotFound { id: id.get() }),
            Written::Stale => Err(ApiError::EtagMismatch { id: id.get() }),
        }
    }
}
