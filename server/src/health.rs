//! What `grpc.health.v1.Health` reports: SERVING while the database
//! answers, NOT_SERVING while it does not, and NOT_SERVING for good from
//! the moment shutdown begins.

use std::time::Duration;

use tonic_health::{ServingStatus, server::HealthReporter};
use users_client::pb::user_service_server::UserServiceServer;

use crate::db::Database;
use crate::service::UsersService;

/// Reports the service's health under both names health checkers ask for:
/// `""` (the server) and `users.v1.UserService`.
#[derive(Debug, Clone)]
pub struct Health {
    reporter: HealthReporter,
}

impl Health {
    /// Reports through `reporter`.
    pub fn new(reporter: HealthReporter) -> Self {
        Self { reporter }
    }

    /// Reports `status` for the server and the users service.
    pub async fn set(&self, status: ServingStatus) {
        self.reporter.set_service_status("", status).await;
        match status {
            ServingStatus::Serving => {
                self.reporter
                    .set_serving::<UserServiceServer<UsersService>>()
                    .await;
            }
            _ => {
                self.reporter
                    .set_not_serving::<UserServiceServer<UsersService>>()
                    .await;
            }
        }
    }

    /// Asks the database for an answer every `interval`, and reports
    /// SERVING when it answers, NOT_SERVING when it does not (within the
    /// interval, or at most 5 s), logging each change. Runs until dropped.
    pub async fn follow_database(self, db: Database, interval: Duration) {
        let patience = interval.min(Duration::from_secs(5));
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut serving = true;
        loop {
            ticks.tick().await;
            let answered = match tokio::time::timeout(patience, db.ping()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(error.to_string()),
                Err(_) => Err(format!("no answer within {patience:?}")),
            };
            match (serving, answered) {
                (true, Err(error)) => {
                    tracing::warn!(%error, "the database does not answer: health is NOT_SERVING");
                    self.set(ServingStatus::NotServing).await;
                    serving = false;
                }
                (false, Ok(())) => {
                    tracing::info!("the database answers again: health is SERVING");
                    self.set(ServingStatus::Serving).await;
                    serving = true;
                }
                _ => {}
            }
        }
    }
}
