//! CreateUser: storing, validation, concurrency.

use std::{
    collections::HashSet,
    time::{Duration, SystemTime},
};

use futures_util::{TryStreamExt, future::join_all};
use users_client::{ClientError, FindUsers};
use users_server::db::Isolation;
use users_server::db::mysql::{ServerWrites, WriteCheck, establish};
use users_tests::{Backend, TestDatabase, spawn_app};

on_every_backend!(
    the_seed_scenario_creates_john_and_finds_him,
    names_are_stored_exactly_as_given,
    invalid_names_are_refused_with_invalid_argument_and_nothing_is_stored,
    hundreds_of_concurrent_creates_are_all_stored_exactly_once,
);

on_backend!(mariadb: Mysql; a_mariadb_outside_galera_hands_a_create_its_row_by_returning);

/// The test database, a MariaDB 10.5+ that is no Galera node, lets a
/// create take its row from `INSERT .. RETURNING` and skip the read-back
/// (a Galera node does not: `faults::galera`); every MySQL test's create
/// then goes that way.
async fn a_mariadb_outside_galera_hands_a_create_its_row_by_returning(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let server = ServerWrites::default();
    establish(&database.url(), Isolation::default(), &server)
        .await
        .unwrap();
    assert_eq!(server.check(), WriteCheck::Returning);
}

async fn the_seed_scenario_creates_john_and_finds_him(backend: Backend) {
    let app = spawn_app(backend).await;

    let john = app.client.create_user("John").await.unwrap();
    assert!(john.id > 0);
    assert_eq!(john.name, "John");
    assert_eq!(john.create_time, john.update_time);
    let age = SystemTime::now().duration_since(john.create_time).unwrap();
    assert!(age < Duration::from_secs(60), "created {age:?} ago");

    let found = app
        .client
        .find_users(&FindUsers::new().name("John"))
        .await
        .unwrap();
    assert_eq!(found.users, vec![john]);
    assert_eq!(found.next_page_token, None);
}

async fn names_are_stored_exactly_as_given(backend: Backend) {
    let app = spawn_app(backend).await;
    let names = [
        "Zoë Åström".to_owned(),
        "李小龙".to_owned(),
        "😀 emoji".to_owned(),
        "O'Brien \"Bob\"".to_owned(),
        "'; DROP TABLE users; --".to_owned(),
        "Robert'); DELETE FROM users WHERE ('1'='1".to_owned(),
        "  padded  ".to_owned(),
        r"back\slash %_".to_owned(),
        "é".repeat(256),
    ];
    for name in &names {
        let created = app.client.create_user(name.as_str()).await.unwrap();
        assert_eq!(&created.name, name);
        let found = app
            .client
            .find_users(&FindUsers::new().name(name.as_str()))
            .await
            .unwrap();
        assert_eq!(found.users, vec![created], "find by name {name:?}");
    }
    let everyone: Vec<_> = app
        .client
        .find_all_users(FindUsers::new())
        .try_collect()
        .await
        .unwrap();
    let stored: Vec<_> = everyone.into_iter().map(|user| user.name).collect();
    assert_eq!(stored, names);
}

async fn invalid_names_are_refused_with_invalid_argument_and_nothing_is_stored(backend: Backend) {
    let app = spawn_app(backend).await;
    let cases = [
        (String::new(), "name must not be empty"),
        (" \u{3000} ".to_owned(), "name must not be only whitespace"),
        (
            "a".repeat(257),
            "name is 257 characters long; at most 256 are allowed",
        ),
        (
            "nul\0inside".to_owned(),
            "name must not contain control characters (found U+0000 at character 4)",
        ),
        (
            "tab\there".to_owned(),
            "name must not contain control characters (found U+0009 at character 4)",
        ),
        ("line\n".to_owned(), "control characters (found U+000A"),
        ("del\u{7f}".to_owned(), "control characters (found U+007F"),
        ("c1\u{9b}".to_owned(), "control characters (found U+009B"),
    ];
    for (name, expected) in cases {
        match app.client.create_user(name.as_str()).await {
            Err(ClientError::InvalidArgument(error)) => {
                assert!(error.message.contains(expected), "{name:?}: {error}");
                assert_eq!(error.reason, "INVALID_NAME");
                assert_eq!(error.field_violations[0].field, "name");
            }
            other => panic!("{name:?}: expected INVALID_ARGUMENT, got {other:?}"),
        }
    }
    let page = app.client.find_users(&FindUsers::new()).await.unwrap();
    assert_eq!(page.users, vec![]);
}

async fn hundreds_of_concurrent_creates_are_all_stored_exactly_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let names: Vec<String> = (0..300).map(|i| format!("concurrent-{i}")).collect();

    let created = join_all(names.iter().map(|name| {
        let client = app.client.clone();
        let name = name.clone();
        tokio::spawn(async move { client.create_user(name).await })
    }))
    .await;
    let created: Vec<_> = created
        .into_iter()
        .map(|joined| joined.unwrap().unwrap())
        .collect();

    let ids: HashSet<i64> = created.iter().map(|user| user.id).collect();
    assert_eq!(ids.len(), names.len(), "every create got its own id");
    // Each caller got its own row back, not one a concurrent create wrote
    // (MySQL, without RETURNING, reads it back by LAST_INSERT_ID()).
    for (name, user) in names.iter().zip(&created) {
        assert_eq!(&user.name, name, "{user:?}");
    }

    let stored: Vec<_> = app
        .client
        .find_all_users(FindUsers::new().page_size(1000))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(stored.len(), names.len(), "no user lost or stored twice");
    let stored_names: HashSet<_> = stored.iter().map(|user| user.name.clone()).collect();
    assert_eq!(stored_names, names.into_iter().collect::<HashSet<_>>());
    let stored_ids: HashSet<_> = stored.iter().map(|user| user.id).collect();
    assert_eq!(stored_ids, ids);
    for user in &stored {
        let returned = created
            .iter()
            .find(|created| created.id == user.id)
            .unwrap();
        assert_eq!(returned, user, "what the create returned is what is stored");
    }
}
