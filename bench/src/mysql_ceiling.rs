//! `users-bench mysql-ceiling`: how fast MySQL or MariaDB itself does the
//! work of each RPC, with no gRPC, no service and no pool in between.
//!
//! Why this is the ceiling of users-server on MySQL:
//! - the same statements: the exact SQL text diesel sends for each RPC on
//!   MariaDB (the tests below build the server's queries with diesel and
//!   compare), with the same binds, in the same transactions. A create is,
//!   as users-server runs it on a MariaDB 10.5+ that is no Galera node
//!   (`NewUser::create_on_mysql` with `WriteCheck::Returning`): BEGIN;
//!   `INSERT .. RETURNING` the user; with a request id
//!   (`CreateRequest::create_user`) the INSERT into create_requests; the
//!   INSERT of its change event into user_events; COMMIT. (The server's
//!   numbering of the events afterwards, in the background, is not part
//!   of it. A Galera node or MySQL, where the server reads the row back,
//!   is not what this measures.) FindUsers is one SELECT with LIMIT
//!   page + 1, GetUser one SELECT by id, each autocommitted;
//! - the same sessions: every connection is set up as users-server sets up
//!   its own (diesel-async's set-up queries, then `db::mysql`'s: UTC, strict
//!   SQL mode, READ COMMITTED, the server's default `--isolation`);
//! - the same number of connections as the server's pool (`--pool-size`),
//!   each running its statements back to back, one call at a time, so the
//!   database sees at most as much concurrency as the server can give it;
//! - the least client work: mysql_async (the driver under diesel-async)
//!   used directly, each statement prepared once per connection and then
//!   executed with fresh random parameters (as pgbench -M prepared runs the
//!   PostgreSQL ceiling), rows read but not turned into users (diesel
//!   keeps the server's statements prepared per connection too; the tests
//!   check that as well).
//!
//! What the service adds on top (gRPC, protobuf, the pool, diesel, its
//! retries and checks) is the gap between the two numbers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{Datelike, NaiveDateTime, Timelike};
use clap::Args;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Row, Statement, Value};
use tokio::task::JoinSet;

use crate::error::BenchError;
use crate::load::parse_positive_duration;
use crate::progress::{self, Phases, Progress};
use crate::report::{Recorder, Report, Setup};
use crate::workload::{self, Keys, PAGE_SIZE, Rpc, check};

/// `users-bench mysql-ceiling`.
#[derive(Debug, Clone, Args)]
pub struct MysqlCeilingArgs {
    /// A database that users-server has migrated and that is seeded, e.g.
    /// mysql://root@127.0.0.1:3306/users_bench.
    #[arg(long)]
    database_url: String,
    /// Which RPC's statements to run.
    #[arg(long, value_enum)]
    rpc: Rpc,
    /// Connections, each running its statements back to back: the
    /// server's `--pool-size`.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    connections: u32,
    /// Length of the measured phase, e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = parse_positive_duration)]
    duration: Duration,
    /// Unrecorded statements before the measured phase, to warm the caches.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Users the database was seeded with (`get` asks for ids 1 to this).
    #[arg(long, default_value_t = 100_000)]
    users: u32,
    /// Distinct names the database was seeded with.
    #[arg(long, default_value_t = 10_000)]
    names: u32,
    /// Also print the results as one JSON line.
    #[arg(long)]
    pub json: bool,
}

/// The session set-up users-server's connections run: diesel-async's
/// (`AsyncMysqlConnection::establish`), then users-server's own
/// (`server/src/db/mysql.rs`, at the default `--isolation read-committed`).
const SESSION_SETUP: [&str; 7] = [
    "SET time_zone = '+00:00';",
    "SET character_set_client = 'utf8mb4'",
    "SET character_set_connection = 'utf8mb4'",
    "SET character_set_results = 'utf8mb4'",
    "SET time_zone = '+00:00'",
    "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,\
     ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'",
    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
];

/// The columns FindUsers, GetUser and CreateUser read.
macro_rules! user_columns {
    () => {
        "SELECT `users`.`id`, `users`.`name`, `users`.`create_time`, \
         `users`.`update_time`, `users`.`revision` FROM `users`"
    };
}

/// FindUsers{name}: `User::find` with `NameMatch::Exact`, in id order.
const FIND_NAME: &str = concat!(
    user_columns!(),
    " WHERE (`users`.`name` = ?) ORDER BY `users`.`id` ASC LIMIT ?"
);
/// FindUsers{name_prefix}: `User::find` with `NameMatch::Prefix`.
const FIND_PREFIX: &str = concat!(
    user_columns!(),
    " WHERE ((`users`.`name` >= ?) AND (`users`.`name` < ?)) ORDER BY `users`.`id` ASC LIMIT ?"
);
/// GetUser, and a create's read-back: `users::table.find(id).first()`.
const GET: &str = concat!(user_columns!(), " WHERE (`users`.`id` = ?) LIMIT ?");
/// `NewUser::insert_returning`.
const INSERT_USER: &str = "INSERT INTO users (name, create_time, update_time) VALUES (?, ?, ?) \
                           RETURNING id, name, create_time, update_time, revision";
