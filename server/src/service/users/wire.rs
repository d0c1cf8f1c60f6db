//! Stored users as wire users.

use chrono::NaiveDateTime;
use users_client::pb;

use crate::models::{Event, EventKind, User};

impl From<User> for pb::User {
    fn from(user: User) -> Self {
        Self {
            id: user.id,
            etag: user.etag().to_string(),
            name: user.name,
            create_time: Some(timestamp(user.create_time)),
            update_time: Some(timestamp(user.update_time)),
        }
    }
}

fn timestamp(utc: NaiveDateTime) -> prost_types::Timestamp {
    let utc = utc.and_utc();
    prost_types::Timestamp {
        seconds: utc.timestamp(),
        // Below 1e9 by construction, so it fits.
        nanos: i32::try_from(utc.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

impl From<&Event> for pb::WatchUsersResponse {
    fn from(event: &Event) -> Self {
        let kind = match event.kind {
            EventKind::Created => pb::watch_users_response::Kind::Created,
            EventKind::Updated => pb::watch_users_response::Kind::Updated,
            EventKind::Deleted => pb::watch_users_response::Kind::Deleted,
        };
        Self {
            sequence: event.sequence,
            kind: kind.into(),
            user: Some(event.user.clone().into()),
            event_time: Some(timestamp(event.event_time)),
            request_id: event.request_id.clone(),
        }
    }
}
