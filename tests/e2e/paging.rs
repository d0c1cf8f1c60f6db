//! FindUsers paging: complete, ordered, stable while users are created.

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use futures_util::{TryStreamExt, future::join_all};
use users_client::{FindUsers, User, UsersClient};
use users_tests::{Backend, all_pages, spawn_app};

on_every_backend!(
    pages_hold_every_user_once_in_id_order,
    page_size_zero_means_50_and_sizes_above_1000_mean_1000,
    paging_while_users_are_created_never_skips_or_repeats,
);

async fn create_many(client: &UsersClient, prefix: &str, count: usize) -> Vec<User> {
    // 50 at a time: fast, without flooding a small pool.
    let mut users = Vec::with_capacity(count);
    let names: Vec<String> = (0..count).map(|i| format!("{prefix}{i:05}")).collect();
    for chunk in names.chunks(50) {
        let created = join_all(chunk.iter().map(|name| client.create_user(name.as_str()))).await;
        users.extend(created.into_iter().map(Result::unwrap));
    }
    users.sort_by_key(|user| user.id);
    users
}

async fn pages_hold_every_user_once_in_id_order(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = create_many(&app.client, "user-", 23).await;
    app.client.create_user("someone else").await.unwrap();

    let pages = all_pages(
        &app.client,
        FindUsers::new().name_prefix("user-").page_size(5),
    )
    .await;
    let sizes: Vec<_> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [5, 5, 5, 5, 3]);
    assert_eq!(pages.concat(), created);

    let streamed: Vec<_> = app
        .client
        .find_all_users(FindUsers::new().name_prefix("user-").page_size(4))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(streamed, created);

    // A page that ends exactly at the last user says so.
    let pages = all_pages(
        &app.client,
        FindUsers::new().name_prefix("user-").page_size(23),
    )
    .await;
    assert_eq!(pages.len(), 1);
}

async fn page_size_zero_means_50_and_sizes_above_1000_mean_1000(backend: Backend) {
    let app = spawn_app(backend).await;
    create_many(&app.client, "u", 1001).await;

    let default = app.client.find_users(&FindUsers::new()).await.unwrap();
    assert_eq!(default.users.len(), 50);
    assert!(default.next_page_token.is_some());

    let capped = app
        .client
        .find_users(&FindUsers::new().page_size(5000))
        .await
        .unwrap();
    assert_eq!(capped.users.len(), 1000);
    let rest = app
        .client
        .find_users(
            &FindUsers::new()
                .page_size(5000)
                .page_token(capped.next_page_token.unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(rest.users.len(), 1);
    assert_eq!(rest.next_page_token, None);
}

async fn paging_while_users_are_created_never_skips_or_repeats(backend: Backend) {
    let app = spawn_app(backend).await;
    let before = create_many(&app.client, "before-", 60).await;

    // A writer keeps creating users while we page.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (client, stop) = (app.client.clone(), stop.clone());
        tokio::spawn(async move {
            let mut created = 0;
            while !stop.load(Ordering::Relaxed) && created < 500 {
                client
                    .create_user(format!("during-{created}"))
                    .await
                    .unwrap();
                created += 1;
            }
            created
        })
    };

    let mut seen = Vec::new();
    let mut query = FindUsers::new().page_size(7);
    loop {
        let page = app.client.find_users(&query).await.unwrap();
        seen.extend(page.users);
        if seen.len() >= before.len() {
            stop.store(true, Ordering::Relaxed);
        }
        match page.next_page_token {
            Some(token) => query = query.page_token(token),
            None => break,
        }
    }
    let created_meanwhile = writer.await.unwrap();
    assert!(created_meanwhile > 0, "the writer ran while paging");

    let ids: Vec<i64> = seen.iter().map(|user| user.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ascending, no repeats");
    let seen_ids: HashSet<i64> = ids.into_iter().collect();
    assert!(
        before.iter().all(|user| seen_ids.contains(&user.id)),
        "every user that existed before paging began was listed"
    );
}
