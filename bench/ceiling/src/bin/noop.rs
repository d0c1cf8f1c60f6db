//! gRPC framework ceiling: users.v1.UserService with canned responses, no database
//! (CreateUser: one fixed User; GetUser: it, with the id asked for; FindUsers: 10 fixed
//! users), each with the fields the users service's replies carry (times and etag).
use ceiling::pb::*;
use tonic::{Request, Response, Status};

struct Noop {
    one: User,
    ten: Vec<User>,
}

/// A user as the service's replies carry it: id, name, both times, etag.
fn user(id: i64, name: &str) -> User {
    let time = prost_types::Timestamp {
        seconds: 1_796_000_000,
        nanos: 123_456_000,
    };
    User {
        id,
        name: name.to_string(),
        create_time: Some(time),
        update_time: Some(time),
        etag: "1".to_string(),
    }
}

#[tonic::async_trait]
impl ceiling::UserService for Noop {
    async fn create_user(
        &self,
        _r: Request<CreateUserRequest>,
    ) -> Result<Response<CreateUserResponse>, Status> {
        Ok(Response::new(CreateUserResponse {
            user: Some(self.one.clone()),
        }))
    }
    async fn find_users(
        &self,
        _r: Request<FindUsersRequest>,
    ) -> Result<Response<FindUsersResponse>, Status> {
        Ok(Response::new(FindUsersResponse {
            users: self.ten.clone(),
            next_page_token: String::new(),
        }))
    }
    async fn get_user(
        &self,
        r: Request<GetUserRequest>,
    ) -> Result<Response<GetUserResponse>, Status> {
        // The id asked for, so that a client checking replies accepts it.
        let user = User {
            id: r.into_inner().id,
            ..self.one.clone()
        };
        Ok(Response::new(GetUserResponse { user: Some(user) }))
    }
    async fn update_user(
        &self,
        _r: Request<UpdateUserRequest>,
    ) -> Result<Response<UpdateUserResponse>, Status> {
        Err(Status::unimplemented("UpdateUser"))
    }
    async fn delete_user(
        &self,
        _r: Request<DeleteUserRequest>,
    ) -> Result<Response<DeleteUserResponse>, Status> {
        Err(Status::unimplemented("DeleteUser"))
    }
    async fn batch_create_users(
        &self,
        _r: Request<BatchCreateUsersRequest>,
    ) -> Result<Response<BatchCreateUsersResponse>, Status> {
        Err(Status::unimplemented("BatchCreateUsers"))
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = ceiling::listen_addr("127.0.0.1:50071");
    let svc = Noop {
        one: user(100_011, "bench-user"),
        ten: (1..=10).map(|i| user(100_000 + i, "needle")).collect(),
    };
    ceiling::serve(svc, addr).await?;
    Ok(())
}
