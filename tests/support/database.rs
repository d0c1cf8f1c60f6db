//! A database of its own for every test: a SQLite file in a temporary
//! directory, or a PostgreSQL or MySQL/MariaDB database with a random name;
//! deleted on drop.

use std::path::PathBuf;

use diesel::SqliteConnection;
use diesel_async::{
    AsyncConnection, AsyncMysqlConnection, AsyncPgConnection, SimpleAsyncConnection,
    sync_connection_wrapper::SyncConnectionWrapper,
};
use futures_util::FutureExt;
use rand::Rng;

/// Where the PostgreSQL tests create their databases: a URL of a role that may
/// create databases. Defaults to [`DEFAULT_POSTGRES_URL`].
pub const POSTGRES_URL_VAR: &str = "USERS_TEST_POSTGRES_URL";
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Where the MySQL tests create their databases: a URL of a user that may
/// create databases. Defaults to [`DEFAULT_MYSQL_URL`].
pub const MYSQL_URL_VAR: &str = "USERS_TEST_MYSQL_URL";
const DEFAULT_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL database on the server named by `USERS_TEST_POSTGRES_URL`.
    Postgres,
    /// A MySQL/MariaDB database on the server named by `USERS_TEST_MYSQL_URL`.
    Mysql,
}

/// A database that exists for one test.
#[derive(Debug)]
pub enum TestDatabase {
    /// The file lives in `dir`, which is deleted on drop.
    Sqlite {
        /// The temporary directory.
        dir: tempfile::TempDir,
        /// The database file inside it.
        file: PathBuf,
    },
    /// A database created on the server of `admin_url`, dropped on drop.
    Postgres {
        /// Where to connect to create and drop databases.
        admin_url: String,
        /// The random name of this test's database.
        name: String,
    },
    /// The same, on MySQL/MariaDB.
    Mysql {
        /// Where to connect to create and drop databases.
        admin_url: String,
        /// The random name of this test's database.
        name: String,
    },
}

impl TestDatabase {
    /// Creates an empty database on `backend`.
    pub async fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("cannot create a temporary directory");
                let file = dir.path().join("users.db");
                Self::Sqlite { dir, file }
            }
            Backend::Postgres => {
                let admin_url = postgres_admin_url();
                let name = format!("users_test_{:016x}", rand::rng().random::<u64>());
                admin(&admin_url)
                    .await
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .await
                    .unwrap_or_else(|error| panic!("cannot create database {name}: {error}"));
                Self::Postgres { admin_url, name }
            }
            Backend::Mysql => {
                let admin_url = mysql_admin_url();
                let name = format!("users_test_{:016x}", rand::rng().random::<u64>());
                mysql_admin(&admin_url)
                    .await
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .await
                    .unwrap_or_else(|error| panic!("cannot create database {name}: {error}"));
                Self::Mysql { admin_url, name }
            }
        }
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite { .. } => Backend::Sqlite,
            Self::Postgres { .. } => Backend::Postgres,
            Self::Mysql { .. } => Backend::Mysql,
        }
    }

    /// The `--database-url` for the server.
    pub fn url(&self) -> String {
        match self {
            Self::Sqlite { file, .. } => format!("sqlite://{}", file.display()),
            Self::Postgres { admin_url, name } | Self::Mysql { admin_url, name } => {
                with_database(admin_url, name)
            }
        }
    }

    /// Cuts the database off while the server runs: closes every connection
    /// to it and drops it, so that new connections fail too.
    pub async fn cut_off(&self) {
        if let Self::Postgres { admin_url, name } = self {
            drop_database(admin_url, name).await;
        } else {
            panic!(
                "cut_off is for PostgreSQL: a SQLite file cannot be taken away from an open connection"
            );
        }
    }
}

impl TestDatabase {
    /// Runs `sql` (statements separated by `;`) on a connection of the
    /// test's own, behind the server's back.
    pub async fn execute(&self, sql: &str) {
        match self {
            Self::Sqlite { file, .. } => {
                let mut conn = SyncConnectionWrapper::<SqliteConnection>::establish(
                    &file.display().to_string(),
                )
                .await
                .unwrap();
                conn.batch_execute(&format!("PRAGMA busy_timeout = 5000; {sql}"))
                    .await
                    .unwrap();
            }
            Self::Postgres { admin_url, name } => {
                let mut conn = AsyncPgConnection::establish(&with_database(admin_url, name))
                    .await
                    .unwrap();
                conn.batch_execute(sql).await.unwrap();
            }
            Self::Mysql { .. } => {
                let mut conn = AsyncMysqlConnection::establish(&self.url()).await.unwrap();
                conn.batch_execute(sql).await.unwrap();
            }
        }
    }

