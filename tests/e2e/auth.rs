//! Bearer tokens (`--auth-tokens-file`): users.v1 calls without a listed
//! token are UNAUTHENTICATED; health and reflection stay open unless
//! `--auth-all`.

use tonic::{Code, Request, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use users_client::{ClientError, RetryPolicy, UsersClient, pb};
use users_tests::{Backend, TestApp, spawn_app_with};

on_backend!(sqlite: Sqlite;
    calls_need_a_listed_bearer_token,
    the_client_crate_sends_its_bearer_token,
    health_and_reflection_stay_open_unless_auth_all,
    with_auth_all_health_needs_the_token_too,
);

const TOKEN: &str = "s3cret-token-for-tests";

/// A server whose tokens file lists [`TOKEN`]; the file's directory lives
/// as long as the server.
async fn app_with_tokens(backend: Backend, auth_all: bool) -> (tempfile::TempDir, TestApp) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens");
    std::fs::write(&file, format!("# the tests' token\n{TOKEN}\n")).unwrap();
    let app = spawn_app_with(backend, |config| {
        config.auth_tokens_file = Some(file);
        config.auth_all = auth_all;
    })
    .await;
    (dir, app)
}

fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

fn create(name: &str) -> pb::CreateUserRequest {
    pb::CreateUserRequest {
        name: name.into(),
        request_id: String::new(),
    }
}

async fn calls_need_a_listed_bearer_token(backend: Backend) {
    let (_dir, app) = app_with_tokens(backend, false).await;
    let mut raw = app.client.raw();

    for (request, why) in [
        (Request::new(create("John")), "no bearer token"),
        (with_token(create("John"), "wrong"), "not valid"),
    ] {
        let status = raw.create_user(request).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        assert!(status.message().contains(why), "{}", status.message());
        assert!(!status.message().contains(TOKEN));
        // Refused before any handler ran, yet with a request id to quote.
        assert!(
            status.metadata().get("x-request-id").is_some(),
            "{status:?}"
        );
        assert_eq!(
            users_client::ClientError::from(status).reason(),
            Some("UNAUTHENTICATED")
        );
    }
    let mut quoted = Request::new(create("John"));
    quoted
        .metadata_mut()
        .insert("x-request-id", "refused-7".parse().unwrap());
    let status = raw.create_user(quoted).await.unwrap_err();
    assert_eq!(status.metadata().get("x-request-id").unwrap(), "refused-7");
    let created = raw
        .create_user(with_token(create("John"), TOKEN))
        .await
        .expect("the listed token is accepted")
        .into_inner();
    assert_eq!(created.user.unwrap().name, "John");
    // Nothing was stored by the refused calls.
    let found = raw
        .find_users(with_token(pb::FindUsersRequest::default(), TOKEN))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.users.len(), 1);
}

async fn the_client_crate_sends_its_bearer_token(backend: Backend) {
    let (_dir, app) = app_with_tokens(backend, false).await;
    let client = UsersClient::builder(&app.endpoint)
        .bearer_token(TOKEN)
        .connect()
        .await
        .unwrap();
    let john = client.create_user("John").await.unwrap();
    assert_eq!(client.get_user(john.id).await.unwrap(), john);
    // The raw stub carries it too.
    let found = client
        .raw()
        .find_users(pb::FindUsersRequest::default())
        .await
        .expect("the raw stub sends the token")
        .into_inner();
    assert_eq!(found.users.len(), 1);
    assert!(!format!("{client:?}").contains(TOKEN), "{client:?}");

    // UNAUTHENTICATED is final: not retried, whatever the policy.
    let stranger = UsersClient::builder(&app.endpoint)
        .bearer_token("wrong")
        .retry_policy(RetryPolicy::default().max_attempts(50))
        .connect()
        .await
        .unwrap();
    let error = stranger.get_user(john.id).await.unwrap_err();
    assert_eq!(error.code(), Some(Code::Unauthenticated), "{error:?}");

    let unsendable = UsersClient::builder(&app.endpoint)
        .bearer_token("two\nlines")
        .connect()
        .await;
    assert!(
        matches!(unsendable, Err(ClientError::InvalidBearerToken)),
        "{unsendable:?}"
    );
}

async fn health_check(channel: Channel, token: Option<&str>) -> Result<(), tonic::Status> {
    let request = HealthCheckRequest {
        service: "users.v1.UserService".into(),
    };
    let request = match token {
        Some(token) => with_token(request, token),
        None => Request::new(request),
    };
    HealthClient::new(channel).check(request).await.map(|_| ())
}

async fn channel(app: &TestApp) -> Channel {
    Channel::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn health_and_reflection_stay_open_unless_auth_all(backend: Backend) {
    let (_dir, app) = app_with_tokens(backend, false).await;
    health_check(channel(&app).await, None)
        .await
        .expect("health needs no token");
    let mut reflection =
        tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(
            channel(&app).await,
        );
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            ),
        ),
    };
    reflection
        .server_reflection_info(tokio_stream::once(request))
        .await
        .expect("reflection needs no token");
}

async fn with_auth_all_health_needs_the_token_too(backend: Backend) {
    let (_dir, app) = app_with_tokens(backend, true).await;
    let refused = health_check(channel(&app).await, None).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    health_check(channel(&app).await, Some(TOKEN))
        .await
        .expect("with the token");
}
