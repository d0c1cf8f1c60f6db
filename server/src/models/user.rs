//! The `users` table.

use chrono::{NaiveDateTime, SubsecRound, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::{Tx, on_backend, schema::users};
use crate::domain::{NameMatch, UserName};

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
#[derive(Debug)]
pub struct NewUser {
    name: UserName,
    create_time: NaiveDateTime,
    update_time: NaiveDateTime,
}

impl NewUser {
    /// A user named `name`, created now.
    pub fn new(name: UserName) -> Self {
        // Microseconds: the finest both backends store, so what we return is
        // exactly what a later read returns.
        let now = Utc::now().naive_utc().trunc_subsecs(6);
        Self {
            name,
            create_time: now,
            update_time: now,
        }
    }

    /// Stores the user and returns the stored row.
    pub async fn insert(&self, tx: &mut Tx<'_>) -> QueryResult<User> {
        on_backend!(tx, |conn| {
            diesel::insert_into(users::table)
                .values(self.values())
                .returning(User::as_returning())
                .get_result(conn)
                .await
        })
    }

    /// The row as `column = value` pairs rather than an `Insertable`
    /// struct: diesel will not cache a prepared statement for a struct's
    /// insert (each column could be `DEFAULT`, changing the SQL), which
    /// costs PostgreSQL a parse on every call.
    fn values(&self) -> NewUserValues<'_> {
        (
            users::name.eq(self.name.as_str()),
            users::create_time.eq(self.create_time),
            users::update_time.eq(self.update_time),
        )
    }
}

type NewUserValues<'a> = (
    diesel::dsl::Eq<users::name, &'a str>,
    diesel::dsl::Eq<users::create_time, NaiveDateTime>,
    diesel::dsl::Eq<users::update_time, NaiveDateTime>,
);

impl User {
    /// Up to `limit` users whose names match, with ids above `after_id`, in
    /// id order.
    ///
    /// Each kind of match is its own fixed SQL statement, so that diesel
    /// caches it prepared (a boxed, dynamically built query would be
    /// prepared anew on every call), and the `(name, id)` index serves the
    /// filter and the order in one range scan.
    pub async fn find(
        tx: &mut Tx<'_>,
        names: &NameMatch<'_>,
        after_id: i64,
        limit: i64,
    ) -> QueryResult<Vec<User>> {
        on_backend!(tx, |conn| {
            let page = users::table
                .select(User::as_select())
                .filter(users::id.gt(after_id))
                .order(users::id)
                .limit(limit);
            match names {
                NameMatch::Any => page.load(conn).await,
                NameMatch::Exact(name) => page.filter(users::name.eq(name)).load(conn).await,
                NameMatch::Prefix {
                    from,
                    below: Some(below),
                } => {
                    page.filter(users::name.ge(from))
                        .filter(users::name.lt(below))
                        .load(conn)
                        .await
                }
                NameMatch::Prefix { from, below: None } => {
                    page.filter(users::name.ge(from)).load(conn).await
                }
                NameMatch::Nothing => Ok(Vec::new()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use diesel::query_builder::QueryFragment;

    use super::*;

    #[test]
    fn the_insert_is_a_statement_diesel_keeps_prepared() {
        let name = UserName::parse("name", "John".into()).unwrap();
        let new_user = NewUser::new(name);
        let insert = diesel::insert_into(users::table)
            .values(new_user.values())
            .returning(User::as_returning());
        assert_eq!(insert.is_safe_to_cache_prepared(&diesel::pg::Pg), Ok(true));
    }
}
