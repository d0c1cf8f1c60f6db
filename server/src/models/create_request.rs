//! The `create_requests` table: which user a recent create's request id
//! made, so that a retry returns that user instead of making another.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::{Tx, on_backend, schema::create_requests};
use crate::domain::{RequestId, UserName};

/// A create remembered under its request id.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = create_requests)]
pub struct CreateRequest {
    /// The name that create asked for.
    pub name: String,
    /// The user it created.
    pub user_id: i64,
    /// When (UTC); the request id is forgotten some time after.
    pub create_time: NaiveDateTime,
}

impl CreateRequest {
    /// The create remembered under each of `request_ids` that has one,
    /// with its request id.
    pub async fn find(
        tx: &mut Tx<'_>,
        request_ids: &[&str],
    ) -> QueryResult<Vec<(String, CreateRequest)>> {
        on_backend!(tx, |conn| {
            create_requests::table
                .filter(create_requests::request_id.eq_any(request_ids))
                .select((create_requests::request_id, CreateRequest::as_select()))
                .load(conn)
                .await
        })
    }

    /// Remembers that the create under `request_id` made `user_id`.
    pub async fn record(
        tx: &mut Tx<'_>,
        request_id: &RequestId,
        name: &UserName,
        user_id: i64,
        now: NaiveDateTime,
    ) -> QueryResult<()> {
        on_backend!(tx, |conn| {
            diesel::insert_into(create_requests::table)
                .values((
                    create_requests::request_id.eq(request_id.as_str()),
                    create_requests::name.eq(name.as_str()),
                    create_requests::user_id.eq(user_id),
                    create_requests::create_time.eq(now),
                ))
                .execute(conn)
                .await
        })?;
        Ok(())
    }

    /// Forgets `request_id` (one that has expired).
    pub async fn forget(tx: &mut Tx<'_>, request_id: &str) -> QueryResult<()> {
        on_backend!(tx, |conn| {
            diesel::delete(create_requests::table.find(request_id))
                .execute(conn)
                .await
        })?;
        Ok(())
    }

    /// Forgets every request id remembered since before `cutoff`; returns
    /// how many.
    pub async fn purge(tx: &mut Tx<'_>, cutoff: NaiveDateTime) -> QueryResult<usize> {
        on_backend!(tx, |conn| {
            diesel::delete(create_requests::table.filter(create_requests::create_time.lt(cutoff)))
                .execute(conn)
                .await
        })
    }
}