/// `Event::record_as_written`: a create's change event.
const INSERT_EVENT: &str = "INSERT INTO `user_events` (`kind`, `user_id`, `name`, \
                            `create_time`, `update_time`, `revision`, `event_time`, \
                            `request_id`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
/// `CreateRequest::record_all`, for one request id.
const INSERT_REQUEST: &str = "INSERT INTO `create_requests` (`request_id`, `name`, `user_id`, \
                              `create_time`) VALUES (?, ?, ?, ?)";

/// Rows a find fetches: one more than the page, as the server does to learn
/// whether another page follows.
const FIND_LIMIT: i64 = PAGE_SIZE as i64 + 1;

/// The statements, prepared on one connection.
#[derive(Debug)]
struct Statements {
    find_name: Statement,
    find_prefix: Statement,
    get: Statement,
    insert_user: Statement,
    insert_request: Statement,
    insert_event: Statement,
}

impl Statements {
    async fn prepare(conn: &mut Conn) -> mysql_async::Result<Self> {
        Ok(Self {
            find_name: conn.prep(FIND_NAME).await?,
            find_prefix: conn.prep(FIND_PREFIX).await?,
            get: conn.prep(GET).await?,
            insert_user: conn.prep(INSERT_USER).await?,
            insert_request: conn.prep(INSERT_REQUEST).await?,
            insert_event: conn.prep(INSERT_EVENT).await?,
        })
    }
}

/// What every connection's loop shares.
#[derive(Debug)]
struct Run {
    rpc: Rpc,
    keys: Keys,
    phases: Phases,
    progress: Progress,
    /// Numbers the created users' names.
    created: AtomicU64,
}

/// Runs the statements and reports on the measured phase.
pub async fn run(args: &MysqlCeilingArgs) -> Result<Report, BenchError> {
    let keys = match args.rpc {
        Rpc::Get => Keys::ids(args.users)?,
        rpc => Keys::new(rpc, args.names)?,
    };
    let where_ = redacted(&args.database_url);
    let opts = Opts::from_url(&args.database_url).map_err(|error| BenchError::Database {
        path: where_.clone(),
        detail: format!("not a MySQL URL: {error}"),
    })?;
    let opts = OptsBuilder::from_opts(opts)
        .init(SESSION_SETUP.to_vec())
        // As diesel-async sets it: UPDATE counts matched rows, not changed.
        .client_found_rows(true);
    // All connections and statements first, so that a bad database fails
    // before any work and no connection's set-up is measured.
    let mut connections = Vec::new();
    for _ in 0..args.connections {
        let database_error = |detail: String| BenchError::Database {
            path: where_.clone(),
            detail,
        };
        let mut conn = Conn::new(opts.clone())
            .await
            .map_err(|error| database_error(format!("cannot connect: {error}")))?;
        let statements = Statements::prepare(&mut conn).await.map_err(|error| {
            database_error(format!(
                "cannot prepare the statements ({error}); has users-server migrated this database?"
            ))
        })?;
        connections.push((conn, statements));
    }

    let run = Arc::new(Run {
        rpc: args.rpc,
        keys,
        phases: Phases::starting_now(args.warmup, args.duration)?,
        progress: Progress::default(),
        created: AtomicU64::new(0),
    });
    let mut workers = JoinSet::new();
    for (conn, statements) in connections {
        workers.spawn(worker(conn, statements, Arc::clone(&run)));
    }
    let mut finished = Vec::new();
    let mut next_line = run.phases.start + progress::INTERVAL;
    loop {
        tokio::select! {
            joined = workers.join_next() => match joined {
                Some(worker) => finished.push(worker.map_err(|_| BenchError::WorkerPanicked)?),
                None => break,
            },
            () = tokio::time::sleep_until(next_line.into()) => {
                progress::show(&run.progress.line(Instant::now(), &run.phases));
                next_line += progress::INTERVAL;
            }
        }
    }
    progress::finish();

    let mut recorder = Recorder::new();
    let mut last_done = run.phases.measure_start;
    for (worker_recorder, done, conn) in finished {
        recorder.merge(&worker_recorder);
        last_done = last_done.max(done);
        if let Some(conn) = conn {
            // A clean goodbye, so the server logs no aborted connection.
            conn.disconnect().await.ok();
        }
    }
    let setup = Setup {
        tool: "mysql-ceiling",
        rpc: args.rpc,
        connections: args.connections,
        concurrency: args.connections,
        rate: None,
    };
    Ok(Report::new(
        setup,
        &recorder,
        last_done - run.phases.measure_start,
        None,
    ))
}

