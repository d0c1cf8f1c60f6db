//! GetUser, UpdateUser, DeleteUser: one user by id, with etags.

use futures_util::future::join_all;
use prost_types::FieldMask;
use users_client::{ClientError, FindUsers, pb};
use users_tests::{Backend, spawn_app};

on_every_backend!(
    a_created_user_can_be_read_back_by_id,
    an_unknown_id_is_not_found_and_a_missing_id_is_invalid,
    a_rename_moves_update_time_and_the_etag,
    a_stale_etag_aborts_the_write_and_changes_nothing,
    masks_name_the_name_or_everything_and_nothing_else,
    a_deleted_user_is_gone_and_its_id_is_never_reused,
    of_racing_conditional_renames_exactly_one_wins,
);

async fn a_created_user_can_be_read_back_by_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = app.client.create_user("Ada").await.unwrap();
    assert!(!ada.etag.is_empty());
    assert_eq!(app.client.get_user(ada.id).await.unwrap(), ada);
}

async fn an_unknown_id_is_not_found_and_a_missing_id_is_invalid(backend: Backend) {
    let app = spawn_app(backend).await;
    let missing = app.client.get_user(12345).await.unwrap_err();
    assert!(matches!(missing, ClientError::NotFound(_)), "{missing}");
    assert_eq!(missing.reason(), Some("USER_NOT_FOUND"));
    assert_eq!(missing.to_string(), "not found: no user has id 12345");

    for id in [0, -1] {
        let invalid = app.client.get_user(id).await.unwrap_err();
        assert!(
            matches!(invalid, ClientError::InvalidArgument(_)),
            "{invalid}"
        );
        assert_eq!(invalid.reason(), Some("INVALID_USER_ID"));
        assert_eq!(
            invalid.server_error().unwrap().field_violations[0].field,
            "id"
        );
    }
    let invalid = app.client.rename_user(0, "x", None).await.unwrap_err();
    assert_eq!(
        invalid.server_error().unwrap().field_violations[0].field,
        "user.id"
    );
    let invalid = app.client.delete_user(-5, None).await.unwrap_err();
    assert_eq!(invalid.reason(), Some("INVALID_USER_ID"));
    let missing = app.client.rename_user(999, "x", None).await.unwrap_err();
    assert!(matches!(missing, ClientError::NotFound(_)), "{missing}");
    let missing = app.client.delete_user(999, None).await.unwrap_err();
    assert!(matches!(missing, ClientError::NotFound(_)), "{missing}");
}

async fn a_rename_moves_update_time_and_the_etag(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = app.client.create_user("Ada").await.unwrap();

    let renamed = app
        .client
        .rename_user(ada.id, "Ada Lovelace", Some(&ada.etag))
        .await
        .unwrap();
    assert_eq!(renamed.id, ada.id);
    assert_eq!(renamed.name, "Ada Lovelace");
    assert_eq!(renamed.create_time, ada.create_time);
    assert!(renamed.update_time >= ada.update_time);
    assert_ne!(renamed.etag, ada.etag);
    assert_eq!(app.client.get_user(ada.id).await.unwrap(), renamed);

    // Without an etag the write is unconditional; the etag moves again.
    let again = app.client.rename_user(ada.id, "A. L.", None).await.unwrap();
    assert_ne!(again.etag, renamed.etag);
    let found = app
        .client
        .find_users(&FindUsers::new().name("A. L."))
        .await
        .unwrap();
    assert_eq!(found.users, vec![again]);

    let invalid = app.client.rename_user(ada.id, " ", None).await.unwrap_err();
    assert_eq!(invalid.reason(), Some("INVALID_NAME"));
    assert_eq!(
        invalid.server_error().unwrap().field_violations[0].field,
        "user.name"
    );
}

