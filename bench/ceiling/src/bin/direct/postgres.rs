//! PostgreSQL: tokio-postgres + deadpool, statements prepared at start.
use std::time::SystemTime;

use ceiling::pb::User;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::Row;
use tonic::Status;

use super::{db_err, timestamp, Store, POOL_SIZE};

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

pub struct Postgres {
    pool: Pool,
    schema: Schema,
}

impl Postgres {
    /// Opens all connections and prepares the statements up front, so the
    /// first round is not a warm-up.
    pub async fn open(url: &str, schema: Option<&str>) -> Result<Self, Box<dyn std::error::Error>> {
        let schema = match schema {
            None | Some("peer") => PEER,
            Some("users") => USERS,
            Some("users-events") => USERS_WITH_EVENTS,
            Some(other) => {
                return Err(format!(
                    "DIRECT_SCHEMA: `peer`, `users` or `users-events`, not {other:?}"
                )
                .into())
            }
        };
        let pg: tokio_postgres::Config = url.parse()?;
        let mgr = Manager::from_config(
            pg,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr).max_size(POOL_SIZE).build()?;
        let mut held = Vec::with_capacity(POOL_SIZE);
        for _ in 0..POOL_SIZE {
            let c = pool.get().await?;
            for sql in [schema.find, schema.get, schema.create] {
                c.prepare_cached(sql).await?;
            }
            held.push(c);
        }
        drop(held);
        Ok(Postgres { pool, schema })
    }

    async fn conn(&self) -> Result<Object, Status> {
        self.pool.get().await.map_err(db_err)
    }

    fn user(&self, row: &Row) -> User {
        if !self.schema.full {
            return User {
                id: row.get(0),
                name: row.get(1),
                ..Default::default()
            };
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

impl Store for Postgres {
    async fn find(&self, name: String, after: i64, limit: i64) -> Result<Vec<User>, Status> {
        let c = self.conn().await?;
        let stmt = c.prepare_cached(self.schema.find).await.map_err(db_err)?;
        let rows = c
            .query(&stmt, &[&name, &after, &limit])
            .await
            .map_err(db_err)?;
        Ok(rows.iter().map(|row| self.user(row)).collect())
    }

    async fn get(&self, id: i64) -> Result<Option<User>, Status> {
        let c = self.conn().await?;
        let stmt = c.prepare_cached(self.schema.get).await.map_err(db_err)?;
        let row = c.query_opt(&stmt, &[&id]).await.map_err(db_err)?;
        Ok(row.map(|row| self.user(&row)))
    }

    async fn create(&self, name: String) -> Result<User, Status> {
        let c = self.conn().await?;
        let stmt = c.prepare_cached(self.schema.create).await.map_err(db_err)?;
        let row = if self.schema.full {
            c.query_one(&stmt, &[&name, &SystemTime::now()]).await
        } else {
            c.query_one(&stmt, &[&name]).await
        }
        .map_err(db_err)?;
        Ok(self.user(&row))
    }
}
