//! Best-case DB-backed design: each RPC is ONE prepared statement (one round trip,
//! autocommit, no BEGIN/COMMIT) on PostgreSQL via tokio-postgres + deadpool (8 connections).
//!
//! Two schemas (`DIRECT_SCHEMA`, or argv[3]):
//! - `peer` (default): the Python peer's `peer_users (id, name)`; replies carry id and name.
//! - `users`: the users service's own `users` table (migrated by users-server), so both
//!   servers can run on one database; replies carry what the service's do (id, name,
//!   create_time, update_time, etag = the revision in decimal). No change event is written.
//! - `users-events`: `users`, and each create also inserts its change event into
//!   `user_events` in the same statement, as users-server does: what the outbox costs.
use std::time::SystemTime;

use ceiling::pb::*;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::Row;
use tonic::{Request, Response, Status};

const POOL_SIZE: usize = 8;

/// The three statements of one schema, and how a row becomes a `User`.
#[derive(Clone, Copy)]
struct Schema {
    find: &'static str,
    get: &'static str,
    create: &'static str,
    full: bool,
}

const PEER: Schema = Schema {
    find: "SELECT id, name FROM peer_users WHERE name = $1 AND id > $2 ORDER BY id LIMIT $3",
    get: "SELECT id, name FROM peer_users WHERE id = $1",
    create: "INSERT INTO peer_users (name) VALUES ($1) RETURNING id, name",
    full: false,
};

const USERS: Schema = Schema {
    find: "SELECT id, name, create_time, update_time, revision FROM users \
           WHERE name = $1 AND id > $2 ORDER BY id LIMIT $3",
    get: "SELECT id, name, create_time, update_time, revision FROM users WHERE id = $1",
    create: "INSERT INTO users (name, create_time, update_time) VALUES ($1, $2, $2) \
             RETURNING id, name, create_time, update_time, revision",
    full: true,
};

/// `users`, and each create also writes its change event as users-server's
/// does: in the same statement, a data-modifying `WITH`.
const USERS_WITH_EVENTS: Schema = Schema {
    create: "WITH new_user AS (INSERT INTO users (name, create_time, update_time) \
             VALUES ($1, $2, $2) RETURNING id, name, create_time, update_time, revision), \
             created AS (INSERT INTO user_events \
             (kind, user_id, name, create_time, update_time, revision, event_time, request_id) \
             SELECT 1, id, name, create_time, update_time, revision, create_time, '' FROM new_user) \
             SELECT id, name, create_time, update_time, revision FROM new_user",
    ..USERS
};

struct Direct {
    pool: Pool,
    schema: Schema,
}

fn db_err<E: std::fmt::Display>(e: E) -> Status {
    Status::unavailable(format!("database: {e}"))
}

fn timestamp(time: SystemTime) -> prost_types::Timestamp {
    let since = time.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp { seconds: since.as_secs() as i64, nanos: since.subsec_nanos() as i32 }
}

impl Direct {
    async fn conn(&self) -> Result<Object, Status> {
        self.pool.get().await.map_err(db_err)
    }

    fn user(&self, row: &Row) -> User {
        if !self.schema.full {
            return User { id: row.get(0), name: row.get(1), ..Default::default() };
        }
        User {
            id: row.get(0),
            name: row.get(1),
            create_time: Some(timestamp(row.get(2))),
            update_time: Some(timestamp(row.get(3))),
            etag: row.get::<_, i64>(4).to_string(),
        }
    }
}

#[tonic::async_trait]
impl ceiling::UserService for Direct {
    async fn create_user(&self, r: Request<CreateUserRequest>) -> Result<Response<CreateUserResponse>, Status> {
        let req = r.into_inner();
        if req.name.is_empty() {
            return Err(Status::invalid_argument("name is required"));
        }
        let c = self.conn().await?;
        let stmt = c.prepare_cached(self.schema.create).await.map_err(db_err)?;
        let row = if self.schema.full {
            c.query_one(&stmt, &[&req.name, &SystemTime::now()]).await
        } else {
            c.query_one(&stmt, &[&req.name]).await
        }
        .map_err(db_err)?;
        Ok(Response::new(CreateUserResponse { user: Some(self.user(&row)) }))
    }

    async fn find_users(&self, r: Request<FindUsersRequest>) -> Result<Response<FindUsersResponse>, Status> {
        let req = r.into_inner();
        if !req.name_prefix.is_empty() {
            return Err(Status::unimplemented("name_prefix is not served by the ceiling server"));
        }
        let size = if req.page_size > 0 { req.page_size.min(1000) as i64 } else { 50 };
        let after: i64 = if req.page_token.is_empty() {
            0
        } else {
            req.page_token.parse().map_err(|_| Status::invalid_argument("bad page_token"))?
        };
        let c = self.conn().await?;
        let stmt = c.prepare_cached(self.schema.find).await.map_err(db_err)?;
        let rows = c.query(&stmt, &[&req.name, &after, &(size + 1)]).await.map_err(db_err)?;
        let mut users: Vec<User> = rows.iter().map(|row| self.user(row)).collect();
        let mut next_page_token = String::new();
        if users.len() as i64 > size {
            users.truncate(size as usize);
            next_page_token = users.last().map(|u| u.id.to_string()).unwrap_or_default();
        }
        Ok(Response::new(FindUsersResponse { users, next_page_token }))
    }

    async fn get_user(&self, r: Request<GetUserRequest>) -> Result<Response<GetUserResponse>, Status> {
        let id = r.into_inner().id;
        let c = self.conn().await?;
        let stmt = c.prepare_cached(self.schema.get).await.map_err(db_err)?;
        let row = c.query_opt(&stmt, &[&id]).await.map_err(db_err)?;
        match row {
            Some(row) => Ok(Response::new(GetUserResponse { user: Some(self.user(&row)) })),
            None => Err(Status::not_found(format!("no user {id}"))),
        }
    }
    async fn update_user(&self, _r: Request<UpdateUserRequest>) -> Result<Response<UpdateUserResponse>, Status> {
        Err(Status::unimplemented("UpdateUser"))
    }
    async fn delete_user(&self, _r: Request<DeleteUserRequest>) -> Result<Response<DeleteUserResponse>, Status> {
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
    let schema = match std::env::args().nth(3).or_else(|| std::env::var("DIRECT_SCHEMA").ok()).as_deref() {
        None | Some("peer") => PEER,
        Some("users") => USERS,
        Some("users-events") => USERS_WITH_EVENTS,
        Some(other) => {
            return Err(format!("DIRECT_SCHEMA: `peer`, `users` or `users-events`, not {other:?}").into())
        }
    };
    let pg: tokio_postgres::Config = url.parse()?;
    let mgr = Manager::from_config(pg, tokio_postgres::NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    let pool = Pool::builder(mgr).max_size(POOL_SIZE).build()?;
    // Open all connections and prepare the statements up front, so the first round is not a warm-up.
    let mut held = Vec::with_capacity(POOL_SIZE);
    for _ in 0..POOL_SIZE {
        let c = pool.get().await?;
        for sql in [schema.find, schema.get, schema.create] {
            c.prepare_cached(sql).await?;
        }
        held.push(c);
    }
    drop(held);
    ceiling::serve(Direct { pool, schema }, addr).await?;
    Ok(())
}
