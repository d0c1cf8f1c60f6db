//! FindUsers `order_by`: every order pages completely and stably, and a page
//! token is bound to its order.

use futures_util::TryStreamExt;
use users_client::{ClientError, FindUsers, SortField, User, pb};
use users_tests::{Backend, all_pages, spawn_app};

on_every_backend!(
    every_order_pages_through_everyone_once_with_ties_broken_by_id,
    a_page_token_is_refused_with_another_order,
    an_unknown_order_is_invalid,
);

async fn every_order_pages_through_everyone_once_with_ties_broken_by_id(backend: Backend) {
    let app = spawn_app(backend).await;
    // Names that tie, names out of id order, and creation times that tie
    // (one batch shares one timestamp).
    let names = ["m", "b", "z", "b", "a", "m", "b", "Z", "é"];
    let mut everyone = Vec::new();
    for chunk in names.chunks(3) {
        everyone.extend(app.client.batch_create_users(chunk.to_vec()).await.unwrap());
    }

    for field in [SortField::Id, SortField::Name, SortField::CreateTime] {
        for descending in [false, true] {
            let mut expected = everyone.clone();
            expected.sort_by(|a, b| {
                let key = match field {
                    SortField::Id => a.id.cmp(&b.id),
                    SortField::Name => a.name.cmp(&b.name).then(a.id.cmp(&b.id)),
                    SortField::CreateTime => {
                        a.create_time.cmp(&b.create_time).then(a.id.cmp(&b.id))
                    }
                };
                if descending { key.reverse() } else { key }
            });
            let mut query = FindUsers::new().order_by(field).page_size(2);
            if descending {
                query = query.descending();
            }
            let paged = all_pages(&app.client, query.clone()).await.concat();
            assert_eq!(paged, expected, "{field:?} descending={descending}");
            let exported: Vec<User> = app
                .client
                .export_users(query)
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            assert_eq!(
                exported, expected,
                "export {field:?} descending={descending}"
            );
        }
    }

    // Filters and order together: names from "b" on, by name descending.
    let query = FindUsers::new()
        .name_prefix("b")
        .order_by(SortField::Name)
        .descending()
        .page_size(1);
    let bs = all_pages(&app.client, query).await.concat();
    let ids: Vec<i64> = bs.iter().map(|user| user.id).collect();
    let mut expected: Vec<i64> = everyone
        .iter()
        .filter(|user| user.name == "b")
        .map(|user| user.id)
        .collect();
    expected.reverse();
    assert_eq!(ids, expected);
}

async fn a_page_token_is_refused_with_another_order(backend: Backend) {
    let app = spawn_app(backend).await;
    app.client
        .batch_create_users(["a", "b", "c"])
        .await
        .unwrap();
    let by_name = FindUsers::new().order_by(SortField::Name).page_size(1);
    let token = app
        .client
        .find_users(&by_name)
        .await
        .unwrap()
        .next_page_token
        .unwrap();
    for other in [
        FindUsers::new().page_size(1),
        FindUsers::new()
            .order_by(SortField::Name)
            .descending()
            .page_size(1),
        FindUsers::new()
            .order_by(SortField::CreateTime)
            .page_size(1),
        FindUsers::new()
            .order_by(SortField::Name)
            .name_prefix("a")
            .page_size(1),
    ] {
        let error = app
            .client
            .find_users(&other.clone().page_token(token.clone()))
            .await
            .unwrap_err();
        assert!(
            matches!(error, ClientError::InvalidArgument(_)),
            "{other:?}: {error}"
        );
        assert_eq!(error.reason(), Some("INVALID_PAGE_TOKEN"));
    }
    // The same query continues.
    let next = app
        .client
        .find_users(&by_name.page_token(token))
        .await
        .unwrap();
    assert_eq!(next.users[0].name, "b");
}

async fn an_unknown_order_is_invalid(backend: Backend) {
    let app = spawn_app(backend).await;
    for order_by in ["age", "name,id", "name sideways", "id desc desc"] {
        let request = pb::FindUsersRequest {
            order_by: order_by.to_owned(),
            ..Default::default()
        };
        let status = app.client.raw().find_users(request).await.unwrap_err();
        let error = ClientError::from(status);
        assert_eq!(
            error.reason(),
            Some("INVALID_ORDER_BY"),
            "{order_by}: {error}"
        );
        assert_eq!(
            error.server_error().unwrap().field_violations[0].field,
            "order_by"
        );
    }
    let request = pb::FindUsersRequest {
        order_by: " name  desc ".to_owned(),
        ..Default::default()
    };
    app.client.raw().find_users(request).await.unwrap();
}
