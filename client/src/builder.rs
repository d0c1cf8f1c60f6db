//! [`ClientBuilder`]: which servers to reach and how: over TLS with a CA
//! of your own and, for mutual TLS, a certificate that says who the client
//! is; with a bearer token; with a timeout and a retry policy.

use std::{
    io,
    path::{Path, PathBuf},
    time::Duration,
};

use futures_util::future;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tonic::{
    metadata::AsciiMetadataValue,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};

use crate::endpoints::{Credentials, Endpoints};
use crate::{ClientError, RetryPolicy, UsersClient};

/// How long a connection attempt to one server may take by default.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings for [`UsersClient`]'s connection, from
/// [`UsersClient::builder`].
///
/// An `https://` endpoint is reached over TLS. The server's certificate is
/// checked against the operating system's trusted roots, or against the
/// CAs of [`ca_certificate_file`](Self::ca_certificate_file) instead.
///
/// With more servers ([`endpoint`](Self::endpoint)), calls are spread over
/// those that answer, and a server that goes away is left out until it is
/// back.
///
/// ```no_run
/// # async fn run() -> Result<(), users_client::ClientError> {
/// use std::time::Duration;
/// use users_client::UsersClient;
///
/// let client = UsersClient::builder("https://users-1.internal:50051")
///     .endpoint("https://users-2.internal:50051")
///     .ca_certificate_file("ca.pem")
///     .identity_files("client.pem", "client.key")
///     .bearer_token(std::env::var("USERS_TOKEN").unwrap_or_default())
///     .timeout(Duration::from_secs(2))
///     .connect()
///     .await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
#[must_use = "a builder connects only when `connect` is awaited"]
pub struct ClientBuilder {
    /// The servers, the first as given to [`UsersClient::builder`].
    endpoints: Vec<String>,
    /// Sent as `authorization: Bearer <token>` with every call.
    bearer_token: Option<String>,
    /// Bounds each call, retries included; `None`: no bound.
    timeout: Option<Duration>,
    /// Bounds each connection attempt.
    connect_timeout: Duration,
    retry: RetryPolicy,
    /// PEM file of the CAs to trust instead of the system's: a server
    /// with a certificate from a private CA.
    ca_certificate: Option<PathBuf>,
    /// PEM certificate and key files the client proves itself with, for a
    /// server that requires client certificates (mutual TLS).
    identity: Option<(PathBuf, PathBuf)>,
}

impl ClientBuilder {
    pub(crate) fn new(endpoint: String) -> Self {
        Self {
            endpoints: vec![endpoint],
            bearer_token: None,
            timeout: None,
            connect_timeout: CONNECT_TIMEOUT,
            retry: RetryPolicy::default(),
            ca_certificate: None,
            identity: None,
        }
    }

