//! Stored users as wire users.

use chrono::NaiveDateTime;
use users_client::pb;

use crate::models::User;

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
