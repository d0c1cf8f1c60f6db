//! The `users` table.

use chrono::{NaiveDateTime, SubsecRound, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::{Tx, on_backend, schema::users};
use crate::domain::{UserFilter, UserName};

/// A stored user.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct User {
    /// Assigned by the database; grows in creation order.
    pub id: i64,
    /// Exactly as given.
    pub name: String,
    /// UTC.
    pub create_time: NaiveDateTime,
    /// UTC.
    pub update_time: NaiveDateTime,
}

/// A user about to be stored.
#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    name: &'a str,
    create_time: NaiveDateTime,
    update_time: NaiveDateTime,
}

impl<'a> NewUser<'a> {
    /// A user named `name`, created now.
    pub fn new(name: &'a UserName) -> Self {
        // Microseconds: the finest both backends store, so what we return is
        // exactly what a later read returns.
        let now = Utc::now().naive_utc().trunc_subsecs(6);
        Self {
            name: name.as_str(),
            create_time: now,
            update_time: now,
        }
    }

    /// Stores the user and returns the stored row.
    pub async fn insert(&self, tx: &mut Tx<'_>) -> QueryResult<User> {
        on_backend!(tx, |conn| {
            diesel::insert_into(users::table)
                .values(self)
                .returning(User::as_returning())
                .get_result(conn)
                .await
        })
    }
}

impl User {
    /// Up to `limit` users matching `filter` with an id above `after_id`, in
    /// id order.
    pub async fn find(
        tx: &mut Tx<'_>,
        filter: &UserFilter,
        after_id: Option<i64>,
        limit: i64,
    ) -> QueryResult<Vec<User>> {
        on_backend!(tx, |conn| {
            let mut query = users::table
                .select(User::as_select())
                .order(users::id)
                .limit(limit)
                .into_boxed();
            if let Some(name) = &filter.name {
                query = query.filter(users::name.eq(name.as_str()));
            }
            if let Some(prefix) = &filter.name_prefix {
                query = query.filter(
                    users::name
                        .like(like_prefix_pattern(prefix.as_str()))
                        .escape(LIKE_ESCAPE),
                );
            }
            if let Some(after_id) = after_id {
                query = query.filter(users::id.gt(after_id));
            }
            query.load(conn).await
        })
    }
}

const LIKE_ESCAPE: char = '\\';

/// `prefix%`, with the prefix's own `%`, `_` and escape characters escaped
/// so that they match literally.
fn like_prefix_pattern(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | LIKE_ESCAPE) {
            pattern.push(LIKE_ESCAPE);
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_in_prefixes_are_escaped() {
        assert_eq!(like_prefix_pattern("Jo"), "Jo%");
        assert_eq!(like_prefix_pattern("50%_off"), r"50\%\_off%");
        assert_eq!(like_prefix_pattern(r"a\b"), r"a\\b%");
    }
}