    /// Another server to spread calls over: one more replica of the
    /// service, on the same database. The TLS settings apply to all.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), users_client::ClientError> {
    /// let client = users_client::UsersClient::builder("http://10.0.0.1:50051")
    ///     .endpoint("http://10.0.0.2:50051")
    ///     .endpoint("http://10.0.0.3:50051")
    ///     .connect()
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoints.push(endpoint.into());
        self
    }

    /// Send `token` with every call, for a server started with
    /// `--auth-tokens-file`. Without it, such a server answers
    /// [`ClientError::Other`] with code UNAUTHENTICATED.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(token.into());
        self
    }

    /// Bound every call, retries included, by `timeout` (none by default);
    /// [`UsersClient::with_timeout`] changes it for some calls.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Give up on connecting to a server after `timeout` (5 s by default):
    /// a server that does not answer at all, rather than refusing at once.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// When to send a failed call again: see [`RetryPolicy`] (up to 5
    /// attempts by default).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Trust the CA certificates in the PEM file at `path`, and only them,
    /// to sign the server's certificate.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), users_client::ClientError> {
    /// let client = users_client::UsersClient::builder("https://localhost:50051")
    ///     .ca_certificate_file("ca.pem")
    ///     .connect()
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn ca_certificate_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_certificate = Some(path.into());
        self
    }

    /// Present the certificate in the PEM file `certificate` (then any
    /// intermediates), whose private key is the PEM file `key`, to a server
    /// that requires client certificates.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), users_client::ClientError> {
    /// let client = users_client::UsersClient::builder("https://localhost:50051")
    ///     .ca_certificate_file("ca.pem")
    ///     .identity_files("client.pem", "client.key")
    ///     .connect()
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn identity_files(
        mut self,
        certificate: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        self.identity = Some((certificate.into(), key.into()));
        self
    }

    /// Reads the files and connects to every server at once.
    ///
    /// Succeeds when at least one server answers; the others are connected
    /// to again when their turn comes, and left out until they answer.
    ///
    /// Fails with [`ClientError::TlsFile`] naming a file that cannot be read
    /// or holds no PEM certificate (or key), with
    /// [`ClientError::TlsNeedsHttps`] if files were given for an endpoint
    /// that is not `https://`, with [`ClientError::InvalidBearerToken`] for
    /// a token that cannot be sent in a header, and with
    /// [`ClientError::Connect`] if an endpoint is invalid, or if no server
    /// could be connected to (nothing answers, or the TLS handshake fails:
    /// a server certificate the client does not trust, or a server that
    /// refuses the client's); it names the first endpoint's failure.
    pub async fn connect(self) -> Result<UsersClient, ClientError> {
        let credentials = match &self.bearer_token {
            Some(token) => Credentials::bearer(
                AsciiMetadataValue::try_from(format!("Bearer {token}"))
                    .map_err(|_| ClientError::InvalidBearerToken)?,
            ),
            None => Credentials::default(),
        };
        let endpoints = self
            .endpoints
            .iter()
            .map(|endpoint| self.configure(endpoint))
            .collect::<Result<Vec<_>, _>>()?;
        let connections =
            future::join_all(endpoints.iter().map(|(_, endpoint)| endpoint.connect())).await;
        if connections.iter().all(Result::is_err) {
            let (url, _) = &endpoints[0];
            let source = connections.into_iter().next().and_then(Result::err);
            return Err(ClientError::Connect {
                endpoint: url.clone(),
                source: source.expect("every connection failed"),
            });
        }
        let channels: Vec<(Channel, bool)> = endpoints
            .iter()
            .zip(connections)
            .map(|((_, endpoint), connection)| match connection {
                Ok(channel) => (channel, false),
                // Connects on its next call, and reconnects after, by itself.
                Err(_) => (endpoint.connect_lazy(), true),
            })
            .collect();
        Ok(UsersClient::from_endpoints(
            Endpoints::new(channels, &credentials),
            self.timeout,
            self.retry,
        ))
    }

    /// `url` parsed, with the TLS and connection settings.
    fn configure(&self, url: &str) -> Result<(String, Endpoint), ClientError> {
        let connect_error = |source| ClientError::Connect {
            endpoint: url.to_owned(),
            source,
        };
        let endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(connect_error)?
            .connect_timeout(self.connect_timeout);
        let endpoint = match self.tls_config(url, &endpoint)? {
            Some(tls) => endpoint.tls_config(tls).map_err(connect_error)?,
            None => endpoint,
        };
        Ok((url.to_owned(), endpoint))
    }

    /// The TLS settings for an `https://` endpoint; `None` for plaintext.
    fn tls_config(
        &self,
        url: &str,
        endpoint: &Endpoint,
    ) -> Result<Option<ClientTlsConfig>, ClientError> {
        let files = self.ca_certificate.is_some() || self.identity.is_some();
        if endpoint.uri().scheme_str() != Some("https") {
            return match files {
                // Speaking plaintext anyway would defeat the files' purpose.
                true => Err(ClientError::TlsNeedsHttps {
                    endpoint: url.to_owned(),
                }),
                false => Ok(None),
            };
        }
        let tls = match &self.ca_certificate {
            Some(path) => ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(read_certificates(path)?)),
            None => ClientTlsConfig::new().with_native_roots(),
        };
        let tls = match &self.identity {
            Some((certificate, key)) => tls.identity(Identity::from_pem(
                read_certificates(certificate)?,
                read_private_key(key)?,
            )),
            None => tls,
        };
        Ok(Some(tls))
    }
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("endpoints", &self.endpoints)
            // Never in logs.
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<hidden>"),
            )
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry", &self.retry)
            .field("ca_certificate", &self.ca_certificate)
            .field("identity", &self.identity)
            .finish()
    }
}

/// The PEM text of `path`, checked to hold at least one certificate: TLS
/// would otherwise fail later, at the handshake, without naming the file.
fn read_certificates(path: &Path) -> Result<Vec<u8>, ClientError> {
    let pem = read(path)?;
    match CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>() {
        Ok(certificates) if !certificates.is_empty() => Ok(pem),
        Ok(_) => Err(unusable(path, "no PEM certificate in it".to_owned())),
        Err(error) => Err(unusable(path, format!("not valid PEM: {error}"))),
    }
}

/// The PEM text of `path`, checked to hold a private key.
fn read_private_key(path: &Path) -> Result<Vec<u8>, ClientError> {
    let pem = read(path)?;
    match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(_) => Ok(pem),
        Err(rustls_pki_types::pem::Error::NoItemsFound) => {
            Err(unusable(path, "no PEM private key in it".to_owned()))
        }
        Err(error) => Err(unusable(path, format!("not valid PEM: {error}"))),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|source| ClientError::TlsFile {
        path: path.to_owned(),
        source,
    })
}

fn unusable(path: &Path, why: String) -> ClientError {
    ClientError::TlsFile {
        path: path.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidData, why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_ca_file_is_named_in_the_error() {
        let error = UsersClient::builder("https://127.0.0.1:1")
            .ca_certificate_file("/no/such/ca.pem")
            .connect()
            .await
            .unwrap_err();
        assert!(
            matches!(&error, ClientError::TlsFile { path, source }
                if path == Path::new("/no/such/ca.pem") && source.kind() == io::ErrorKind::NotFound),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .starts_with("cannot use TLS file /no/such/ca.pem: "),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_file_without_a_certificate_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("ca.pem");
        std::fs::write(&garbage, "not a certificate\n").unwrap();
        let error = UsersClient::builder("https://127.0.0.1:1")
            .ca_certificate_file(&garbage)
            .connect()
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "cannot use TLS file {}: no PEM certificate in it",
                garbage.display()
            )
        );
    }

    #[tokio::test]
    async fn tls_files_for_a_plaintext_endpoint_are_refused() {
        let error = UsersClient::builder("http://127.0.0.1:1")
            .ca_certificate_file("ca.pem")
            .connect()
            .await
            .unwrap_err();
        assert!(
            matches!(&error, ClientError::TlsNeedsHttps { endpoint } if endpoint == "http://127.0.0.1:1"),
            "{error:?}"
        );
    }
}
