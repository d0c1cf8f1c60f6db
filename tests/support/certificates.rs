//! [`TestCertificates`]: a CA, the certificates it signs for a server and a
//! client, and a second CA that has nothing to do with them, made afresh
//! for each test and written as PEM files, as an operator would have them.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tempfile::TempDir;

/// PEM files in a temporary directory, deleted on drop.
///
/// - `ca.pem`: the CA the server's and the client's certificates chain to.
/// - `server.pem`, `server.key`: for `localhost` and `127.0.0.1`.
/// - `client.pem`, `client.key`: a client certificate from `ca.pem`.
/// - `other-ca.pem`: an unrelated CA, and `other-client.pem`,
///   `other-client.key`, a client certificate it signed.
#[derive(Debug)]
pub struct TestCertificates {
    dir: TempDir,
}

impl TestCertificates {
    /// Makes new keys and certificates.
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, pem: String| std::fs::write(dir.path().join(name), pem).unwrap();

        let ca = Ca::new("users test CA");
        write("ca.pem", ca.pem.clone());
        let (server, server_key) = ca.sign("users server", ExtendedKeyUsagePurpose::ServerAuth);
        write("server.pem", server);
        write("server.key", server_key);
        let (client, client_key) = ca.sign("users client", ExtendedKeyUsagePurpose::ClientAuth);
        write("client.pem", client);
        write("client.key", client_key);

        let other = Ca::new("an unrelated CA");
        write("other-ca.pem", other.pem.clone());
        let (client, client_key) = other.sign("users client", ExtendedKeyUsagePurpose::ClientAuth);
        write("other-client.pem", client);
        write("other-client.key", client_key);
        Self { dir }
    }

    /// The directory of the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The file `name` (`ca.pem`, `server.key`, ...).
    pub fn path(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        assert!(path.exists(), "no test certificate file {name}");
        path
    }
}

/// A certificate authority: its certificate, and what signs with its key.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Self {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `localhost` and `127.0.0.1` named `name`, for
    /// `usage`, and its private key, as PEM.
    fn sign(&self, name: &str, usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().unwrap();
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        (certificate.pem(), key.serialize_pem())
    }
}
