//! PostgreSQL connections: how each is opened and set up, and how the pools
//! learn that one has closed.

use std::{
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use diesel::{ConnectionError, ConnectionResult};
use diesel_async::{AsyncPgConnection, SimpleAsyncConnection};

use super::Isolation;
use crate::error::with_causes;

/// How long opening a connection may take at most, handshake included (the
/// URL's `connect_timeout=SECONDS` bounds the TCP connect alone): a
/// database that does not answer must turn into UNAVAILABLE, not into
/// calls that hang. Apart from the pool timeout, so that a short wait for
/// a turn does not keep connections from ever opening.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A new connection, and a flag raised when it closes.
#[allow(missing_debug_implementations)] // the connection has none
pub struct Opened {
    /// The connection.
    pub conn: AsyncPgConnection,
    /// Raised as soon as the connection is gone (the server closed it or
    /// the network dropped it), before anyone tries to use it.
    pub closed: Closed,
}

/// Whether a connection has closed; cheap to clone and check.
#[derive(Debug, Clone, Default)]
pub struct Closed(Arc<AtomicBool>);

impl Closed {
    /// Whether the connection is gone.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Opens a connection to `url` and sets `isolation` as the level of every
/// transaction on it, the implicit one around a lone statement included.
///
/// Its socket is driven by a task of our own, which logs why the
/// connection ended (the server restarted, the network dropped it) and
/// raises [`Opened::closed`].
pub async fn establish(url: &str, isolation: Isolation) -> ConnectionResult<Opened> {
    let mut config = tokio_postgres::Config::from_str(url)
        .map_err(|error| ConnectionError::InvalidConnectionUrl(error.to_string()))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let (client, connection) =
        tokio::time::timeout(CONNECT_TIMEOUT, config.connect(tokio_postgres::NoTls))
            .await
            .map_err(|_| {
                ConnectionError::BadConnection(format!(
                    "no answer from PostgreSQL within {CONNECT_TIMEOUT:?}"
                ))
            })?
            .map_err(|error| ConnectionError::BadConnection(with_causes(&error)))?;
    let closed = Closed::default();
    tokio::spawn({
        let closed = closed.clone();
        async move {
            if let Err(error) = connection.await {
                tracing::warn!(error = with_causes(&error), "PostgreSQL connection lost");
            }
            closed.0.store(true, Ordering::Release);
        }
    });
    let mut conn = AsyncPgConnection::try_from(client).await?;
    if let Some(sql) = isolation.session_sql() {
        conn.batch_execute(sql)
            .await
            .map_err(ConnectionError::CouldntSetupConfiguration)?;
    }
    Ok(Opened { conn, closed })
}

impl Isolation {
    /// What sets this level for a PostgreSQL session, if not its default.
    fn session_sql(self) -> Option<&'static str> {
        match self {
            Self::ReadCommitted => None,
            Self::Serializable => {
                Some("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE")
            }
        }
    }
}

/// Cancels whatever its connection is running if dropped before
/// [`disarm`](Self::disarm): a unit of work dropped in the middle (its
/// caller gave up, or its deadline passed) must not leave its statement
/// running, holding locks, until it ends by itself. (The connection is
/// then discarded, not pooled: diesel-async marks it broken.)
#[allow(missing_debug_implementations)] // the token has none
pub struct CancelOnDrop(Option<tokio_postgres::CancelToken>);

impl CancelOnDrop {
    /// Armed with `token`, the connection's.
    pub fn new(token: tokio_postgres::CancelToken) -> Self {
        Self(Some(token))
    }

    /// The unit ended: nothing to cancel.
    pub fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let (Some(token), Ok(runtime)) = (self.0.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        runtime.spawn(async move {
            if let Err(error) = token.cancel_query(tokio_postgres::NoTls).await {
                tracing::warn!(
                    error = with_causes(&error),
                    "cannot cancel an abandoned statement"
                );
            }
        });
    }
}
