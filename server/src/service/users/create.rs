//! CreateUser and BatchCreateUsers, safe to retry under request ids.

use std::{collections::HashMap, sync::Arc, time::Duration};

use chrono::{NaiveDateTime, TimeDelta};
use diesel::result::{DatabaseErrorKind, Error as QueryError};
use users_client::pb;

use super::UsersService;
use crate::db::{Database, DbError, Tx};
use crate::domain::{Invalid, RequestId, UserName};
use crate::error::ApiError;
use crate::models::{CreateRequest, Event, EventKind, NewUser, User, now};
use crate::service::request_id;

/// Most entries in one BatchCreateUsers.
const MAX_BATCH: usize = 1000;

/// Most reruns of a create that lost a race for a request id.
const MAX_RACE_RERUNS: usize = 16;

/// One user to create, validated.
#[derive(Debug, Clone)]
struct ToCreate {
    name: UserName,
    request_id: Option<RequestId>,
    /// Where it is in the request (`""`, `"requests[3]."`), for errors.
    field_prefix: String,
}

impl ToCreate {
    fn parse(field_prefix: String, request: pb::CreateUserRequest) -> Result<Self, Invalid> {
        Ok(Self {
            name: UserName::parse(&format!("{field_prefix}name"), request.name)?,
            request_id: RequestId::parse(
                &format!("{field_prefix}request_id"),
                &request.request_id,
            )?,
            field_prefix,
        })
    }

    fn reused(&self, request_id: &RequestId) -> ApiError {
        ApiError::RequestIdReused {
            field: format!("{}request_id", self.field_prefix),
            request_id: request_id.as_str().to_owned(),
        }
    }
}

impl UsersService {
    pub(super) async fn create_user_inner(
        &self,
        request: pb::CreateUserRequest,
    ) -> Result<pb::CreateUserResponse, ApiError> {
        let entry = ToCreate::parse(String::new(), request)?;
        let user = match entry.request_id.clone() {
            // Nothing to look up: one INSERT, a transaction of its own.
            None => {
                let new_user = NewUser::new(entry.name, now());
                let call = request_id::current();
                self.db
                    .write_statement(async move |mut tx| new_user.create(&mut tx, &call).await)
                    .await?
            }
            // Most request ids are new: create the user and remember the id
            // at once (one statement on PostgreSQL). Only if the id is known
            // already does the look-up-first transaction run.
            Some(request_id) => {
                // The name is kept for the look-up-first transaction.
                let new_user = NewUser::new(entry.name.clone(), now());
                let call = request_id::current();
                let first_try = self
                    .db
                    .write_statement(async move |mut tx| {
                        CreateRequest::create_user(&mut tx, &new_user, &request_id, &call).await
                    })
                    .await;
                match first_try {
                    Err(error) if is_unique_violation(&error) => {
                        let mut users = self.create_all(vec![entry]).await?;
                        users.pop().ok_or_else(|| {
                            ApiError::Internal(DbError::Query(QueryError::NotFound))
                        })?
                    }
                    first_try => first_try?,
                }
            }
        };
        self.events.committed();
        Ok(pb::CreateUserResponse {
            user: Some(user.into()),
        })
    }

    pub(super) async fn batch_create_users_inner(
        &self,
        request: pb::BatchCreateUsersRequest,
    ) -> Result<pb::BatchCreateUsersResponse, ApiError> {
        let count = request.requests.len();
        if !(1..=MAX_BATCH).contains(&count) {
            return Err(Invalid::new(
                "requests",
                "INVALID_BATCH_SIZE",
                format!("must hold 1 to {MAX_BATCH} entries (got {count})"),
            )
            .into());
        }
        let entries = request
            .requests
            .into_iter()
            .enumerate()
            .map(|(index, entry)| ToCreate::parse(format!("requests[{index}]."), entry))
            .collect::<Result<Vec<_>, _>>()?;
        // One request id twice in a batch: one user, if the names agree.
        let mut names = HashMap::new();
        for entry in &entries {
            if let Some(request_id) = &entry.request_id
                && **names.entry(request_id).or_insert(&entry.name) != entry.name
            {
                return Err(entry.reused(request_id));
            }
        }
        let users = self.create_all(entries).await?;
        self.events.committed();
        Ok(pb::BatchCreateUsersResponse {
            users: users.into_iter().map(Into::into).collect(),
        })
    }

    /// Creates `entries` in one transaction and returns their users in
    /// order: for an entry whose request id an earlier create remembers,
    /// that create's user; otherwise a new one.
    async fn create_all(&self, entries: Vec<ToCreate>) -> Result<Vec<User>, ApiError> {
        let entries = Arc::new(entries);
        let ttl = self.request_id_ttl;
        let call: Arc<str> = request_id::current().into();
        let attempt = || {
            let entries = Arc::clone(&entries);
            let call = Arc::clone(&call);
            self.db.write(async move |mut tx| {
                // Taken in the unit: a run after a conflict is later.
                let now = now();
                create_in(&mut tx, &entries, now, cutoff(now, ttl), &call).await
            })
        };
        // A create that races ours under the same request id may commit
        // first: ours then fails on the request id's key, and runs again to
        // find the other's user. Each run sees the racer it lost to, so
        // reruns end; the bound is for safety.
        let mut reruns = 0;
        loop {
            match attempt().await {
                Err(error) if is_unique_violation(&error) && reruns < MAX_RACE_RERUNS => {
                    reruns += 1;
                }
                outcome => return outcome?,
            }
        }
    }
}

