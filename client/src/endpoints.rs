//! [`Endpoints`]: the servers a client spreads its calls over, and which of
//! them are away.
//!
//! Not tonic's `Channel::balance_list`: its balancer keeps sending calls to
//! a server that has gone away (each fails with "Connection refused", see
//! grpc-rust issue 643), and it cannot tell a call that never left from one
//! lost in flight, which decides whether a write may be sent again. Here
//! each server has a channel of its own (which reconnects by itself), calls
//! go to the less busy of two servers picked at random, and a server whose
//! connection fails is left out for a while, longer each time in a row.

use std::{
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use rand::Rng;
use tonic::{
    metadata::AsciiMetadataValue, service::interceptor::InterceptedService, transport::Channel,
};

use crate::pb::user_service_client::UserServiceClient;

/// The generated stub on one server's channel, with the client's
/// credentials added to every call.
pub type RawClient = UserServiceClient<InterceptedService<Channel, Credentials>>;

/// How long a server whose connection failed is left out: this, doubled
/// for each failure in a row, up to [`MAX_EJECTION`].
const FIRST_EJECTION: Duration = Duration::from_millis(250);
const MAX_EJECTION: Duration = Duration::from_secs(30);

/// What every call carries: the bearer token, if the client has one.
#[derive(Clone, Default)]
pub struct Credentials {
    authorization: Option<AsciiMetadataValue>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let token = self.authorization.as_ref().map(|_| "Bearer <hidden>");
        f.debug_struct("Credentials")
            .field("authorization", &token)
            .finish()
    }
}

impl Credentials {
    /// `authorization: Bearer <token>` on every call, marked sensitive so
    /// that HTTP/2 header compression never indexes it.
    pub(crate) fn bearer(mut value: AsciiMetadataValue) -> Self {
        value.set_sensitive(true);
        Self {
            authorization: Some(value),
        }
    }
}

impl tonic::service::Interceptor for Credentials {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// The servers of one client, shared by its clones.
#[derive(Debug)]
pub struct Endpoints {
    servers: Box<[Server]>,
}

#[derive(Debug)]
struct Server {
    stub: RawClient,
    /// Calls sent to it and not yet answered.
    in_flight: AtomicUsize,
    /// Connection failures in a row, and until when it is left out.
    health: Mutex<Health>,
}

#[derive(Debug, Default)]
struct Health {
    failures: u32,
    ejected_until: Option<Instant>,
}

impl Endpoints {
    /// One server per channel, in the order given. `away` marks the ones
    /// that could not be reached at connect time, so the first calls go to
    /// the others.
    pub fn new(channels: Vec<(Channel, bool)>, credentials: &Credentials) -> Self {
        assert!(!channels.is_empty(), "a client needs at least one server");
        let now = Instant::now();
        let servers = channels
            .into_iter()
            .map(|(channel, away)| Server {
                stub: UserServiceClient::with_interceptor(channel, credentials.clone()),
                in_flight: AtomicUsize::new(0),
                health: Mutex::new(match away {
                    true => Health {
                        failures: 1,
                        ejected_until: Some(now + FIRST_EJECTION),
                    },
                    false => Health::default(),
                }),
            })
            .collect();
        Self { servers }
    }

    /// The server for the next call: of two servers that are not left out,
    /// the one with fewer calls in flight (power of two choices); if all
    /// are left out, the one whose time is up first, since a call must go
    /// somewhere.
    pub fn pick(&self) -> Picked<'_> {
        let now = Instant::now();
        let available: Vec<usize> = (0..self.servers.len())
            .filter(|&index| self.servers[index].is_available(now))
            .collect();
        let index = match available.as_slice() {
            [] => (0..self.servers.len())
                .min_by_key(|&index| self.servers[index].ejected_until())
                .expect("at least one server"),
            [only] => *only,
            candidates => {
                let mut rng = rand::rng();
                let first = rng.random_range(0..candidates.len());
                let second = (first + rng.random_range(1..candidates.len())) % candidates.len();
                let load = |index: usize| self.servers[index].in_flight.load(Ordering::Relaxed);
                let (a, b) = (candidates[first], candidates[second]);
                if load(b) < load(a) { b } else { a }
            }
        };
        let server = &self.servers[index];
        server.in_flight.fetch_add(1, Ordering::Relaxed);
        Picked { server }
    }
}