/// One connection's loop; returns what it recorded, when it stopped, and
/// the connection unless it broke.
async fn worker(
    mut conn: Conn,
    statements: Statements,
    run: Arc<Run>,
) -> (Recorder, Instant, Option<Conn>) {
    let mut recorder = Recorder::new();
    loop {
        let started = Instant::now();
        if started >= run.phases.end {
            return (recorder, started, Some(conn));
        }
        let outcome = call(&mut conn, &statements, &run).await;
        let latency = started.elapsed();
        let broken = matches!(&outcome, Err(Failure::Client(error)) if error.is_fatal());
        if started >= run.phases.measure_start {
            run.progress.count(outcome.is_ok());
            match &outcome {
                Ok(()) => recorder.success(latency),
                Err(failure) => recorder.failure(failure.reason()),
            }
        }
        // A lost connection is not reopened: the numbers would then measure
        // reconnecting. Its failure is in the report; the others go on.
        if broken {
            return (recorder, Instant::now(), None);
        }
    }
}

/// Why a call failed.
#[derive(Debug)]
enum Failure {
    /// The database or the driver reported an error.
    Client(mysql_async::Error),
    /// The statements ran but did not return what the service would.
    WrongResult,
}

impl From<mysql_async::Error> for Failure {
    fn from(error: mysql_async::Error) -> Self {
        Self::Client(error)
    }
}

impl Failure {
    /// How the failure is counted in the report.
    fn reason(&self) -> &'static str {
        match self {
            Self::WrongResult => "wrong_result",
            Self::Client(mysql_async::Error::Server(error)) => match error.code {
                1205 => "lock_wait_timeout",
                1213 => "deadlock",
                _ => "database_error",
            },
            Self::Client(error) if error.is_fatal() => "connection_error",
            Self::Client(_) => "client_error",
        }
    }
}

/// One RPC's statements, judged as the service would judge its result.
async fn call(conn: &mut Conn, statements: &Statements, run: &Run) -> Result<(), Failure> {
    let judged = |right: bool| check(right).map_err(|_| Failure::WrongResult);
    match run.rpc {
        Rpc::Create | Rpc::CreateWithRequestId => {
            let n = run.created.fetch_add(1, Ordering::Relaxed);
            let name = workload::bench_name(n);
            let request_id =
                (run.rpc == Rpc::CreateWithRequestId).then(|| uuid::Uuid::new_v4().to_string());
            conn.query_drop("BEGIN").await?;
            let created = create(conn, statements, &name, request_id.as_deref()).await;
            match created {
                Ok(()) => Ok(conn.query_drop("COMMIT").await?),
                Err(failure) => {
                    if !matches!(&failure, Failure::Client(error) if error.is_fatal()) {
                        conn.query_drop("ROLLBACK").await.ok();
                    }
                    Err(failure)
                }
            }
        }
        Rpc::Get => {
            let id = i64::from(run.keys.pick()) + 1;
            let rows: Vec<Row> = conn.exec(&statements.get, (id, 1_i64)).await?;
            judged(rows.len() == 1 && rows[0].get::<i64, _>(0) == Some(id))
        }
        // The service returns min(rows, 10) users: a full page when at
        // least 10 rows came back.
        Rpc::FindName => {
            let name = workload::name(run.keys.pick());
            let rows: Vec<Row> = conn.exec(&statements.find_name, (name, FIND_LIMIT)).await?;
            judged(rows.len() >= PAGE_SIZE as usize)
        }
        // A full page and a next-page token: all 11 rows.
        Rpc::FindPrefix => {
            let (low, high) = workload::prefix_bounds(run.keys.pick());
            let rows: Vec<Row> = conn
                .exec(&statements.find_prefix, (low, high, FIND_LIMIT))
                .await?;
            judged(rows.len() as i64 == FIND_LIMIT)
        }
    }
}

/// A create inside the open transaction: the user, returned by its
/// insert, with a request id the request id recorded, then its change
/// event, tagged with the call's request id (the server makes one up for
/// a call that brings none).
async fn create(
    conn: &mut Conn,
    statements: &Statements,
    name: &str,
    request_id: Option<&str>,
) -> Result<(), Failure> {
    // The server's clock: UTC, to the microsecond.
    let now = datetime(users_server::models::now());
    let row: Row = conn
        .exec_first(&statements.insert_user, (name, now.clone(), now.clone()))
        .await?
        .ok_or(Failure::WrongResult)?;
    let (Some(id), Some(revision)) = (row.get::<i64, _>(0), row.get::<i64, _>(4)) else {
        return Err(Failure::WrongResult);
    };
    let call = match request_id {
        Some(request_id) => {
            conn.exec_drop(
                &statements.insert_request,
                (request_id, name, id, now.clone()),
            )
            .await?;
            request_id.to_owned()
        }
        None => uuid::Uuid::new_v4().to_string(),
    };
    let created = users_server::models::EventKind::Created.code();
    conn.exec_drop(
        &statements.insert_event,
        (
            created,
            id,
            name,
            now.clone(),
            now.clone(),
            revision,
            now,
            call,
        ),
    )
    .await?;
    Ok(())
}

