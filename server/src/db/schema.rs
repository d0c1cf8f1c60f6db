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
    }
}
