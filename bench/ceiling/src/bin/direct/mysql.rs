//! MySQL and MariaDB: mysql_async's pool, statements prepared once per
//! connection (its statement cache). A create is one `INSERT ... RETURNING`
//! (MariaDB 10.5 and later; MySQL has no RETURNING, so there it fails).
//! With the `users-events` schema, a create also inserts its change event
//! into `user_events`, in one transaction with the user (BEGIN, the two
//! INSERTs, COMMIT): the least an outbox costs here, where no statement
//! writes two tables.
//!
//! With the `users-trigger` schema, a create is one autocommitted `INSERT
//! ... RETURNING` into a copy of `users` whose `AFTER INSERT` trigger writes
//! the change event into a copy of `user_events`: the most a trigger could
//! give an outbox on MariaDB (one round trip; the event's request id is
//! left empty, which a real design would have to hand the trigger). The
//! copies (`trigger_users`, seeded with `users`' rows, and
//! `trigger_user_events`) keep the trigger away from the tables the other
//! servers of the same run write.
use ceiling::pb::User;
use chrono::NaiveDateTime;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, TxOpts};
use tonic::Status;

use super::{db_err, naive_timestamp, Store, POOL_SIZE};

const FIND: &str = "SELECT id, name, create_time, update_time, revision FROM users \
                    WHERE name = ? AND id > ? ORDER BY id LIMIT ?";
const GET: &str = "SELECT id, name, create_time, update_time, revision FROM users WHERE id = ?";
const CREATE: &str = "INSERT INTO users (name, create_time, update_time) VALUES (?, ?, ?) \
                      RETURNING id, name, create_time, update_time, revision";
const TRIGGER_CREATE: &str =
    "INSERT INTO trigger_users (name, create_time, update_time) VALUES (?, ?, ?) \
                              RETURNING id, name, create_time, update_time, revision";
/// Creates the copies and the trigger; idempotent, so a restart reuses them.
const TRIGGER_SCHEMA: [&str; 3] = [
    "CREATE TABLE IF NOT EXISTS trigger_users LIKE users",
    "CREATE TABLE IF NOT EXISTS trigger_user_events LIKE user_events",
    "CREATE OR REPLACE TRIGGER trigger_users_created AFTER INSERT ON trigger_users FOR EACH ROW \
     INSERT INTO trigger_user_events \
     (kind, user_id, name, create_time, update_time, revision, event_time, request_id) \
     VALUES (1, NEW.id, NEW.name, NEW.create_time, NEW.update_time, NEW.revision, NEW.update_time, '')",
];
const TRIGGER_SEED: &str = "INSERT INTO trigger_users SELECT * FROM users \
                            WHERE NOT EXISTS (SELECT 1 FROM trigger_users)";
const CREATED_EVENT: &str = "INSERT INTO user_events \
                             (kind, user_id, name, create_time, update_time, revision, event_time, request_id) \
                             VALUES (1, ?, ?, ?, ?, ?, ?, '')";

pub struct Mysql {
    pool: Pool,
    creates: Creates,
}

/// What a create writes, by `DIRECT_SCHEMA`.
#[derive(Clone, Copy, PartialEq)]
enum Creates {
    /// `users`: the user, one autocommitted statement.
    User,
    /// `users-events`: the user and its event, two INSERTs in a transaction.
    UserAndEvent,
    /// `users-trigger`: the user into `trigger_users`, whose trigger writes
    /// the event; one autocommitted statement.
    UserWithTrigger,
}

