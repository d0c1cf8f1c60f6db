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
