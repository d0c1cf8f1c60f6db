//! The schema migrations in `migrations/`, embedded in the binary, one set
//! per backend.

use diesel::backend::Backend;
use diesel_async::{AsyncConnection, AsyncMigrationHarness, AsyncPgConnection};

use super::Isolation;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::{DatabaseUrl, mysql, sqlite};

const POSTGRES: EmbeddedMigrations = embed_migrations!("../migrations/postgres");
const SQLITE: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
const MYSQL: EmbeddedMigrations = embed_migrations!("../migrations/mysql");

/// What to do about pending migrations at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Apply them (the default, like SQLAlchemy's `create_all`).
    Apply,
    /// Apply none; fail if any is pending.
    Check,
}

/// Why the schema could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// The database could not be reached or opened at all.
    #[error("cannot open database {url}: {source}")]
    Connect {
        /// Where (password masked).
        url: DatabaseUrl,
        /// What the driver said.
        #[source]
        source: diesel::ConnectionError,
    },
    /// `Mode::Check` found migrations that were not applied.
    #[error(
        "the database schema is behind: pending migrations {0:?}; start without --skip-migrations to apply them"
    )]
    Pending(Vec<String>),
    /// Running or listing migrations failed.
    #[error("migrations failed: {0}")]
    Failed(String),
}

/// Opens one connection to `url`, which also proves that the URL works, and
/// applies (or checks) the migrations. Returns the versions applied now.
pub async fn prepare(url: &DatabaseUrl, mode: Mode) -> Result<Vec<String>, MigrationError> {
    let connect_error = |source| MigrationError::Connect {
        url: url.clone(),
        source,
    };
    match url {
        DatabaseUrl::Postgres(text) => {
            let conn = AsyncPgConnection::establish(text)
                .await
                .map_err(connect_error)?;
            blocking(move || migrate(&mut AsyncMigrationHarness::new(conn), POSTGRES, mode)).await
        }
        DatabaseUrl::Sqlite(path) => {
            // Through the same set-up as pooled connections, so the file is in
            // WAL mode before anything else touches it.
            let conn = sqlite::establish(&path.to_string_lossy())
                .await
                .map_err(connect_error)?;
            blocking(move || migrate(&mut AsyncMigrationHarness::new(conn), SQLITE, mode)).await
        }
        DatabaseUrl::Mysql(text) => {
            let conn =
                mysql::establish(text, Isolation::default(), &mysql::ServerWrites::unlogged())
                    .await
                    .map_err(connect_error)?;
            blocking(move || migrate(&mut AsyncMigrationHarness::new(conn), MYSQL, mode)).await
        }
    }
}

/// Migrations are synchronous in diesel: run them off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, MigrationError> + Send + 'static,
) -> Result<T, MigrationError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| MigrationError::Failed(error.to_string()))?
}

fn migrate<DB: Backend>(
    harness: &mut impl MigrationHarness<DB>,
    migrations: EmbeddedMigrations,
    mode: Mode,
) -> Result<Vec<String>, MigrationError> {
    let failed =
        |error: Box<dyn std::error::Error + Send + Sync>| MigrationError::Failed(error.to_string());
    match mode {
        Mode::Apply => Ok(harness
            .run_pending_migrations(migrations)
            .map_err(failed)?
            .into_iter()
            .map(|version| version.to_string())
            .collect()),
        Mode::Check => {
            let pending = harness.pending_migrations(migrations).map_err(failed)?;
            if pending.is_empty() {
                Ok(Vec::new())
            } else {
                Err(MigrationError::Pending(
                    pending.iter().map(|m| m.name().to_string()).collect(),
                ))
            }
        }
    }
}