    /// Takes the write lock on the users table from a connection of the
    /// test's own, so the server's writes wait until [`WriteLock::release`].
    pub async fn lock_for_writes(&self) -> WriteLock {
        match self {
            Self::Sqlite { file, .. } => {
                let mut conn = SyncConnectionWrapper::<SqliteConnection>::establish(
                    &file.display().to_string(),
                )
                .await
                .unwrap();
                // Waits its turn if the server is writing right now.
                conn.batch_execute("PRAGMA busy_timeout = 5000; BEGIN IMMEDIATE")
                    .await
                    .unwrap();
                WriteLock::Sqlite(conn)
            }
            Self::Postgres { admin_url, name } => {
                let mut conn = AsyncPgConnection::establish(&with_database(admin_url, name))
                    .await
                    .unwrap();
                // SHARE conflicts with the ROW EXCLUSIVE lock that INSERT takes.
                conn.batch_execute("BEGIN; LOCK TABLE users IN SHARE MODE")
                    .await
                    .unwrap();
                WriteLock::Postgres(Box::new(conn))
            }
            Self::Mysql { .. } => {
                let mut conn = AsyncMysqlConnection::establish(&self.url()).await.unwrap();
                // Other sessions may read the table, not write it.
                conn.batch_execute("LOCK TABLES users READ").await.unwrap();
                WriteLock::Mysql(Box::new(conn))
            }
        }
    }
}

impl TestDatabase {
    /// How many sessions of this database wait for a lock right now (the
    /// server's writes behind a [`WriteLock`]); `None` on SQLite, whose
    /// waiting writers nothing can see.
    pub async fn writes_waiting(&self) -> Option<i64> {
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            count: i64,
        }
        use diesel_async::RunQueryDsl;
        let count = match self {
            Self::Sqlite { .. } => return None,
            Self::Postgres { admin_url, name } => {
                let mut conn = AsyncPgConnection::establish(&with_database(admin_url, name))
                    .await
                    .unwrap();
                diesel::sql_query(
                    "SELECT count(*) AS count FROM pg_stat_activity \
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                )
                .get_result::<Count>(&mut conn)
                .await
                .unwrap()
            }
            Self::Mysql { .. } => {
                let mut conn = AsyncMysqlConnection::establish(&self.url()).await.unwrap();
                diesel::sql_query(
                    "SELECT CAST(count(*) AS SIGNED) AS count FROM information_schema.processlist \
                     WHERE db = DATABASE() AND state LIKE 'Waiting for table%'",
                )
                .get_result::<Count>(&mut conn)
                .await
                .unwrap()
            }
        };
        Some(count.count)
    }

