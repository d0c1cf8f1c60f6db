//! [`TlsFlags`] and [`server_builder`]: serving over TLS, and requiring
//! client certificates (mutual TLS), with the PEM files the operator names.
//!
//! The files are read and checked at start-up, so that a missing file, one
//! that holds no certificate, or a key that does not match its certificate
//! is one line naming the file, not a failed handshake later.

use std::{
    fmt, io,
    path::{Path, PathBuf},
    time::Duration,
};

use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

/// A client that connects and never finishes its handshake would otherwise
/// hold its socket for as long as it likes.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS flags of [`Config`](crate::Config). Without `--tls-cert` the
/// server speaks plaintext, which is fit for loopback only.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct TlsFlags {
    /// Serve over TLS with this PEM certificate (the server's, then any
    /// intermediates). Needs --tls-key.
    #[arg(
        long = "tls-cert",
        id = "tls_cert",
        env = "USERS_TLS_CERT",
        value_name = "PATH",
        requires = "tls_key"
    )]
    pub cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(
        long = "tls-key",
        id = "tls_key",
        env = "USERS_TLS_KEY",
        value_name = "PATH",
        requires = "tls_cert"
    )]
    pub key: Option<PathBuf>,

    /// Require every client to present a certificate signed by a CA in this
    /// PEM file (mutual TLS). Needs --tls-cert.
    #[arg(
        long = "tls-client-ca",
        id = "tls_client_ca",
        env = "USERS_TLS_CLIENT_CA",
        value_name = "PATH",
        requires = "tls_cert"
    )]
    pub client_ca: Option<PathBuf>,
}

/// How connections are secured, for the start-up log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plaintext.
    Off,
    /// TLS; clients are not asked for certificates.
    On,
    /// TLS, and every client proves who it is with a certificate.
    Mutual,
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Off => "off",
            Self::On => "on",
            Self::Mutual => "mutual",
        })
    }
}

impl TlsFlags {
    /// What these flags turn on.
    pub fn mode(&self) -> TlsMode {
        match (&self.cert, &self.client_ca) {
            (None, _) => TlsMode::Off,
            (Some(_), None) => TlsMode::On,
            (Some(_), Some(_)) => TlsMode::Mutual,
        }
    }
}

/// Why the TLS files cannot be used. Each message names the flag and the
/// file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file cannot be read.
    #[error("cannot read {flag} {}: {source}", path.display())]
    Read {
        /// The flag that named the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The file holds no PEM section of the kind expected.
    #[error("{flag} {} holds no PEM {expected}", path.display())]
    NoPem {
        /// The flag that named the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// `certificate` or `private key`.
        expected: &'static str,
    },
    /// A PEM section of the file is broken.
    #[error("{flag} {} is not valid PEM: {why}", path.display())]
    BadPem {
        /// The flag that named the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What the PEM parser said.
        why: rustls_pki_types::pem::Error,
    },
    /// The files parse, but rustls refuses them (a key that is not the
    /// certificate's, a CA that is not a valid certificate).
    #[error("cannot serve TLS with --tls-cert {} and --tls-key {}: {}",
            cert.display(), key.display(), crate::error::with_causes(source))]
    Rejected {
        /// `--tls-cert`.
        cert: PathBuf,
        /// `--tls-key`.
        key: PathBuf,
        /// What rustls said, through tonic.
        #[source]
        source: tonic::transport::Error,
    },
}

/// `Server::builder()`, serving over TLS if `flags` say so.
pub fn server_builder(flags: &TlsFlags) -> Result<Server, TlsError> {
    let (Some(cert), Some(key)) = (&flags.cert, &flags.key) else {
        // clap requires both or neither; with neither, plaintext.
        return Ok(Server::builder());
    };
    let mut config = ServerTlsConfig::new()
        .identity(Identity::from_pem(
            read_certificates("--tls-cert", cert)?,
            read_private_key("--tls-key", key)?,
        ))
        .timeout(HANDSHAKE_TIMEOUT);
    if let Some(client_ca) = &flags.client_ca {
        config = config.client_ca_root(Certificate::from_pem(read_certificates(
            "--tls-client-ca",
            client_ca,
        )?));
    }
    Server::builder()
        .tls_config(config)
        .map_err(|source| TlsError::Rejected {
            cert: cert.clone(),
            key: key.clone(),
            source,
        })
}

/// The PEM text of `path`, checked to hold at least one certificate.
fn read_certificates(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let pem = read(flag, path)?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .and_then(|certificates| match certificates.is_empty() {
            true => Err(rustls_pki_types::pem::Error::NoItemsFound),
            false => Ok(certificates),
        });
    match certificates {
        Ok(_) => Ok(pem),
        Err(why) => Err(not_pem(flag, path, "certificate", why)),
    }
}

/// The PEM text of `path`, checked to hold a private key.
fn read_private_key(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let pem = read(flag, path)?;
    match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(_) => Ok(pem),
        Err(why) => Err(not_pem(flag, path, "private key", why)),
    }
}

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        flag,
        path: path.to_owned(),
        source,
    })
}

fn not_pem(
    flag: &'static str,
    path: &Path,
    expected: &'static str,
    why: rustls_pki_types::pem::Error,
) -> TlsError {
    let path = path.to_owned();
    match why {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoPem {
            flag,
            path,
            expected,
        },
        why => TlsError::BadPem { flag, path, why },
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::Config;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("users-server").chain(args.iter().copied()))
    }

    #[test]
    fn without_tls_flags_the_server_speaks_plaintext() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.tls, TlsFlags::default());
        assert_eq!(config.tls.mode(), TlsMode::Off);
    }

    #[test]
    fn a_certificate_needs_its_key_and_a_key_its_certificate() {
        for args in [&["--tls-cert", "c.pem"][..], &["--tls-key", "k.pem"]] {
            let error = parse(args).unwrap_err();
            assert_eq!(
                error.kind(),
                clap::error::ErrorKind::MissingRequiredArgument,
                "{args:?}: {error}"
            );
        }
        let both = parse(&["--tls-cert", "c.pem", "--tls-key", "k.pem"]).unwrap();
        assert_eq!(both.tls.mode(), TlsMode::On);
    }

    #[test]
    fn a_client_ca_needs_the_servers_own_certificate() {
        let error = parse(&["--tls-client-ca", "ca.pem"]).unwrap_err();
        assert_eq!(
            error.kind(),
            clap::error::ErrorKind::MissingRequiredArgument,
            "{error}"
        );
        let mutual = parse(&[
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--tls-client-ca",
            "ca.pem",
        ])
        .unwrap();
        assert_eq!(mutual.tls.mode(), TlsMode::Mutual);
    }

    #[test]
    fn a_file_without_a_certificate_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("cert.pem");
        std::fs::write(&garbage, "not a certificate\n").unwrap();
        let flags = TlsFlags {
            cert: Some(garbage.clone()),
            key: Some(garbage.clone()),
            client_ca: None,
        };
        let error = server_builder(&flags).unwrap_err().to_string();
        assert_eq!(
            error,
            format!("--tls-cert {} holds no PEM certificate", garbage.display())
        );
    }
}
