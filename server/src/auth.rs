//! [`Authenticator`]: bearer tokens, checked on every call before the call
//! reaches a handler, and reloaded from their file on SIGHUP.

use std::{
    io,
    path::{Path, PathBuf},
    sync::{Arc, PoisonError, RwLock},
};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::{Request, Status};

use crate::error::ApiError;

/// The tokens a caller may present as `authorization: Bearer TOKEN`. Cheap
/// to clone; clones share the tokens, so a reload reaches them all.
///
/// Tokens are kept as SHA-256 digests and a presented token is hashed and
/// compared with each in constant time, so that neither the comparison's
/// time nor a memory dump gives a token away; tokens are never logged.
#[derive(Debug, Clone)]
pub struct Authenticator {
    file: PathBuf,
    digests: Arc<RwLock<Vec<[u8; 32]>>>,
}

/// Why the tokens file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    /// It could not be read.
    #[error("cannot read the tokens file {file}: {source}")]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// It holds no token: every call would be refused.
    #[error("the tokens file {file} holds no token (one per line)")]
    Empty {
        /// The file.
        file: PathBuf,
    },
}

impl Authenticator {
    /// Reads the tokens in `file`: one per line; blank lines and lines
    /// starting with `#` are skipped, surrounding whitespace is ignored.
    pub fn from_file(file: &Path) -> Result<Self, TokensError> {
        Ok(Self {
            file: file.to_owned(),
            digests: Arc::new(RwLock::new(read_digests(file)?)),
        })
    }

    /// Reads the file again and uses its tokens from now on; on failure
    /// keeps the tokens it had. Returns how many tokens it now holds.
    pub fn reload(&self) -> Result<usize, TokensError> {
        let digests = read_digests(&self.file)?;
        let count = digests.len();
        *self.digests.write().unwrap_or_else(PoisonError::into_inner) = digests;
        Ok(count)
    }

    /// Lets `request` through if it carries one of the tokens; otherwise
    /// UNAUTHENTICATED.
    pub fn check<T>(&self, request: Request<T>) -> Result<Request<T>, Status> {
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthenticated {
                why: "no bearer token (metadata `authorization: Bearer TOKEN`)",
            })?;
        let presented = digest(presented.trim());
        let digests = self.digests.read().unwrap_or_else(PoisonError::into_inner);
        // Every token is compared, whichever matches.
        let known = digests
            .iter()
            .fold(subtle::Choice::from(0), |found, token| {
                found | token.ct_eq(&presented)
            });
        if bool::from(known) {
            Ok(request)
        } else {
            Err(ApiError::Unauthenticated {
                why: "the bearer token is not valid",
            }
            .into())
        }
    }

    /// Reloads the tokens on every SIGHUP, for as long as it runs.
    #[cfg(unix)]
    pub async fn reload_on_sighup(self) {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGHUP: tokens will not be reloaded");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            match self.reload() {
                Ok(count) => {
                    tracing::info!(count, file = %self.file.display(), "reloaded the bearer tokens")
                }
                Err(error) => tracing::error!(%error, "kept the bearer tokens in use"),
            }
        }
    }
}

/// What stands in front of a service: an [`Authenticator`], or nothing
/// (every call goes through). A tonic interceptor either way, so that a
/// service has one type whether authentication is on or off.
#[derive(Debug, Clone, Default)]
pub struct Guard(pub Option<Authenticator>);

impl tonic::service::Interceptor for Guard {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        match &self.0 {
            Some(authenticator) => authenticator.check(request),
            None => Ok(request),
        }
    }
}

fn read_digests(file: &Path) -> Result<Vec<[u8; 32]>, TokensError> {
    let text = std::fs::read_to_string(file).map_err(|source| TokensError::Read {
        file: file.to_owned(),
        source,
    })?;
    let digests: Vec<_> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(digest)
        .collect();
    if digests.is_empty() {
        return Err(TokensError::Empty {
            file: file.to_owned(),
        });
    }
    Ok(digests)
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authenticator(tokens: &str) -> (tempfile::TempDir, Authenticator) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        std::fs::write(&file, tokens).unwrap();
        let auth = Authenticator::from_file(&file).unwrap();
        (dir, auth)
    }

    fn with_authorization(value: &str) -> Request<()> {
        let mut request = Request::new(());
        request
            .metadata_mut()
            .insert("authorization", value.parse().unwrap());
        request
    }

    #[test]
    fn only_listed_bearer_tokens_pass() {
        let (_dir, auth) = authenticator("# ops\nalpha-token\n\n  beta-token  \n");
        assert!(auth.check(with_authorization("Bearer alpha-token")).is_ok());
        assert!(auth.check(with_authorization("Bearer beta-token")).is_ok());
        for refused in [
            with_authorization("Bearer gamma-token"),
            with_authorization("Bearer alpha"),
            with_authorization("Bearer # ops"),
            with_authorization("alpha-token"),
            with_authorization("Basic alpha-token"),
            Request::new(()),
        ] {
            let status = auth.check(refused).unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unauthenticated);
            assert!(!status.message().contains("alpha"), "{}", status.message());
        }
    }

    #[test]
    fn a_reload_replaces_the_tokens_and_a_failed_one_keeps_them() {
        let (dir, auth) = authenticator("old\n");
        let file = dir.path().join("tokens");
        std::fs::write(&file, "new\n").unwrap();
        assert_eq!(auth.reload().unwrap(), 1);
        assert!(auth.check(with_authorization("Bearer new")).is_ok());
        assert!(auth.check(with_authorization("Bearer old")).is_err());

        std::fs::write(&file, "\n# nothing\n").unwrap();
        assert!(matches!(auth.reload(), Err(TokensError::Empty { .. })));
        assert!(auth.check(with_authorization("Bearer new")).is_ok(), "kept");
    }

    #[test]
    fn a_missing_or_empty_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        assert!(matches!(
            Authenticator::from_file(&missing),
            Err(TokensError::Read { .. })
        ));
        std::fs::write(dir.path().join("empty"), "").unwrap();
        assert!(matches!(
            Authenticator::from_file(&dir.path().join("empty")),
            Err(TokensError::Empty { .. })
        ));
    }
}