    /// Waits until no session waits for a lock (see
    /// [`writes_waiting`](Self::writes_waiting)), giving up after 30 s, far
    /// beyond the milliseconds a cancelled statement takes to go; returns
    /// how many still wait then (`None` on SQLite, at once).
    pub async fn wait_until_no_writes_wait(&self) -> Option<i64> {
        let started = std::time::Instant::now();
        loop {
            let waiting = self.writes_waiting().await?;
            if waiting == 0 || started.elapsed() > std::time::Duration::from_secs(30) {
                return Some(waiting);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// A transaction that blocks writes to the users table while it is open.
#[allow(missing_debug_implementations)] // the connections have none
pub enum WriteLock {
    /// `BEGIN IMMEDIATE` on the SQLite file.
    Sqlite(SyncConnectionWrapper<SqliteConnection>),
    /// `LOCK TABLE users IN SHARE MODE`.
    Postgres(Box<AsyncPgConnection>),
    /// `LOCK TABLES users READ`.
    Mysql(Box<AsyncMysqlConnection>),
}

impl WriteLock {
    /// Ends the transaction; waiting writes go ahead.
    pub async fn release(self) {
        match self {
            Self::Sqlite(mut conn) => conn.batch_execute("COMMIT").await.unwrap(),
            Self::Postgres(mut conn) => conn.batch_execute("COMMIT").await.unwrap(),
            Self::Mysql(mut conn) => conn.batch_execute("UNLOCK TABLES").await.unwrap(),
        }
    }
}

/// A PostgreSQL transaction a test holds open ([`TestDatabase::begin`]).
#[allow(missing_debug_implementations)] // the connection has none
pub struct OpenTransaction(Box<AsyncPgConnection>);

impl OpenTransaction {
    async fn begin(url: &str, sql: &str) -> Self {
        let mut conn = AsyncPgConnection::establish(url).await.unwrap();
        conn.batch_execute("BEGIN").await.unwrap();
        conn.batch_execute(sql).await.unwrap();
        Self(Box::new(conn))
    }

    /// Runs `sql` in the transaction, then commits it.
    pub async fn commit_after(mut self, sql: &str) {
        self.0.batch_execute(sql).await.unwrap();
        self.0.batch_execute("COMMIT").await.unwrap();
    }
}

impl TestDatabase {
    /// PostgreSQL: begins a transaction on a connection of the test's own,
    /// runs `sql` in it and leaves it open.
    pub async fn begin(&self, sql: &str) -> OpenTransaction {
        let Self::Postgres { admin_url, name } = self else {
            panic!("TestDatabase::begin is for PostgreSQL");
        };
        OpenTransaction::begin(&with_database(admin_url, name), sql).await
    }

    /// PostgreSQL: the same as [`begin`](Self::begin), in another database
    /// of the test's server (the admin URL's), as another application
    /// sharing the cluster would.
    pub async fn begin_elsewhere(&self, sql: &str) -> OpenTransaction {
        let Self::Postgres { admin_url, .. } = self else {
            panic!("TestDatabase::begin_elsewhere is for PostgreSQL");
        };
        OpenTransaction::begin(admin_url, sql).await
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let drop = match self {
            Self::Sqlite { .. } => return,
            Self::Postgres { admin_url, name } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                async move { drop_database(&admin_url, &name).await }.boxed()
            }
            Self::Mysql { admin_url, name } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                async move { drop_mysql_database(&admin_url, &name).await }.boxed()
            }
        };
        // Drop runs outside any runtime (or inside one that may not block),
        // so the clean-up gets a thread and a runtime of its own.
        let cleanup = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cannot build a runtime to drop the test database")
                .block_on(drop);
        });
        let _ = cleanup.join();
    }
}

async fn drop_mysql_database(admin_url: &str, name: &str) {
    mysql_admin(admin_url)
        .await
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .await
        .unwrap_or_else(|error| panic!("cannot drop database {name}: {error}"));
}

async fn drop_database(admin_url: &str, name: &str) {
    // FORCE closes the server's pooled connections to it first.
    admin(admin_url)
        .await
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .unwrap_or_else(|error| panic!("cannot drop database {name}: {error}"));
}

fn mysql_admin_url() -> String {
    std::env::var(MYSQL_URL_VAR).unwrap_or_else(|_| DEFAULT_MYSQL_URL.to_owned())
}

async fn mysql_admin(admin_url: &str) -> AsyncMysqlConnection {
    AsyncMysqlConnection::establish(admin_url).await.unwrap_or_else(|error| {
        panic!(
            "the MySQL tests need a MySQL or MariaDB server, and none answered at {admin_url}: {error}\n\
             Start one, or set {MYSQL_URL_VAR} to the URL of a user that may create databases, \
             e.g. {MYSQL_URL_VAR}=mysql://root@127.0.0.1:3306/test"
        )
    })
}

fn postgres_admin_url() -> String {
    std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

async fn admin(admin_url: &str) -> AsyncPgConnection {
    AsyncPgConnection::establish(admin_url).await.unwrap_or_else(|error| {
        panic!(
            "the PostgreSQL tests need a PostgreSQL server, and none answered at {admin_url}: {error}\n\
             Start one, or set {POSTGRES_URL_VAR} to the URL of a role that may create databases, \
             e.g. {POSTGRES_URL_VAR}=postgres://postgres@127.0.0.1:5432/postgres"
        )
    })
}

/// `admin_url` with its database replaced by `name`.
fn with_database(admin_url: &str, name: &str) -> String {
    let mut url = url::Url::parse(admin_url)
        .unwrap_or_else(|error| panic!("{POSTGRES_URL_VAR} is not a URL ({error}): {admin_url}"));
    url.set_path(name);
    url.into()
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_urls_swap_only_the_database() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres", "t1"),
            "postgres://u@h:5432/t1"
        );
        assert_eq!(with_database("postgres://u@h", "t1"), "postgres://u@h/t1");
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "t1"),
            "postgres://u:p@h/t1?sslmode=disable"
        );
    }
}
