//! Read replicas: PostgreSQL hot standbys that serve reads while every
//! write goes to the primary, and the consistency tokens that give a caller
//! its own writes back.
//!
//! A standby replays the primary's write-ahead log (WAL) some time after
//! the primary wrote it. Two rules keep reads from it honest:
//! - **Bounded staleness.** [`ReadReplicas::watch`] asks the primary for its
//!   WAL position and each standby for the position it has replayed, every
//!   [`CHECK_INTERVAL`]. A standby that has not replayed a position the
//!   primary reached more than `--max-replica-lag` ago, or that does not
//!   answer, serves no reads until it catches up. Nor does one that has
//!   not replayed the first position seen, taken once the migrations
//!   are applied: its lag is unknown, and it may lack the schema.
//! - **Read your writes.** After a write commits, the call learns the
//!   primary's WAL position ([`Lsn`], at least the commit's), which goes
//!   back to the caller as its consistency token. A read that presents the
//!   token is served by a standby only if it was seen to have replayed that
//!   far; otherwise by the primary.
//!
//! What a call read after and wrote up to is kept in a task-local
//! ([`in_call`]), as the deadline is ([`retry`](super::retry)), so that the
//! handlers do not pass it along by hand.

use std::{
    cell::Cell,
    collections::VecDeque,
    fmt,
    str::FromStr,
    sync::{
        Mutex, PoisonError, Weak,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use diesel::pg::{data_types::PgLsn, sql_types};
use diesel_async::AsyncPgConnection;
use futures_util::future::join_all;

use super::{
    DbError, Isolation, PoolOptions, pipelined::PipelinedConnections, pool::ConnectionPool,
    postgres_manager, url::DatabaseUrl,
};

/// How often the primary's and the standbys' WAL positions are read. A
/// standby's lag is known to within this.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// How long a position check may take before the standby (or the primary)
/// is taken for unreachable.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// Primary positions remembered at most: with [`CHECK_INTERVAL`], over a
/// minute and a half of a busy primary. A standby behind the oldest one is
/// lagging, whatever `--max-replica-lag` says.
const POSITIONS_KEPT: usize = 1024;

/// A position in PostgreSQL's write-ahead log, as PostgreSQL writes it
/// (`16/B374D848`). Positions only grow, across failovers too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Lsn(pub u64);

/// Text that is not an [`Lsn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a WAL position (expected two hexadecimal numbers, as in 16/B374D848)")]
pub struct InvalidLsn;

impl FromStr for Lsn {
    type Err = InvalidLsn;

    fn from_str(text: &str) -> Result<Self, InvalidLsn> {
        // Tokens carry positions: one reading of them, the client's.
        users_client::consistency::parse_position(text)
            .map(Self)
            .ok_or(InvalidLsn)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// Read replica settings: `--read-replica-url` and `--max-replica-lag`.
#[derive(Debug, Clone)]
pub struct ReplicaOptions {
    /// One `postgres://` URL per hot standby.
    pub urls: Vec<String>,
    /// How far behind the primary a standby may be and still serve reads.
    pub max_lag: Duration,
}

/// The hot standbys reads may go to, and what is known of each.
pub struct ReadReplicas {
    standbys: Box<[Standby]>,
    max_lag: Duration,
    /// Where the next read starts looking, so that reads spread.
    next: AtomicUsize,
    /// The primary's WAL positions, each with when it was first seen,
    /// oldest first; a new entry only when the position moved.
    primary_positions: Mutex<VecDeque<(Instant, Lsn)>>,
    /// Reads the primary served, for the metrics.
    primary_reads: AtomicU64,
    /// Writes that have asked for a position after their commit, so far.
    positions_asked: AtomicU64,
    /// The last position read for them: one read at a time.
    position_read: tokio::sync::Mutex<PositionRead>,
}

/// A position read for writes ([`ReadReplicas::position_after_commit`]).
#[derive(Debug, Default)]
struct PositionRead {
    /// The writes it answers: those that had asked before it was sent.
    answers_up_to: u64,
    position: Option<Lsn>,
}

/// One standby, as the metrics show it.
#[derive(Debug, Clone)]
pub struct StandbyReading<'a> {
    /// Its URL, password masked.
    pub name: &'a str,
    /// Whether it serves reads now (up, and not too far behind).
    pub serving: bool,
    /// How far behind the primary it was at its last check, if it was up.
    pub lag: Option<Duration>,
    /// Reads it served.
    pub reads: u64,
}

/// One hot standby: its connections, as the primary's are (pipelined for
/// one statement, pooled for a transaction), and its last check.
pub struct Standby {
    /// The URL, password masked, for logs.
    name: String,
    pub(super) pipelined: PipelinedConnections,
    pub(super) exclusive: ConnectionPool<AsyncPgConnection>,
    state: Mutex<StandbyState>,
    /// Reads it served, for the metrics.
    reads: AtomicU64,
}

/// What the last check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StandbyState {
    /// Not checked yet, unreachable, not a standby, or failed a read.
    Unusable,
    /// Up, having replayed the primary's WAL up to `replayed`.
    Up {
        replayed: Lsn,
        /// Since when the primary has been at a position this standby has
        /// not replayed; `None` if it has replayed all it was seen to write.
        behind_since: Option<Instant>,
        /// Whether its lag is known: it has replayed the oldest position
        /// kept. When the first position was seen (at start-up), or which
        /// older ones were dropped, is not known; a standby behind them may
        /// be any amount behind.
        known: bool,
    },
}

impl ReadReplicas {
    /// Connections to each standby in `options` (opened on first use), as
    /// many as `pool` allows for the primary. Every URL must be PostgreSQL.
    pub fn new(options: &ReplicaOptions, pool: PoolOptions) -> Result<Self, ReplicaUrlError> {
        let standbys = options
            .urls
            .iter()
            .map(|text| {
                let url: DatabaseUrl = text.parse().map_err(ReplicaUrlError::Invalid)?;
                let DatabaseUrl::Postgres(text) = &url else {
                    return Err(ReplicaUrlError::NotPostgres(url.to_string()));
                };
                // A standby refuses serializable transactions; its reads
                // run at read committed, as one-statement reads do anyway.
                let isolation = Isolation::ReadCommitted;
                Ok(Standby {
                    name: url.to_string(),
                    pipelined: PipelinedConnections::new(text, isolation, pool.size, pool.timeout),
                    exclusive: ConnectionPool::new(
                        postgres_manager(text, isolation),
                        PoolOptions { isolation, ..pool },
                        true,
                    ),
                    state: Mutex::new(StandbyState::Unusable),
                    reads: AtomicU64::new(0),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            standbys,
            max_lag: options.max_lag,
            next: AtomicUsize::new(0),
            primary_positions: Mutex::new(VecDeque::new()),
            primary_reads: AtomicU64::new(0),
            positions_asked: AtomicU64::new(0),
            position_read: tokio::sync::Mutex::default(),
        })
    }

    /// The primary's WAL position, read after the caller's write committed:
    /// its consistency token.
    ///
    /// Concurrent writes share reads: one read is in flight at a time, and
    /// it answers every write that asked before it was sent. Under load a
    /// write waits for at most the read in flight and the next, instead of
    /// adding a statement of its own to the primary's work.
    ///
    /// Gives up after [`CHECK_TIMEOUT`]: the write is done, and its call
    /// must not wait on a primary that stopped answering after it.
    pub async fn position_after_commit(
        &self,
        primary: &PipelinedConnections,
    ) -> Result<Lsn, DbError> {
        let ticket = self.positions_asked.fetch_add(1, Ordering::SeqCst) + 1;
        let read = async {
            let mut last = self.position_read.lock().await;
            if let Some(position) = last.position
                && last.answers_up_to >= ticket
            {
                return Ok(position);
            }
            let answers_up_to = self.positions_asked.load(Ordering::SeqCst);
            let position = current_position(primary).await?;
            *last = PositionRead {
                answers_up_to,
                position: Some(position),
            };
            Ok(position)
        };
        tokio::time::timeout(CHECK_TIMEOUT, read)
            .await
            .unwrap_or_else(|_| {
                Err(DbError::Unreachable(format!(
                    "the primary's WAL position: no answer within {CHECK_TIMEOUT:?}"
                )))
            })
    }

    /// Counts a read the primary served.
    pub fn primary_served_read(&self) {
        self.primary_reads.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads the primary served.
    pub fn primary_reads(&self) -> u64 {
        self.primary_reads.load(Ordering::Relaxed)
    }

    /// Each standby, as the metrics show it.
    pub fn readings(&self) -> impl Iterator<Item = StandbyReading<'_>> {
        self.standbys.iter().map(|standby| {
            let state = standby.state();
            StandbyReading {
                name: &standby.name,
                serving: standby.may_serve(None, self.max_lag),
                lag: match state {
                    StandbyState::Up { behind_since, .. } => {
                        Some(behind_since.map_or(Duration::ZERO, |since| since.elapsed()))
                    }
                    StandbyState::Unusable => None,
                },
                reads: standby.reads.load(Ordering::Relaxed),
            }
        })
    }

    /// The standbys' URLs, passwords masked.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.standbys.iter().map(|standby| standby.name.as_str())
    }

    /// A standby that may serve a read made after `after` (a consistency
    /// token), or `None`: read from the primary. Standbys take turns.
    pub fn choose(&self, after: Option<Lsn>) -> Option<&Standby> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..self.standbys.len())
            .map(|offset| &self.standbys[(start + offset) % self.standbys.len()])
            .find(|standby| standby.may_serve(after, self.max_lag))
    }

    /// Checks the primary and every standby every [`CHECK_INTERVAL`], for
    /// as long as `replicas` and `primary` are in use.
    pub async fn watch(replicas: Weak<Self>, primary: Weak<PipelinedConnections>) {
        let mut ticks = tokio::time::interval(CHECK_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let (Some(replicas), Some(primary)) = (replicas.upgrade(), primary.upgrade()) else {
                return;
            };
            replicas.check(&primary).await;
        }
    }

    async fn check(&self, primary: &PipelinedConnections) {
        // The primary first: a standby's position is then compared with a
        // primary position from before it was read, never after.
        // If the primary does not answer (health reports it), the standbys
        // are judged by the positions seen before.
        if let Ok(Ok(position)) =
            tokio::time::timeout(CHECK_TIMEOUT, current_position(primary)).await
        {
            self.primary_at(position);
        }
        let replayed = join_all(self.standbys.iter().map(|standby| async move {
            tokio::time::timeout(CHECK_TIMEOUT, replayed_position(&standby.pipelined))
                .await
                .unwrap_or_else(|_| Err(StandbyError::Timeout))
        }))
        .await;
        let positions = self.lock_positions();
        for (standby, replayed) in self.standbys.iter().zip(replayed) {
            let state = match &replayed {
                Ok(replayed) => {
                    // The oldest position seen that this standby has not replayed.
                    let unreplayed = positions.iter().find(|(_, lsn)| lsn > replayed);
                    StandbyState::Up {
                        replayed: *replayed,
                        behind_since: unreplayed.map(|(seen, _)| *seen),
                        known: positions.front().is_none_or(|(_, lsn)| lsn <= replayed),
                    }
                }
                Err(_) => StandbyState::Unusable,
            };
            standby.update(state, replayed.err(), self.max_lag);
        }
    }

    fn primary_at(&self, position: Lsn) {
        let mut positions = self.lock_positions();
        if positions.back().is_none_or(|(_, last)| *last < position) {
            if positions.len() == POSITIONS_KEPT {
                positions.pop_front();
            }
            positions.push_back((Instant::now(), position));
        }
    }

    fn lock_positions(&self) -> std::sync::MutexGuard<'_, VecDeque<(Instant, Lsn)>> {
        self.primary_positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Standby {
    fn may_serve(&self, after: Option<Lsn>, max_lag: Duration) -> bool {
        match self.state() {
            StandbyState::Unusable => false,
            StandbyState::Up {
                replayed,
                behind_since,
                known,
            } => {
                known
                    && behind_since.is_none_or(|since| since.elapsed() <= max_lag)
                    && after.is_none_or(|after| replayed >= after)
            }
        }
    }

    /// Counts a read this standby served.
    pub fn served_read(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes the standby out of service after a read failed on it (its
    /// connection, or no connection within the pool timeout), until the
    /// next check finds it well.
    pub fn failed(&self, error: &DbError) {
        let mut state = self.lock_state();
        if *state != StandbyState::Unusable {
            tracing::warn!(replica = %self.name, %error, "read replica failed a read; reading from the primary");
            *state = StandbyState::Unusable;
        }
    }

    /// Records a check, logging when the standby starts or stops serving
    /// reads.
    fn update(&self, new: StandbyState, error: Option<StandbyError>, max_lag: Duration) {
        let was_serving = self.may_serve(None, max_lag);
        *self.lock_state() = new;
        let serving = self.may_serve(None, max_lag);
        if was_serving == serving {
            return;
        }
        match (serving, new, error) {
            (true, _, _) => tracing::info!(replica = %self.name, "read replica serving reads"),
            (false, _, Some(error)) => {
                tracing::warn!(replica = %self.name, %error, "read replica unusable; reading from the primary");
            }
            (false, StandbyState::Up { behind_since, .. }, None) => {
                let lag = behind_since.map(|since| since.elapsed());
                tracing::warn!(replica = %self.name, ?lag, ?max_lag, "read replica lagging; reading from the primary");
            }
            (false, StandbyState::Unusable, None) => {}
        }
    }

    fn state(&self) -> StandbyState {
        *self.lock_state()
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, StandbyState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Why a standby failed its check.
#[derive(Debug, thiserror::Error)]
enum StandbyError {
    #[error("no answer within {CHECK_TIMEOUT:?}")]
    Timeout,
    #[error("not a hot standby (not in recovery): it may be a primary now")]
    NotStandby,
    #[error(transparent)]
    Database(#[from] DbError),
}

diesel::define_sql_function! {
    /// The end of the primary's WAL, where the next record goes: past every
    /// commit acknowledged so far.
    fn pg_current_wal_insert_lsn() -> sql_types::PgLsn;
}
diesel::define_sql_function! {
    /// How far a standby has replayed the WAL (NULL on a primary).
    fn pg_last_wal_replay_lsn() -> Nullable<sql_types::PgLsn>;
}
diesel::define_sql_function! {
    /// Whether the server is a standby.
    fn pg_is_in_recovery() -> Bool;
}

/// The primary's WAL position now: at or past the commit of every write
/// acknowledged before the call.
async fn current_position(primary: &PipelinedConnections) -> Result<Lsn, DbError> {
    // Here only: its `load` would shadow the atomics'.
    use diesel_async::RunQueryDsl;
    let lent = primary.get().await?;
    let result = diesel::select(pg_current_wal_insert_lsn())
        .get_result::<PgLsn>(&mut &*lent.conn)
        .await
        .map(|PgLsn(lsn)| Lsn(lsn))
        .map_err(DbError::from);
    lent.returned(&result);
    result
}

/// How far the standby has replayed.
async fn replayed_position(standby: &PipelinedConnections) -> Result<Lsn, StandbyError> {
    use diesel_async::RunQueryDsl;
    let lent = standby.get().await?;
    let result = diesel::select((pg_is_in_recovery(), pg_last_wal_replay_lsn()))
        .get_result::<(bool, Option<PgLsn>)>(&mut &*lent.conn)
        .await
        .map_err(DbError::from);
    lent.returned(&result);
    match result? {
        (true, Some(PgLsn(lsn))) => Ok(Lsn(lsn)),
        _ => Err(StandbyError::NotStandby),
    }
}

/// A `--read-replica-url` that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicaUrlError {
    /// Not a database URL.
    #[error("invalid --read-replica-url: {0}")]
    Invalid(#[source] super::url::UrlError),
    /// A database URL, but not PostgreSQL's (password masked).
    #[error(
        "invalid --read-replica-url {0}: read replicas are PostgreSQL hot standbys, expected postgres://..."
    )]
    NotPostgres(String),
}

/// What one call read after and wrote up to.
struct CallPositions {
    read_after: Option<Lsn>,
    committed: Cell<Option<Lsn>>,
}

tokio::task_local! {
    static CALL: CallPositions;
}

/// Runs one call's `work`: its reads see at least what was committed up to
/// `read_after` (the caller's consistency token). Returns its output and,
/// if it wrote, a position its commits are at or before: the token for its
/// caller.
pub async fn in_call<F: Future>(read_after: Option<Lsn>, work: F) -> (F::Output, Option<Lsn>) {
    let positions = CallPositions {
        read_after,
        committed: Cell::new(None),
    };
    CALL.scope(positions, async {
        let output = work.await;
        (output, CALL.with(|call| call.committed.get()))
    })
    .await
}

/// The consistency token the call being served presented.
pub fn read_after() -> Option<Lsn> {
    CALL.try_with(|call| call.read_after).ok().flatten()
}

/// Runs `work`, part of a call that presented `read_after`, outside the
/// call's task (the chunks of a stream).
pub async fn reading_after<F: Future>(read_after: Option<Lsn>, work: F) -> F::Output {
    in_call(read_after, work).await.0
}

/// Whether a call is being served, which wants the position of its writes.
pub(super) fn call_wants_position() -> bool {
    CALL.try_with(|_| ()).is_ok()
}

/// Records that the call's writes committed at or before `position`.
pub(super) fn committed_before(position: Lsn) {
    let _ = CALL.try_with(|call| {
        call.committed.set(Some(
            call.committed.get().map_or(position, |p| p.max(position)),
        ));
    });
}

impl fmt::Debug for ReadReplicas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadReplicas")
            .field("standbys", &self.standbys)
            .field("max_lag", &self.max_lag)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Standby {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Standby")
            .field("name", &self.name)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_read_and_print_as_postgresql_writes_them() {
        for text in ["0/0", "16/B374D848", "FFFFFFFF/FFFFFFFF", "0/3000148"] {
            let lsn: Lsn = text.parse().unwrap();
            assert_eq!(lsn.to_string(), text);
        }
        assert_eq!("1/0".parse::<Lsn>().unwrap(), Lsn(1 << 32));
        assert!("16/B374D848".parse::<Lsn>().unwrap() > "16/B374D847".parse().unwrap());
        assert!("2/0".parse::<Lsn>().unwrap() > "1/FFFFFFFF".parse().unwrap());
        assert_eq!("0/a".parse::<Lsn>().unwrap(), Lsn(10));
    }

    #[test]
    fn other_text_is_not_a_position() {
        for junk in [
            "",
            "/",
            "0/",
            "/0",
            "1",
            "0/0/0",
            "+1/0",
            "-1/0",
            " 0/0",
            "0/0 ",
            "G/0",
            "100000000/0",
            "0/100000000",
            "é/0",
        ] {
            assert!(junk.parse::<Lsn>().is_err(), "{junk:?}");
        }
    }

    #[tokio::test]
    async fn a_call_learns_the_highest_position_its_writes_committed_at() {
        let ((), committed) = in_call(None, async {
            assert!(call_wants_position());
            committed_before(Lsn(7));
            committed_before(Lsn(5));
        })
        .await;
        assert_eq!(committed, Some(Lsn(7)));
        assert!(!call_wants_position(), "outside a call");

        let (after, committed) = in_call(Some(Lsn(3)), async { read_after() }).await;
        assert_eq!((after, committed), (Some(Lsn(3)), None));
        assert_eq!(
            reading_after(Some(Lsn(9)), async { read_after() }).await,
            Some(Lsn(9))
        );
    }
}
