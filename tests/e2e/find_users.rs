//! FindUsers: filters, and what it refuses.

use users_client::{ClientError, FindUsers, UsersClient, pb::FindUsersRequest};
use users_tests::{Backend, spawn_app};

on_every_backend!(
    no_filter_lists_everyone_in_id_order,
    name_matches_the_whole_name_case_sensitively,
    prefixes_are_literal_and_case_sensitive,
    prefixes_beyond_ascii_match_whole_characters,
    name_and_prefix_must_both_match,
    bad_requests_are_invalid_argument,
);

async fn names(client: &UsersClient, query: FindUsers) -> Vec<String> {
    let page = client.find_users(&query.page_size(1000)).await.unwrap();
    assert_eq!(page.next_page_token, None);
    page.users.into_iter().map(|user| user.name).collect()
}

async fn create_all(client: &UsersClient, names: &[&str]) {
    for name in names {
        client.create_user(*name).await.unwrap();
    }
}

async fn no_filter_lists_everyone_in_id_order(backend: Backend) {
    let app = spawn_app(backend).await;
    create_all(&app.client, &["b", "a", "c"]).await;
    let page = app.client.find_users(&FindUsers::new()).await.unwrap();
    let listed: Vec<_> = page.users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(listed, ["b", "a", "c"]);
    assert!(page.users.windows(2).all(|w| w[0].id < w[1].id));
}

async fn name_matches_the_whole_name_case_sensitively(backend: Backend) {
    let app = spawn_app(backend).await;
    create_all(&app.client, &["John", "john", "Johnny", "John ", "John"]).await;
    assert_eq!(
        names(&app.client, FindUsers::new().name("John")).await,
        ["John", "John"]
    );
    assert_eq!(
        names(&app.client, FindUsers::new().name("JOHN")).await,
        Vec::<String>::new()
    );
}

async fn prefixes_are_literal_and_case_sensitive(backend: Backend) {
    let app = spawn_app(backend).await;
    create_all(
        &app.client,
        &[
            "John",
            "john",
            "Jo",
            "50% off",
            "50x off",
            "500",
            "a_b",
            "axb",
            r"back\slash",
            "backXslash",
        ],
    )
    .await;
    let find = |prefix: &str| names(&app.client, FindUsers::new().name_prefix(prefix));
    assert_eq!(find("Jo").await, ["John", "Jo"]);
    assert_eq!(find("jo").await, ["john"]);
    assert_eq!(find("50%").await, ["50% off"]);
    assert_eq!(find("a_").await, ["a_b"]);
    assert_eq!(find(r"back\").await, [r"back\slash"]);
    assert_eq!(find("%").await, Vec::<String>::new());
    assert_eq!(find("_").await, Vec::<String>::new());
}

async fn prefixes_beyond_ascii_match_whole_characters(backend: Backend) {
    let app = spawn_app(backend).await;
    create_all(
        &app.client,
        &[
            "Zoë",
            "Zoe",
            "Zoëy",
            "Zoê",
            "Zo",
            "李小龙",
            "李",
            "李四",
            "\u{D7FF}x",
            "\u{E000}",
            "😀a",
            "😁",
        ],
    )
    .await;
    let find = |prefix: &str| names(&app.client, FindUsers::new().name_prefix(prefix));
    assert_eq!(find("Zoë").await, ["Zoë", "Zoëy"]);
    assert_eq!(find("Zo").await, ["Zoë", "Zoe", "Zoëy", "Zoê", "Zo"]);
    assert_eq!(find("李").await, ["李小龙", "李", "李四"]);
    assert_eq!(find("\u{D7FF}").await, ["\u{D7FF}x"]);
    assert_eq!(find("😀").await, ["😀a"]);
}

async fn name_and_prefix_must_both_match(backend: Backend) {
    let app = spawn_app(backend).await;
    create_all(&app.client, &["John", "Johnny", "Jane"]).await;
    assert_eq!(
        names(
            &app.client,
            FindUsers::new().name("Johnny").name_prefix("Jo")
        )
        .await,
        ["Johnny"]
    );
    assert_eq!(
        names(&app.client, FindUsers::new().name("Jane").name_prefix("Jo")).await,
        Vec::<String>::new()
    );
}

async fn bad_requests_are_invalid_argument(backend: Backend) {
    let app = spawn_app(backend).await;
    app.client.create_user("John").await.unwrap();
    let john_token = {
        app.client.create_user("John").await.unwrap();
        let page = app
            .client
            .find_users(&FindUsers::new().name("John").page_size(1))
            .await
            .unwrap();
        page.next_page_token.expect("two Johns make two pages")
    };

    let cases = [
        (
            FindUsersRequest {
                page_size: -1,
                ..Default::default()
            },
            "page_size must not be negative (got -1)",
        ),
        (
            FindUsersRequest {
                page_token: "not-a-token".into(),
                ..Default::default()
            },
            "page_token was not issued for this name, name_prefix and order_by",
        ),
        (
            FindUsersRequest {
                name: "Jane".into(),
                page_token: john_token.clone(),
                ..Default::default()
            },
            "page_token was not issued for this name, name_prefix and order_by",
        ),
        (
            FindUsersRequest {
                page_token: format!("{john_token}A"),
                name: "John".into(),
                ..Default::default()
            },
            "page_token was not issued for this name, name_prefix and order_by",
        ),
        (
            FindUsersRequest {
                name: "x".repeat(257),
                ..Default::default()
            },
            "name is 257 characters long",
        ),
        (
            FindUsersRequest {
                name: "nul\0".into(),
                ..Default::default()
            },
            "name must not contain control characters",
        ),
        (
            FindUsersRequest {
                name_prefix: "\0".into(),
                ..Default::default()
            },
            "name_prefix must not contain control characters",
        ),
    ];
    for (request, expected) in cases {
        let description = format!("{request:?}");
        let status = app.client.raw().find_users(request).await.unwrap_err();
        match ClientError::from(status) {
            ClientError::InvalidArgument(error) => {
                assert!(error.message.contains(expected), "{description}: {error}")
            }
            other => panic!("{description}: expected INVALID_ARGUMENT, got {other:?}"),
        }
    }
}