impl Mysql {
    /// Opens all connections and prepares the statements up front.
    pub async fn open(url: &str, schema: Option<&str>) -> Result<Self, Box<dyn std::error::Error>> {
        let creates = match schema {
            None | Some("users") => Creates::User,
            Some("users-events") => Creates::UserAndEvent,
            Some("users-trigger") => Creates::UserWithTrigger,
            Some(other) => {
                return Err(format!(
                    "DIRECT_SCHEMA: `users`, `users-events` or `users-trigger`, not {other:?}"
                )
                .into())
            }
        };
        let constraints = PoolConstraints::new(POOL_SIZE, POOL_SIZE).ok_or("pool constraints")?;
        let opts = OptsBuilder::from_opts(Opts::from_url(url)?)
            // No COM_RESET_CONNECTION when a connection goes back to the
            // pool (mysql_async's default): it drops the connection's
            // prepared statements, so every call would prepare its
            // statement again (twice the database's CPU per read).
            .pool_opts(
                PoolOpts::default()
                    .with_constraints(constraints)
                    .with_reset_connection(false),
            )
            .prefer_socket(false);
        let pool = Pool::new(opts);
        if creates == Creates::UserWithTrigger {
            let mut c = pool.get_conn().await?;
            for sql in TRIGGER_SCHEMA.into_iter().chain([TRIGGER_SEED]) {
                c.query_drop(sql).await?;
            }
        }
        let mut held = Vec::with_capacity(POOL_SIZE);
        for _ in 0..POOL_SIZE {
            let mut c = pool.get_conn().await?;
            for sql in [FIND, GET, CREATE, CREATED_EVENT] {
                c.prep(sql).await?;
            }
            if creates == Creates::UserWithTrigger {
                c.prep(TRIGGER_CREATE).await?;
            }
            held.push(c);
        }
        drop(held);
        Ok(Mysql { pool, creates })
    }

    async fn conn(&self) -> Result<Conn, Status> {
        self.pool.get_conn().await.map_err(db_err)
    }
}

type UserRow = (i64, String, NaiveDateTime, NaiveDateTime, i64);

fn user((id, name, create_time, update_time, revision): UserRow) -> User {
    User {
        id,
        name,
        create_time: Some(naive_timestamp(create_time)),
        update_time: Some(naive_timestamp(update_time)),
        etag: revision.to_string(),
    }
}

impl Store for Mysql {
    async fn find(&self, name: String, after: i64, limit: i64) -> Result<Vec<User>, Status> {
        let mut c = self.conn().await?;
        let rows: Vec<UserRow> = c.exec(FIND, (name, after, limit)).await.map_err(db_err)?;
        Ok(rows.into_iter().map(user).collect())
    }

    async fn get(&self, id: i64) -> Result<Option<User>, Status> {
        let mut c = self.conn().await?;
        let row: Option<UserRow> = c.exec_first(GET, (id,)).await.map_err(db_err)?;
        Ok(row.map(user))
    }

    async fn create(&self, name: String) -> Result<User, Status> {
        let mut c = self.conn().await?;
        let now = chrono::Utc::now().naive_utc();
        let autocommitted = match self.creates {
            Creates::User => CREATE,
            Creates::UserWithTrigger => TRIGGER_CREATE,
            Creates::UserAndEvent => return create_with_event(&mut c, name, now).await,
        };
        let row: Option<UserRow> = c
            .exec_first(autocommitted, (name, now, now))
            .await
            .map_err(db_err)?;
        row.map(user)
            .ok_or_else(|| Status::internal("INSERT ... RETURNING returned no row"))
    }
}

/// The user and its event in one transaction: BEGIN, two INSERTs, COMMIT.
async fn create_with_event(c: &mut Conn, name: String, now: NaiveDateTime) -> Result<User, Status> {
    let mut tx = c
        .start_transaction(TxOpts::default())
        .await
        .map_err(db_err)?;
    let row: Option<UserRow> = tx
        .exec_first(CREATE, (name, now, now))
        .await
        .map_err(db_err)?;
    let row = row.ok_or_else(|| Status::internal("INSERT ... RETURNING returned no row"))?;
    let (id, name, create_time, update_time, revision) = &row;
    tx.exec_drop(
        CREATED_EVENT,
        (id, name, create_time, update_time, revision, now),
    )
    .await
    .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    Ok(user(row))
}
