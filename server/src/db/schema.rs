//! The tables as diesel sees them, shared by every backend.
//!
//! Each backend's migrations in `migrations/<backend>/` must produce columns
//! of these types (diesel's `print-schema` would name SQLite's `INTEGER` and
//! `TEXT` differently, which is why this file is kept by hand). The
//! end-to-end tests run every query against every backend, so a mismatch
//! fails there.

diesel::table! {
    users (id) {
        id -> BigInt,
        name -> Text,
        /// UTC.
        create_time -> Timestamp,
        /// UTC.
        update_time -> Timestamp,
        /// Starts at 1, incremented by every write; the user's etag.
        revision -> BigInt,
    }
}

diesel::table! {
    /// Request ids of recent creates (see the migration).
    create_requests (request_id) {
        request_id -> Text,
        name -> Text,
        user_id -> BigInt,
        /// UTC.
        create_time -> Timestamp,
    }
}

diesel::table! {
    /// The outbox of change events (see the migration).
    user_events (id) {
        /// Insertion order (on PostgreSQL and SQLite, where it is
        /// generated, the sequence itself).
        id -> BigInt,
        /// Commit order: given at insert on PostgreSQL and SQLite; on
        /// MySQL, `None` until numbered after the commit.
        sequence -> Nullable<BigInt>,
        /// [`EventKind`](crate::models::EventKind) as a number.
        kind -> SmallInt,
        user_id -> BigInt,
        name -> Text,
        /// UTC.
        create_time -> Timestamp,
        /// UTC.
        update_time -> Timestamp,
        revision -> BigInt,
        /// UTC.
        event_time -> Timestamp,
        request_id -> Text,
    }
}

diesel::table! {
    /// Named positions in the event log (see the migration).
    user_event_cursors (name) {
        name -> Text,
        sequence -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(users, user_events, user_event_cursors);