/// Whether a write failed on a unique key: in a create, the request id's.
fn is_unique_violation(error: &DbError) -> bool {
    matches!(
        error,
        DbError::Query(QueryError::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            _
        ))
    )
}

/// The body of [`UsersService::create_all`]'s transaction. It refuses
/// (`Ok(Err(..))`) only before it writes anything, so that a refusal
/// commits nothing.
async fn create_in(
    tx: &mut Tx<'_>,
    entries: &[ToCreate],
    now: NaiveDateTime,
    cutoff: NaiveDateTime,
    call: &str,
) -> diesel::QueryResult<Result<Vec<User>, ApiError>> {
    // What earlier creates remember of these request ids.
    let request_ids: Vec<&str> = entries
        .iter()
        .filter_map(|entry| entry.request_id.as_ref().map(RequestId::as_str))
        .collect();
    let mut remembered: HashMap<String, CreateRequest> = if request_ids.is_empty() {
        HashMap::new()
    } else {
        CreateRequest::find(tx, &request_ids)
            .await?
            .into_iter()
            .collect()
    };
    let expired: Vec<String> = remembered
        .extract_if(|_, earlier| earlier.create_time < cutoff)
        .map(|(request_id, _)| request_id)
        .collect();
    for entry in entries {
        if let Some(request_id) = &entry.request_id
            && let Some(earlier) = remembered.get(request_id.as_str())
            && earlier.name != entry.name.as_str()
        {
            return Ok(Err(entry.reused(request_id)));
        }
    }
    let earlier_ids: Vec<i64> = remembered.values().map(|earlier| earlier.user_id).collect();
    let earlier_users: HashMap<i64, User> = if earlier_ids.is_empty() {
        HashMap::new()
    } else {
        User::get_many(tx, &earlier_ids)
            .await?
            .into_iter()
            .map(|user| (user.id, user))
            .collect()
    };
    if let Some(gone) = earlier_ids
        .iter()
        .find(|id| !earlier_users.contains_key(id))
    {
        return Ok(Err(ApiError::CreatedUserDeleted { id: *gone }));
    }

    // Now write. Rows keyed by request id are written in request id order,
    // whatever the order of the entries: two batches sharing request ids
    // then wait for each other's keys in the same order, and cannot
    // deadlock.
    let mut expired = expired;
    expired.sort_unstable();
    for request_id in &expired {
        CreateRequest::forget(tx, request_id).await?;
    }
    // What each entry gets: the user an earlier create made, or one of the
    // users inserted now. Entries sharing a new request id share its user.
    let mut new_users = Vec::new();
    let mut made_here: HashMap<&str, usize> = HashMap::new();
    let mut to_record: Vec<(&RequestId, usize)> = Vec::new();
    let mut sources = Vec::with_capacity(entries.len());
    for entry in entries {
        let known = entry
            .request_id
            .as_ref()
            .and_then(|request_id| remembered.get(request_id.as_str()))
            .and_then(|earlier| earlier_users.get(&earlier.user_id).cloned());
        if let Some(user) = known {
            sources.push(Source::Earlier(user));
            continue;
        }
        if let Some(request_id) = &entry.request_id
            && let Some(&index) = made_here.get(request_id.as_str())
        {
            sources.push(Source::New(index));
            continue;
        }
        let index = new_users.len();
        new_users.push(NewUser::new(entry.name.clone(), now));
        if let Some(request_id) = &entry.request_id {
            made_here.insert(request_id.as_str(), index);
            to_record.push((request_id, index));
        }
        sources.push(Source::New(index));
    }
    let inserted = NewUser::insert_all(tx, &new_users).await?;
    let mut to_record: Vec<_> = to_record
        .into_iter()
        .map(|(request_id, index)| (request_id, new_users[index].user_name(), inserted[index].id))
        .collect();
    to_record.sort_unstable_by_key(|(request_id, _, _)| request_id.as_str());
    CreateRequest::record_all(tx, &to_record, now).await?;
    Event::record(tx, EventKind::Created, &inserted, now, call).await?;
    NewUser::confirm_stored(tx, &inserted).await?;
    let users = sources
        .into_iter()
        .map(|source| match source {
            Source::Earlier(user) => user,
            Source::New(index) => inserted[index].clone(),
        })
        .collect();
    Ok(Ok(users))
}

/// Where an entry of a batch gets its user from.
enum Source {
    /// The create its request id was remembered for.
    Earlier(User),
    /// The users inserted now, at this index.
    New(usize),
}

/// Request ids remembered since before this are forgotten.
fn cutoff(now: NaiveDateTime, ttl: Duration) -> NaiveDateTime {
    TimeDelta::from_std(ttl)
        .ok()
        .and_then(|ttl| now.checked_sub_signed(ttl))
        .unwrap_or(NaiveDateTime::MIN)
}

/// Deletes expired request ids now and then, for as long as it runs.
/// Lookups ignore expired ids anyway; this only keeps the table small.
pub async fn forget_expired_request_ids(db: Database, ttl: Duration) {
    let every = (ttl / 10).clamp(Duration::from_secs(1), Duration::from_secs(600));
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let cutoff = cutoff(now(), ttl);
        let purged = db
            .write_statement(async move |mut tx| CreateRequest::purge(&mut tx, cutoff).await)
            .await;
        match purged {
            Ok(0) => {}
            Ok(count) => tracing::debug!(count, "forgot expired request ids"),
            Err(error) => tracing::warn!(%error, "cannot forget expired request ids"),
        }
    }
}