async fn a_stale_etag_aborts_the_write_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = app.client.create_user("Ada").await.unwrap();
    let renamed = app
        .client
        .rename_user(ada.id, "Ada L.", None)
        .await
        .unwrap();

    let stale = app
        .client
        .rename_user(ada.id, "lost update", Some(&ada.etag))
        .await
        .unwrap_err();
    assert!(matches!(stale, ClientError::Aborted(_)), "{stale}");
    assert_eq!(stale.reason(), Some("ETAG_MISMATCH"));
    let stale = app
        .client
        .delete_user(ada.id, Some(&ada.etag))
        .await
        .unwrap_err();
    assert!(matches!(stale, ClientError::Aborted(_)), "{stale}");
    assert_eq!(app.client.get_user(ada.id).await.unwrap(), renamed);

    let junk = app
        .client
        .delete_user(ada.id, Some("not-an-etag"))
        .await
        .unwrap_err();
    assert_eq!(junk.reason(), Some("INVALID_ETAG"));

    app.client
        .delete_user(ada.id, Some(&renamed.etag))
        .await
        .unwrap();
    let gone = app.client.get_user(ada.id).await.unwrap_err();
    assert!(matches!(gone, ClientError::NotFound(_)), "{gone}");
}

async fn masks_name_the_name_or_everything_and_nothing_else(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = app.client.create_user("Ada").await.unwrap();
    let update = |paths: &[&str], name: &str| pb::UpdateUserRequest {
        user: Some(pb::User {
            id: ada.id,
            name: name.to_owned(),
            ..Default::default()
        }),
        update_mask: Some(FieldMask {
            paths: paths.iter().map(|path| (*path).to_owned()).collect(),
        }),
    };
    for (paths, name) in [
        (&[][..], "empty mask"),
        (&["*"][..], "star"),
        (&["name"][..], "name"),
    ] {
        let user = app
            .client
            .raw()
            .update_user(update(paths, name))
            .await
            .unwrap()
            .into_inner()
            .user
            .unwrap();
        assert_eq!(user.name, name);
    }
    let no_mask = pb::UpdateUserRequest {
        update_mask: None,
        ..update(&[], "no mask")
    };
    let user = app
        .client
        .raw()
        .update_user(no_mask)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(user.user.unwrap().name, "no mask");

    for paths in [
        &["id"][..],
        &["create_time"],
        &["update_time"],
        &["etag"],
        &["age"],
        &["name", "id"],
    ] {
        let status = app
            .client
            .raw()
            .update_user(update(paths, "never"))
            .await
            .unwrap_err();
        let error = ClientError::from(status);
        assert!(
            matches!(error, ClientError::InvalidArgument(_)),
            "{paths:?}: {error}"
        );
        assert_eq!(error.reason(), Some("INVALID_UPDATE_MASK"), "{paths:?}");
    }
    let missing_user = pb::UpdateUserRequest {
        user: None,
        update_mask: None,
    };
    let status = app
        .client
        .raw()
        .update_user(missing_user)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(app.client.get_user(ada.id).await.unwrap().name, "no mask");
}

async fn a_deleted_user_is_gone_and_its_id_is_never_reused(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.client.create_user("first").await.unwrap();
    let last = app.client.create_user("last").await.unwrap();
    app.client.delete_user(last.id, None).await.unwrap();
    let missing = app.client.delete_user(last.id, None).await.unwrap_err();
    assert!(matches!(missing, ClientError::NotFound(_)), "{missing}");

    let next = app.client.create_user("next").await.unwrap();
    assert!(next.id > last.id, "{} reused after {}", next.id, last.id);
    let everyone = app.client.find_users(&FindUsers::new()).await.unwrap();
    assert_eq!(everyone.users, vec![first, next]);
}

async fn of_racing_conditional_renames_exactly_one_wins(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = app.client.create_user("Ada").await.unwrap();
    let results = join_all((0..20).map(|i| {
        let client = app.client.clone();
        let etag = ada.etag.clone();
        tokio::spawn(async move {
            client
                .rename_user(ada.id, format!("Ada {i}"), Some(&etag))
                .await
        })
    }))
    .await;
    let mut winners = Vec::new();
    for result in results {
        match result.unwrap() {
            Ok(user) => winners.push(user),
            Err(ClientError::Aborted(_)) => {}
            Err(other) => panic!("expected ABORTED for the losers, got {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(app.client.get_user(ada.id).await.unwrap(), winners[0]);
}
