//! [`ClientBuilder`]: how to reach the server, over TLS with a CA of your
//! own and, for mutual TLS, a certificate that says who the client is.

use std::{
    io,
    path::{Path, PathBuf},
};

use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::{ClientError, UsersClient};

/// Settings for [`UsersClient`]'s connection, from
/// [`UsersClient::builder`].
///
/// An `https://` endpoint is reached over TLS. The server's certificate is
/// checked against the operating system's trusted roots, or against the
/// CAs of [`ca_certificate_file`](Self::ca_certificate_file) instead.
///
/// ```no_run
/// # async fn run() -> Result<(), users_client::ClientError> {
/// use users_client::UsersClient;
///
/// let client = UsersClient::builder("https://users.internal:50051")
///     .ca_certificate_file("ca.pem")
///     .identity_files("client.pem", "client.key")
///     .connect()
///     .await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder connects only when `connect` is awaited"]
pub struct ClientBuilder {
    endpoint: String,
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
            endpoint,
            ca_certificate: None,
            identity: None,
        }
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

    /// Reads the files and connects.
    ///
    /// Fails with [`ClientError::TlsFile`] naming a file that cannot be read
    /// or holds no PEM certificate (or key), with
    /// [`ClientError::TlsNeedsHttps`] if files were given for an endpoint
    /// that is not `https://`, and with [`ClientError::Connect`] if the
    /// endpoint is invalid, nothing answers there, or the TLS handshake
    /// fails (a server certificate the client does not trust, or a server
    /// that refuses the client's).
    pub async fn connect(self) -> Result<UsersClient, ClientError> {
        let connect_error = |source| ClientError::Connect {
            endpoint: self.endpoint.clone(),
            source,
        };
        let endpoint = Endpoint::from_shared(self.endpoint.clone()).map_err(connect_error)?;
        let endpoint = match self.tls_config(&endpoint)? {
            Some(tls) => endpoint.tls_config(tls).map_err(connect_error)?,
            None => endpoint,
        };
        let channel = endpoint.connect().await.map_err(connect_error)?;
        Ok(UsersClient::from_channel(channel))
    }

    /// The TLS settings for an `https://` endpoint; `None` for plaintext.
    fn tls_config(&self, endpoint: &Endpoint) -> Result<Option<ClientTlsConfig>, ClientError> {
        let files = self.ca_certificate.is_some() || self.identity.is_some();
        if endpoint.uri().scheme_str() != Some("https") {
            return match files {
                // Speaking plaintext anyway would defeat the files' purpose.
                true => Err(ClientError::TlsNeedsHttps {
                    endpoint: self.endpoint.clone(),
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
