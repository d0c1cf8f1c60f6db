//! [`DatabaseUrl`]: which backend, and where.

use std::{fmt, path::PathBuf, str::FromStr};

/// A parsed `--database-url`.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite://PATH`: a file, created if missing. `sqlite://users.db` is
    /// relative to the working directory, `sqlite:///var/lib/users.db` is
    /// absolute.
    Sqlite(PathBuf),
    /// `postgres://...` or `postgresql://...`, handed to the driver as is:
    /// several hosts too (`postgres://u@h1:5432,h2:5432/db?target_session_attrs=read-write`
    /// connects to whichever accepts writes).
    Postgres(String),
    /// `mysql://USER[:PASSWORD]@HOST[:PORT]/DB`, MySQL or MariaDB, handed to
    /// the driver as is; several hosts (`@h1:3306,h2:3306/`, a Galera
    /// cluster) are tried in order, each connection going to the first
    /// that answers ([`mysql::establish`](super::mysql::establish)).
    Mysql(String),
}

/// Why a database URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// The scheme is not one of ours.
    #[error(
        "unsupported database URL scheme '{0}': expected sqlite://PATH, postgres://... or mysql://..."
    )]
    UnsupportedScheme(String),
    /// No `scheme://` at all.
    #[error("'{0}' is not a database URL: expected sqlite://PATH, postgres://... or mysql://...")]
    NotAUrl(String),
    /// `sqlite://` with nothing after it.
    #[error("sqlite:// URL without a file path: expected sqlite://PATH, e.g. sqlite://users.db")]
    MissingSqlitePath,
    /// SQLite's `:memory:` would give every pooled connection its own empty
    /// database.
    #[error(
        "in-memory SQLite is not supported (each pooled connection would see its own database): use a file path"
    )]
    InMemorySqlite,
    /// A `postgres://` URL that the driver cannot parse.
    #[error("invalid PostgreSQL URL: {0}")]
    InvalidPostgres(String),
    /// A `mysql://` URL that the driver cannot parse.
    #[error("invalid MySQL URL: {0}")]
    InvalidMysql(String),
}

impl FromStr for DatabaseUrl {
    type Err = UrlError;

    fn from_str(text: &str) -> Result<Self, UrlError> {
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(UrlError::NotAUrl(text.to_owned()));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => match rest {
                "" => Err(UrlError::MissingSqlitePath),
                ":memory:" => Err(UrlError::InMemorySqlite),
                path => Ok(Self::Sqlite(PathBuf::from(path))),
            },
            "postgres" | "postgresql" => {
                // The driver's own parser: it knows the multi-host form,
                // which a generic URL parser refuses.
                tokio_postgres::Config::from_str(text)
                    .map_err(|error| UrlError::InvalidPostgres(error.to_string()))?;
                Ok(Self::Postgres(text.to_owned()))
            }
            "mysql" => {
                for (_, host_url) in super::mysql::hosts(text) {
                    mysql_async::Opts::from_url(&host_url)
                        .map_err(|error| UrlError::InvalidMysql(error.to_string()))?;
                }
                Ok(Self::Mysql(text.to_owned()))
            }
            _ => Err(UrlError::UnsupportedScheme(scheme.to_owned())),
        }
    }
}

/// Shows the URL with any password masked, so it is safe to log.
impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            Self::Postgres(text) | Self::Mysql(text) => f.write_str(&without_password(text)),
        }
    }
}

/// `text` with the password of its `scheme://user:password@` part, if any,
/// replaced by `***`. By hand, not with a URL parser: a multi-host
/// PostgreSQL URL is not a URL to one, and would come out unmasked.
fn without_password(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_owned();
    };
    // The user info ends at the last '@' before the path (a password may
    // hold '@' or '/' only percent-encoded, but be generous).
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return text.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => text.to_owned(),
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths_may_be_relative_or_absolute() {
        assert_eq!(
            "sqlite://users.db".parse(),
            Ok(DatabaseUrl::Sqlite("users.db".into()))
        );
        assert_eq!(
            "sqlite:///var/lib/users.db".parse(),
            Ok(DatabaseUrl::Sqlite("/var/lib/users.db".into()))
        );
    }

    #[test]
    fn both_postgres_schemes_are_accepted() {
        for url in [
            "postgres://u@localhost/db",
            "postgresql://u@localhost:5432/db",
        ] {
            assert_eq!(url.parse(), Ok(DatabaseUrl::Postgres(url.to_owned())));
        }
    }

    #[test]
    fn unusable_urls_say_what_is_wrong() {
        let error = |text: &str| text.parse::<DatabaseUrl>().unwrap_err().to_string();
        assert!(
            error("oracle://localhost/db").contains("unsupported database URL scheme 'oracle'")
        );
        assert!(error("mysql://root@localhost:notaport/db").contains("invalid MySQL URL"));
        assert!(error("users.db").contains("is not a database URL"));
        assert!(error("sqlite://").contains("without a file path"));
        assert!(error("sqlite://:memory:").contains("in-memory"));
        assert!(error("postgres://host:notaport/db").contains("invalid PostgreSQL URL"));
    }

    #[test]
    fn mysql_urls_are_accepted() {
        for url in [
            "mysql://root@127.0.0.1:3306/test",
            "mysql://root@127.0.0.1:3307,127.0.0.1:3308,127.0.0.1:3309/users",
        ] {
            assert_eq!(url.parse(), Ok(DatabaseUrl::Mysql(url.to_owned())));
        }
        let error = "mysql://root@127.0.0.1:3307,host:port/users"
            .parse::<DatabaseUrl>()
            .unwrap_err();
        assert!(error.to_string().contains("invalid MySQL URL"), "{error}");
    }

    #[test]
    fn postgres_urls_may_name_several_hosts() {
        let url = "postgres://app:s3cret@127.0.0.1:5433,127.0.0.1:5434/users?target_session_attrs=read-write";
        let parsed: DatabaseUrl = url.parse().unwrap();
        assert_eq!(parsed, DatabaseUrl::Postgres(url.to_owned()));
        assert_eq!(
            parsed.to_string(),
            "postgres://app:***@127.0.0.1:5433,127.0.0.1:5434/users?target_session_attrs=read-write"
        );
    }

    #[test]
    fn passwords_never_reach_the_logs() {
        let url: DatabaseUrl = "postgres://app:s3cret@db:5432/users".parse().unwrap();
        assert_eq!(url.to_string(), "postgres://app:***@db:5432/users");
        assert!(!format!("{url:?}").contains("s3cret"));
        let url: DatabaseUrl = "mysql://app:s3cret@db:3306/users".parse().unwrap();
        assert_eq!(url.to_string(), "mysql://app:***@db:3306/users");
        assert_eq!(
            without_password("postgres://app@db/users"),
            "postgres://app@db/users"
        );
        assert_eq!(
            without_password("postgres://db/users"),
            "postgres://db/users"
        );
        assert_eq!(
            without_password("postgres://app:p@ss@db/users"),
            "postgres://app:***@db/users"
        );
        assert_eq!(
            without_password("postgres://app:pw@db/users?note=a@b"),
            "postgres://app:***@db/users?note=a@b"
        );
    }
}
