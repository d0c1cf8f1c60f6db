//! Best-case DB-backed design: each RPC is ONE prepared statement (one round trip,
//! autocommit, no BEGIN/COMMIT, no ORM) on the database the URL names:
//!
//! - `postgres://...`: tokio-postgres + deadpool (8 connections), [`postgres`];
//! - `mysql://...` (MySQL or MariaDB): mysql_async's pool (8 connections), [`mysql`];
//! - `sqlite://PATH`: rusqlite, the same bundled SQLite as users-server's, 8 reading
//!   connections and one writing, each statement on a blocking thread, [`sqlite`].
//!
//! On MySQL and SQLite the database is the users service's own (migrated by
//! users-server), with replies as full as the service's; on MySQL,
//! `DIRECT_SCHEMA` (or argv[3]) `users-events` makes each create also insert
//! its change event, in one transaction with the user, and `users-trigger`
//! makes it one INSERT into a copy of `users` whose trigger writes the event
//! (see [`mysql`]). On PostgreSQL the
//! schema is chosen (`DIRECT_SCHEMA`, or argv[3]):
//! - `peer` (default): the Python peer's `peer_users (id, name)`; replies carry id and name.
//! - `users`: the users service's own `users` table, so both servers can run on one
//!   database; replies carry what the service's do (id, name, create_time,
//!   update_time, etag = the revision in decimal). No change event is written.
//! - `users-events`: `users`, and each create also inserts its change event into
//!   `user_events` in the same statement, as users-server does: what the outbox costs.
mod mysql;
mod postgres;
mod sqlite;

use std::future::Future;
use std::time::SystemTime;

use ceiling::pb::*;
use tonic::{Request, Response, Status};

/// Connections each store opens (SQLite: readers; it writes on one more).
const POOL_SIZE: usize = 8;

/// One database's three statements, each returning full users.
trait Store: Send + Sync + 'static {
    /// Up to `limit` users named `name` with ids above `after`, by id.
    fn find(
        &self,
        name: String,
        after: i64,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<User>, Status>> + Send;
    fn get(&self, id: i64) -> impl Future<Output = Result<Option<User>, Status>> + Send;
    fn create(&self, name: String) -> impl Future<Output = Result<User, Status>> + Send;
}

fn db_err<E: std::fmt::Display>(e: E) -> Status {
    Status::unavailable(format!("database: {e}"))
}

fn timestamp(time: SystemTime) -> prost_types::Timestamp {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    prost_types::Timestamp {
        seconds: since.as_secs() as i64,
        nanos: since.subsec_nanos() as i32,
    }
}

fn naive_timestamp(time: chrono::NaiveDateTime) -> prost_types::Timestamp {
    let utc = time.and_utc();
    prost_types::Timestamp {
        seconds: utc.timestamp(),
        nanos: utc.timestamp_subsec_nanos() as i32,
    }
}

struct Direct<S>(S);

#[tonic::async_trait]
impl<S: Store> ceiling::UserService for Direct<S> {
    async fn create_user(
        &self,
        r: Request<CreateUserRequest>,
    ) -> Result<Response<CreateUserResponse>, Status> {
        let req = r.into_inner();
        if req.name.is_empty() {
            return Err(Status::invalid_argument("name is required"));
        }
        let user = self.0.create(req.name).await?;
        Ok(Response::new(CreateUserResponse { user: Some(user) }))
    }

    async fn find_users(
        &self,
        r: Request<FindUsersRequest>,
    ) -> Result<Response<FindUsersResponse>, Status> {
        let req = r.into_inner();
        if !req.name_prefix.is_empty() {
            return Err(Status::unimplemented(
                "name_prefix is not served by the ceiling server",
            ));
        }
        let size = if req.page_size > 0 {
            req.page_size.min(1000) as i64
        } else {
            50
        };
        let after: i64 = if req.page_token.is_empty() {
            0
        } else {
            req.page_token
                .parse()
                .map_err(|_| Status::invalid_argument("bad page_token"))?
        };
        let mut users = self.0.find(req.name, after, size + 1).await?;
        let mut next_page_token = String::new();
        if users.len() as i64 > size {
            users.truncate(size as usize);
            next_page_token = users.last().map(|u| u.id.to_string()).unwrap_or_default();
        }
        Ok(Response::new(FindUsersResponse {
            users,
            next_page_token,
        }))
    }

    async fn get_user(
        &self,
        r: Request<GetUserRequest>,
    ) -> Result<Response<GetUserResponse>, Status> {
        let id = r.into_inner().id;
        match self.0.get(id).await? {
            Some(user) => Ok(Response::new(GetUserResponse { user: Some(user) })),
            None => Err(Status::not_found(format!("no user {id}"))),
        }
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
    let addr = ceiling::listen_addr("127.0.0.1:50072");
    let url = std::env::args()
        .nth(2)
        .or_else(|| std::env::var("DATABASE_URL").ok())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/ceiling".to_string());
    let schema = std::env::args()
        .nth(3)
        .or_else(|| std::env::var("DIRECT_SCHEMA").ok());
    if url.starts_with("mysql://") {
        ceiling::serve(
            Direct(mysql::Mysql::open(&url, schema.as_deref()).await?),
            addr,
        )
        .await?;
    } else if let Some(path) = url.strip_prefix("sqlite://") {
        ceiling::serve(Direct(sqlite::Sqlite::open(path)?), addr).await?;
    } else {
        ceiling::serve(
            Direct(postgres::Postgres::open(&url, schema.as_deref()).await?),
            addr,
        )
        .await?;
    }
    Ok(())
}
