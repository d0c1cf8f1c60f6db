//! The database's metrics: gauges of its pools, read when `/metrics` is
//! scraped (a call pays nothing for them), and the transaction retries,
//! counted where they happen ([`retry`](super::retry)).

use std::fmt;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};

use super::{Database, Pools, replicas::ReadReplicas};

impl Database {
    /// Adds the pools' gauges and the retry counters to `registry`.
    ///
    /// - `users_db_connections{pool}`: connections open, per pool:
    ///   `exclusive` (PostgreSQL transactions), `pipelined` (PostgreSQL
    ///   one-statement units), `readers` (SQLite);
    /// - `users_db_connections_in_use{pool}`: of those, lent to a unit of
    ///   work (`exclusive`, `readers`);
    /// - `users_db_pool_waiting{pool}`: callers waiting for a connection
    ///   (`exclusive`, `readers`);
    /// - `users_db_pipelined_turns_in_use`: statements in flight on the
    ///   pipelined connections (PostgreSQL);
    /// - `users_db_sqlite_writer_queue`: write units waiting for SQLite's
    ///   writer;
    /// - `users_db_transaction_retries_total{reason}`;
    /// - with read replicas: `users_db_reads_total{server}`, reads served by
    ///   `primary` or by each replica (its URL, password masked);
    ///   `users_db_read_replica_serving{replica}`, 1 while a replica serves
    ///   reads; `users_db_read_replica_lag_seconds{replica}`, how far behind
    ///   the primary it was at its last check (absent while it is down).
    pub fn register_metrics(&self, registry: &mut Registry) {
        self.retried.register(registry);
        registry.register_collector(Box::new(PoolGauges(self.pools.clone())));
    }
}

/// Reads the pools at each scrape.
#[derive(Debug)]
struct PoolGauges(Pools);

/// One gauge's values, by the pool they belong to.
type ByPool = [(&'static str, u64)];

impl Collector for PoolGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        match &self.0 {
            Pools::Postgres {
                pipelined,
                exclusive,
                replicas,
            } => {
                if let Some(replicas) = replicas {
                    replica_metrics(&mut encoder, replicas)?;
                }
                let exclusive = exclusive.reading();
                by_pool(
                    &mut encoder,
                    CONNECTIONS,
                    &[
                        ("exclusive", exclusive.open.into()),
                        ("pipelined", count(pipelined.open())),
                    ],
                )?;
                by_pool(
                    &mut encoder,
                    IN_USE,
                    &[("exclusive", exclusive.in_use.into())],
                )?;
                by_pool(
                    &mut encoder,
                    WAITING,
                    &[("exclusive", exclusive.waiting.into())],
                )?;
                gauge(
                    &mut encoder,
                    "users_db_pipelined_turns_in_use",
                    "Statements in flight on the shared, pipelined PostgreSQL connections.",
                    count(pipelined.turns_in_use()),
                )
            }
            Pools::Sqlite { readers, writer } => {
                let readers = readers.reading();
                by_pool(
                    &mut encoder,
                    CONNECTIONS,
                    &[("readers", readers.open.into())],
                )?;
                by_pool(&mut encoder, IN_USE, &[("readers", readers.in_use.into())])?;
                by_pool(
                    &mut encoder,
                    WAITING,
                    &[("readers", readers.waiting.into())],
                )?;
                gauge(
                    &mut encoder,
                    "users_db_sqlite_writer_queue",
                    "Write units waiting for SQLite's one writer to take them.",
                    count(writer.queued()),
                )
            }
            Pools::Mysql { pool, .. } => {
                let pool = pool.reading();
                by_pool(&mut encoder, CONNECTIONS, &[("mysql", pool.open.into())])?;
                by_pool(&mut encoder, IN_USE, &[("mysql", pool.in_use.into())])?;
                by_pool(&mut encoder, WAITING, &[("mysql", pool.waiting.into())])
            }
        }
    }
}

fn replica_metrics(encoder: &mut DescriptorEncoder, replicas: &ReadReplicas) -> fmt::Result {
    let readings: Vec<_> = replicas.readings().collect();
    let mut reads = encoder.encode_descriptor(
        "users_db_reads",
        "Reads served, by the server that served them: the primary or a read replica.",
        None,
        MetricType::Counter,
    )?;
    ConstCounter::new(replicas.primary_reads())
        .encode(reads.encode_family(&[("server", "primary")])?)?;
    for standby in &readings {
        ConstCounter::new(standby.reads)
            .encode(reads.encode_family(&[("server", standby.name)])?)?;
    }
    let mut serving = encoder.encode_descriptor(
        "users_db_read_replica_serving",
        "1 while a read replica serves reads: up, and not further behind than --max-replica-lag.",
        None,
        MetricType::Gauge,
    )?;
    for standby in &readings {
        ConstGauge::new(u64::from(standby.serving))
            .encode(serving.encode_family(&[("replica", standby.name)])?)?;
    }
    let mut lag = encoder.encode_descriptor(
        "users_db_read_replica_lag_seconds",
        "How far behind the primary a read replica was at its last check.",
        None,
        MetricType::Gauge,
    )?;
    for standby in &readings {
        if let Some(behind) = standby.lag {
            ConstGauge::new(behind.as_secs_f64())
                .encode(lag.encode_family(&[("replica", standby.name)])?)?;
        }
    }
    Ok(())
}

/// A gauge's name and help.
type Described = (&'static str, &'static str);

const CONNECTIONS: Described = (
    "users_db_connections",
    "Database connections open, by pool.",
);
const IN_USE: Described = (
    "users_db_connections_in_use",
    "Database connections lent to a unit of work, by pool.",
);
const WAITING: Described = (
    "users_db_pool_waiting",
    "Callers waiting for a database connection, by pool.",
);

fn by_pool(
    encoder: &mut DescriptorEncoder,
    (name, help): Described,
    values: &ByPool,
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (pool, value) in values {
        let labels = [("pool", *pool)];
        ConstGauge::new(*value).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let gauge = ConstGauge::new(value);
    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}