/// `time` as the driver sends a DATETIME, as diesel binds it.
fn datetime(time: NaiveDateTime) -> Value {
    let narrow = |n: u32| u8::try_from(n).unwrap_or(u8::MAX);
    Value::Date(
        u16::try_from(time.year()).unwrap_or(0),
        narrow(time.month()),
        narrow(time.day()),
        narrow(time.hour()),
        narrow(time.minute()),
        narrow(time.second()),
        time.nanosecond() / 1000,
    )
}

/// `url` without its password, for messages.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((user, host)) if user.contains(':') => {
            let user = user.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use diesel::mysql::{Mysql, MysqlQueryBuilder};
    use diesel::prelude::*;
    use diesel::query_builder::{QueryBuilder, QueryFragment};
    use users_server::db::schema::{create_requests, user_events, users};
    use users_server::domain::UserName;
    use users_server::models::{NewUser, User};

    use super::*;

    /// The SQL diesel sends for `query` on MySQL, and whether it keeps it
    /// prepared.
    fn sql_of(query: &impl QueryFragment<Mysql>) -> (String, bool) {
        let mut builder = MysqlQueryBuilder::new();
        query.to_sql(&mut builder, &Mysql).unwrap();
        let cached = query.is_safe_to_cache_prepared(&Mysql).unwrap();
        (builder.finish(), cached)
    }

    /// The ceiling's SQL is users-server's, built as `models::user` and
    /// `models::create_request` build it.
    #[test]
    fn the_statements_are_the_servers() {
        let now = users_server::models::now();
        // As `User::find` builds them: the limit, boxed, the filters, the order.
        let find_name = users::table
            .select(User::as_select())
            .limit(FIND_LIMIT)
            .into_boxed()
            .filter(users::name.eq("user-00001"))
            .order(users::id.asc());
        let find_prefix = users::table
            .select(User::as_select())
            .limit(FIND_LIMIT)
            .into_boxed()
            .filter(users::name.ge("user-0001"))
            .filter(users::name.lt("user-0002"))
            .order(users::id.asc());
        let get = users::table.find(1_i64).select(User::as_select()).limit(1);
        let name = UserName::parse("name", "bench-1".into()).unwrap();
        let new_user = NewUser::new(name, now);
        let insert_user = new_user.insert_returning();
        // As `Event::record_as_written` builds it.
        let insert_event = diesel::insert_into(user_events::table).values((
            user_events::kind.eq(1_i16),
            user_events::user_id.eq(1_i64),
            user_events::name.eq("bench-1"),
            user_events::create_time.eq(now),
            user_events::update_time.eq(now),
            user_events::revision.eq(1_i64),
            user_events::event_time.eq(now),
            user_events::request_id.eq("r"),
        ));
        // One request id: a single-row INSERT (`CreateRequest::record_all`).
        let insert_request = diesel::insert_into(create_requests::table).values((
            create_requests::request_id.eq("r"),
            create_requests::name.eq("bench-1"),
            create_requests::user_id.eq(1_i64),
            create_requests::create_time.eq(now),
        ));
        assert_eq!(sql_of(&find_name), (FIND_NAME.to_owned(), true));
        assert_eq!(sql_of(&find_prefix), (FIND_PREFIX.to_owned(), true));
        assert_eq!(sql_of(&get), (GET.to_owned(), true));
        assert_eq!(sql_of(&insert_user), (INSERT_USER.to_owned(), true));
        assert_eq!(sql_of(&insert_request), (INSERT_REQUEST.to_owned(), true));
        assert_eq!(sql_of(&insert_event), (INSERT_EVENT.to_owned(), true));
    }

    #[test]
    fn datetimes_keep_their_microseconds() {
        let time = chrono::NaiveDate::from_ymd_opt(2026, 11, 26)
            .unwrap()
            .and_hms_micro_opt(4, 5, 6, 789_012)
            .unwrap();
        assert_eq!(datetime(time), Value::Date(2026, 11, 26, 4, 5, 6, 789_012));
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redacted("mysql://root:secret@127.0.0.1:3306/db"),
            "mysql://root:***@127.0.0.1:3306/db"
        );
        assert_eq!(
            redacted("mysql://root@127.0.0.1:3306/db"),
            "mysql://root@127.0.0.1:3306/db"
        );
    }
}