impl Server {
    fn is_available(&self, now: Instant) -> bool {
        self.ejected_until().is_none_or(|until| until <= now)
    }

    fn ejected_until(&self) -> Option<Instant> {
        self.health().ejected_until
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A server chosen for one call; counts as in flight until dropped.
#[derive(Debug)]
pub struct Picked<'a> {
    server: &'a Server,
}

impl Picked<'_> {
    /// Its stub (a cheap clone of the channel handle).
    pub fn stub(&self) -> RawClient {
        self.server.stub.clone()
    }

    /// The call got an answer from the server: it is back, if it was away.
    pub fn answered(&self) {
        let mut health = self.server.health();
        if health.failures != 0 {
            *health = Health::default();
        }
    }

    /// The connection to the server failed or broke: leave it out for a
    /// while, twice as long as last time if it failed then too.
    pub fn connection_failed(&self) {
        let mut health = self.server.health();
        let doublings = health.failures.min(16);
        health.failures = health.failures.saturating_add(1);
        let ejection = FIRST_EJECTION
            .saturating_mul(1 << doublings)
            .min(MAX_EJECTION);
        health.ejected_until = Some(Instant::now() + ejection);
    }
}

impl Drop for Picked<'_> {
    fn drop(&mut self) {
        self.server.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(count: usize) -> Endpoints {
        let channels = (0..count)
            .map(|port| {
                let channel = tonic::transport::Endpoint::from_shared(format!(
                    "http://127.0.0.1:{}",
                    port + 1
                ))
                .unwrap()
                .connect_lazy();
                (channel, false)
            })
            .collect();
        Endpoints::new(channels, &Credentials::default())
    }

    fn index(endpoints: &Endpoints, picked: &Picked<'_>) -> usize {
        endpoints
            .servers
            .iter()
            .position(|server| std::ptr::eq(server, picked.server))
            .unwrap()
    }

    #[tokio::test]
    async fn calls_go_to_the_less_busy_server() {
        let endpoints = endpoints(2);
        let busy = endpoints.pick();
        let busy_index = index(&endpoints, &busy);
        for _ in 0..20 {
            let next = endpoints.pick();
            assert_ne!(index(&endpoints, &next), busy_index);
        }
    }

    #[tokio::test]
    async fn a_failed_server_is_left_out_until_its_time_is_up() {
        let endpoints = endpoints(3);
        let failed = endpoints.pick();
        let failed_index = index(&endpoints, &failed);
        failed.connection_failed();
        drop(failed);
        for _ in 0..50 {
            assert_ne!(index(&endpoints, &endpoints.pick()), failed_index);
        }
        endpoints.servers[failed_index].health().ejected_until = Some(Instant::now());
        let back = (0..200).any(|_| index(&endpoints, &endpoints.pick()) == failed_index);
        assert!(back, "the server is picked again once its time is up");
    }

    #[tokio::test]
    async fn failures_in_a_row_leave_a_server_out_longer_and_an_answer_resets_them() {
        let endpoints = endpoints(1);
        let picked = endpoints.pick();
        let ejection =
            |picked: &Picked<'_>| picked.server.ejected_until().unwrap() - Instant::now();
        picked.connection_failed();
        let first = ejection(&picked);
        picked.connection_failed();
        picked.connection_failed();
        let third = ejection(&picked);
        assert!(
            first <= FIRST_EJECTION && third > FIRST_EJECTION * 3,
            "{first:?} {third:?}"
        );
        for _ in 0..20 {
            picked.connection_failed();
        }
        assert!(ejection(&picked) <= MAX_EJECTION);
        picked.answered();
        assert!(picked.server.ejected_until().is_none());
    }

    #[tokio::test]
    async fn with_every_server_left_out_the_one_back_first_is_picked() {
        let endpoints = endpoints(2);
        endpoints.servers[0].health().ejected_until = Some(Instant::now() + MAX_EJECTION);
        endpoints.servers[1].health().ejected_until = Some(Instant::now() + FIRST_EJECTION);
        assert_eq!(index(&endpoints, &endpoints.pick()), 1);
    }
}
