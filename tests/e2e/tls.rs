//! TLS and mutual TLS, with certificates made for each test: who is served,
//! and who is refused. TLS sits below the database, so SQLite alone.

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use users_client::{ClientBuilder, ClientError, FindUsers, User, UsersClient};
use users_tests::{Backend, TestApp, TestCertificates, spawn_app_over_tls};

on_backend!(sqlite: Sqlite;
    a_client_that_trusts_the_ca_creates_and_finds_users,
    a_plaintext_client_is_refused_by_a_tls_server,
    a_client_that_trusts_another_ca_refuses_the_server,
    health_is_served_over_tls,
    with_a_client_ca_a_client_without_a_certificate_is_refused,
    with_a_client_ca_a_certificate_from_another_ca_is_refused,
    with_a_client_ca_a_client_with_a_certificate_from_it_is_served,
);

/// Connects as `client` says and stores a user named `name`.
async fn create_user(client: ClientBuilder, name: &str) -> Result<User, ClientError> {
    client.connect().await?.create_user(name).await
}

/// `outcome` is a refusal by the transport, at the connection (the
/// handshake failed) or at the first call (the server closed the
/// connection after the handshake, as a TLS 1.3 server does when it
/// rejects the client's certificate), not an answer of the service; and
/// `app` stored no user named `name`.
async fn assert_refused(app: &TestApp, outcome: Result<User, ClientError>, name: &str) {
    let error = outcome.expect_err("the server must refuse this client");
    // The service gives every error it sends a reason; the transport none.
    assert_eq!(error.reason(), None, "{error:?}");
    let stored = app.client.find_users(&FindUsers::new().name(name)).await;
    assert_eq!(stored.unwrap().users, []);
}

async fn a_client_that_trusts_the_ca_creates_and_finds_users(backend: Backend) {
    let certificates = TestCertificates::generate();
    let app = spawn_app_over_tls(backend, certificates.dir(), false).await;
    assert!(app.endpoint.starts_with("https://"), "{}", app.endpoint);

    let client = UsersClient::builder(&app.endpoint)
        .ca_certificate_file(certificates.path("ca.pem"))
        .connect()
        .await
        .unwrap();
    let john = client.create_user("John").await.unwrap();
    let page = client
        .find_users(&FindUsers::new().name("John"))
        .await
        .unwrap();
    assert_eq!(page.users, [john]);
}

async fn a_plaintext_client_is_refused_by_a_tls_server(backend: Backend) {
    let certificates = TestCertificates::generate();
    let app = spawn_app_over_tls(backend, certificates.dir(), false).await;

    let plaintext = UsersClient::builder(format!("http://{}", app.addr));
    let outcome = create_user(plaintext, "Eve").await;
    assert_refused(&app, outcome, "Eve").await;
}

async fn a_client_that_trusts_another_ca_refuses_the_server(backend: Backend) {
    let certificates = TestCertificates::generate();
    let app = spawn_app_over_tls(backend, certificates.dir(), false).await;

    let wary = UsersClient::builder(&app.endpoint)
        .ca_certificate_file(certificates.path("other-ca.pem"))
        .connect()
        .await;
    let Err(error @ ClientError::Connect { .. }) = wary else {
        panic!("the client must not trust the server: {wary:?}");
    };
    assert!(
        error
            .to_string()
            .contains("invalid peer certificate: UnknownIssuer"),
        "{error}"
    );
}

async fn health_is_served_over_tls(backend: Backend) {
    let certificates = TestCertificates::generate();
    let app = spawn_app_over_tls(backend, certificates.dir(), false).await;

    let ca = std::fs::read(certificates.path("ca.pem")).unwrap();
    let channel = Endpoint::from_shared(app.endpoint.clone())
        .unwrap()
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)))
        .unwrap()
        .connect()
        .await
        .unwrap();
    for service in ["", "users.v1.UserService"] {
        let response = HealthClient::new(channel.clone())
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.status(), ServingStatus::Serving, "{service:?}");
    }
}

async fn with_a_client_ca_a_client_without_a_certificate_is_refused(backend: Backend) {
    let certificates = TestCertificates::generate();
    let app = spawn_app_over_tls(backend, certificates.dir(), true).await;

    let anonymous =
        UsersClient::builder(&app.endpoint).ca_certificate_file(certificates.path("ca.pem"));
    let outcome = create_user(anonymous, "Eve").await;
    assert_refused(&app, outcome, "Eve").await;
}

async fn with_a_client_ca_a_certificate_from_another_ca_is_refused(backend: Backend) {
    let certificates = TestCertificates::generate();
    let app = spawn_app_over_tls(backend, certificates.dir(), true).await;

    let stranger = UsersClient::builder(&app.endpoint)
        .ca_certificate_file(certificates.path("ca.pem"))
        .identity_files(
            certificates.path("other-client.pem"),
            certificates.path("other-client.key"),
        );
    let outcome = create_user(stranger, "Eve").await;
    assert_refused(&app, outcome, "Eve").await;
}

async fn with_a_client_ca_a_client_with_a_certificate_from_it_is_served(backend: Backend) {
    let certificates = TestCertificates::generate();
    let app = spawn_app_over_tls(backend, certificates.dir(), true).await;

    let member = UsersClient::builder(&app.endpoint)
        .ca_certificate_file(certificates.path("ca.pem"))
        .identity_files(
            certificates.path("client.pem"),
            certificates.path("client.key"),
        );
    let john = create_user(member, "John").await.unwrap();
    let page = app
        .client
        .find_users(&FindUsers::new().name("John"))
        .await
        .unwrap();
    assert_eq!(page.users, [john]);
}
