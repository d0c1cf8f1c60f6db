//! SQLite: rusqlite on the same bundled SQLite as users-server's, with its
//! PRAGMAs. Eight connections read, one writes (SQLite takes one writer at a
//! time); each statement runs on tokio's blocking threads, prepared once per
//! connection (rusqlite's statement cache), each its own transaction.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ceiling::pb::User;
use chrono::NaiveDateTime;
use rusqlite::{Connection, Row};
use tonic::Status;

use super::{db_err, naive_timestamp, Store, POOL_SIZE};

/// users-server's own (server/src/db/sqlite.rs).
const PRAGMAS: &str = "PRAGMA busy_timeout = 5000;
     PRAGMA journal_mode = WAL;
     PRAGMA synchronous = NORMAL;
     PRAGMA mmap_size = 268435456;
     PRAGMA foreign_keys = ON;";

const FIND: &str = "SELECT id, name, create_time, update_time, revision FROM users \
                    WHERE name = ?1 AND id > ?2 ORDER BY id LIMIT ?3";
const GET: &str = "SELECT id, name, create_time, update_time, revision FROM users WHERE id = ?1";
const CREATE: &str = "INSERT INTO users (name, create_time, update_time) VALUES (?1, ?2, ?2) \
                      RETURNING id, name, create_time, update_time, revision";

/// How diesel writes a time into SQLite's TEXT columns (UTC).
const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.6f";

struct Connections {
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    writer: Mutex<Connection>,
}

pub struct Sqlite(Arc<Connections>);

impl Sqlite {
    pub fn open(path: &str) -> Result<Self, Box<dyn std::error::Error>> {
        let open = |statements: &[&str]| -> Result<Mutex<Connection>, Box<dyn std::error::Error>> {
            let conn =
                Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)?;
            conn.execute_batch(PRAGMAS)?;
            for sql in statements {
                conn.prepare_cached(sql)?;
            }
            Ok(Mutex::new(conn))
        };
        let readers = (0..POOL_SIZE)
            .map(|_| open(&[FIND, GET]))
            .collect::<Result<_, _>>()?;
        let writer = open(&[CREATE])?;
        Ok(Sqlite(Arc::new(Connections {
            readers,
            next_reader: AtomicUsize::new(0),
            writer,
        })))
    }

    /// Runs `work` on a reading connection, on a blocking thread.
    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, Status> {
        let connections = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let i =
                connections.next_reader.fetch_add(1, Ordering::Relaxed) % connections.readers.len();
            let conn = connections.readers[i]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            work(&conn)
        })
        .await
        .map_err(db_err)?
        .map_err(db_err)
    }
}

fn user(row: &Row) -> rusqlite::Result<User> {
    let time = |i: usize| -> rusqlite::Result<_> {
        let text: String = row.get(i)?;
        let time = NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S%.f").map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
        })?;
        Ok(Some(naive_timestamp(time)))
    };
    Ok(User {
        id: row.get(0)?,
        name: row.get(1)?,
        create_time: time(2)?,
        update_time: time(3)?,
        etag: row.get::<_, i64>(4)?.to_string(),
    })
}

impl Store for Sqlite {
    async fn find(&self, name: String, after: i64, limit: i64) -> Result<Vec<User>, Status> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(FIND)?;
            let rows = stmt.query_map(rusqlite::params![name, after, limit], user)?;
            rows.collect()
        })
        .await
    }

    async fn get(&self, id: i64) -> Result<Option<User>, Status> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(GET)?;
            let mut rows = stmt.query_map([id], user)?;
            rows.next().transpose()
        })
        .await
    }

    async fn create(&self, name: String) -> Result<User, Status> {
        let connections = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let conn = connections.writer.lock().unwrap_or_else(|e| e.into_inner());
            let now = chrono::Utc::now()
                .naive_utc()
                .format(TIME_FORMAT)
                .to_string();
            let mut stmt = conn.prepare_cached(CREATE)?;
            stmt.query_row(rusqlite::params![name, now], user)
        })
        .await
        .map_err(db_err)?
        .map_err(db_err)
    }
}
