//! `--config FILE`: settings from a TOML file, under the environment and
//! the command line.
//!
//! Each key is a flag's long name (`pool-size = 16`, `pool_size` works
//! too), each value what the flag would take (`true` for a switch, an
//! array for a flag given several times). Precedence: command line, then
//! environment, then file, then defaults. The file's settings become
//! command-line arguments placed before the real ones, unless the
//! setting's flag is on the command line or its environment variable is
//! set, so clap applies every rule and default as it does for flags.

use std::{ffi::OsString, path::PathBuf};

use clap::{Command, CommandFactory};

use crate::Config;

/// The flag that names the file, and its environment variable.
pub const FLAG: &str = "config";
/// The environment variable for `--config`.
pub const ENV: &str = "USERS_CONFIG";

/// Why the file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// It could not be read.
    #[error("cannot read {file}: {source}")]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It is not TOML.
    #[error("{file} is not valid TOML: {message}")]
    Parse {
        /// The file.
        file: PathBuf,
        /// Where and why.
        message: String,
    },
    /// A key names no flag.
    #[error(
        "{file}: unknown setting {key:?} (the settings are the flags of `users-server --help`)"
    )]
    UnknownKey {
        /// The file.
        file: PathBuf,
        /// The key.
        key: String,
    },
    /// A value no flag takes (a table, or an array of arrays).
    #[error("{file}: setting {key:?} must be a string, number, boolean or array of those")]
    BadValue {
        /// The file.
        file: PathBuf,
        /// The key.
        key: String,
    },
}

/// `args` (the program name first) with the settings of the `--config`
/// file, if one is named on the command line or in `USERS_CONFIG`, put in
/// front; `env` reads an environment variable.
pub fn with_file_settings(
    args: Vec<OsString>,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<Vec<OsString>, ConfigFileError> {
    let Some(file) = named_file(&args).or_else(|| env(ENV).map(PathBuf::from)) else {
        return Ok(args);
    };
    let text = std::fs::read_to_string(&file).map_err(|source| ConfigFileError::Read {
        file: file.clone(),
        source,
    })?;
    let table: toml::Table =
        text.parse()
            .map_err(|error: toml::de::Error| ConfigFileError::Parse {
                file: file.clone(),
                message: error.to_string(),
            })?;
    let command = Config::command();
    let mut settings = Vec::new();
    for (key, value) in table {
        let long = key.replace('_', "-");
        let Some(arg) = flag(&command, &long) else {
            return Err(ConfigFileError::UnknownKey { file, key });
        };
        if on_command_line(&args, &long)
            || arg
                .get_env()
                .is_some_and(|name| env(&name.to_string_lossy()).is_some())
        {
            continue; // The command line and the environment win.
        }
        let bad_value = || ConfigFileError::BadValue {
            file: file.clone(),
            key: key.clone(),
        };
        let values = match value {
            toml::Value::Array(items) => items,
            single => vec![single],
        };
        for value in values {
            match value {
                toml::Value::Boolean(true) => settings.push(format!("--{long}").into()),
                toml::Value::Boolean(false) => {}
                toml::Value::String(text) => settings.push(format!("--{long}={text}").into()),
                toml::Value::Integer(_) | toml::Value::Float(_) => {
                    settings.push(format!("--{long}={value}").into());
                }
                _ => return Err(bad_value()),
            }
        }
    }
    let mut args = args.into_iter();
    Ok(args
        .next()
        .into_iter()
        .chain(settings)
        .chain(args)
        .collect())
}

/// The flag `--long`, other than `--config` itself.
fn flag<'c>(command: &'c Command, long: &str) -> Option<&'c clap::Arg> {
    command
        .get_arguments()
        .find(|arg| arg.get_long() == Some(long) && long != FLAG)
}

/// Whether `--long` is on the command line.
fn on_command_line(args: &[OsString], long: &str) -> bool {
    let flag = format!("--{long}");
    args.iter().skip(1).any(|arg| {
        let arg = arg.to_string_lossy();
        arg == flag || arg.starts_with(&format!("{flag}="))
    })
}

/// The file `--config FILE` or `--config=FILE` names on the command line.
fn named_file(args: &[OsString]) -> Option<PathBuf> {
    let mut args = args.iter().skip(1);
    while let Some(arg) = args.next() {
        let arg = arg.to_string_lossy();
        if arg == format!("--{FLAG}") {
            return args.next().map(PathBuf::from);
        }
        if let Some(file) = arg.strip_prefix(&format!("--{FLAG}=")) {
            return Some(PathBuf::from(file));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn load(file: &str, args: &[&str], env: &[(&str, &str)]) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        std::fs::write(&path, file).unwrap();
        let mut all: Vec<OsString> = vec!["users-server".into(), "--config".into(), path.into()];
        all.extend(args.iter().map(OsString::from));
        let env = |name: &str| {
            env.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| OsString::from(value))
        };
        let args = with_file_settings(all, env).map_err(|error| error.to_string())?;
        Config::try_parse_from(args).map_err(|error| error.to_string())
    }

    #[test]
    fn file_settings_apply_under_flags() {
        let file = "listen = \"127.0.0.1:7000\"\npool-size = 3\npool_timeout = \"2s\"\ngrpc-web = true\ncors-allow-origin = [\"https://a.example\", \"https://b.example\"]\n";
        let config = load(file, &[], &[]).unwrap();
        assert_eq!(config.listen.port(), 7000);
        assert_eq!(config.pool_size, 3);
        assert_eq!(config.pool_timeout, std::time::Duration::from_secs(2));
        assert!(config.grpc_web);
        assert_eq!(config.cors_allow_origins.len(), 2);

        let config = load(file, &["--pool-size", "9"], &[]).unwrap();
        assert_eq!(config.pool_size, 9, "the command line wins");
    }

    #[test]
    fn the_environment_wins_over_the_file() {
        // clap reads the real environment, which this test cannot set, so
        // it checks that the file's setting is left out when the variable
        // is set.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        std::fs::write(&path, "pool-size = 3\nlisten = \"127.0.0.1:7000\"\n").unwrap();
        let args = vec![
            "users-server".into(),
            "--config".into(),
            path.into_os_string(),
        ];
        let env = |name: &str| (name == "USERS_POOL_SIZE").then(|| OsString::from("12"));
        let args = with_file_settings(args, env).unwrap();
        let args: Vec<_> = args
            .iter()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect();
        assert!(
            args.contains(&"--listen=127.0.0.1:7000".to_owned()),
            "{args:?}"
        );
        assert!(
            !args.iter().any(|arg| arg.starts_with("--pool-size")),
            "{args:?}"
        );
    }

    #[test]
    fn unknown_keys_and_bad_files_are_errors_that_name_the_file() {
        let unknown = load("pool-sise = 3\n", &[], &[]).unwrap_err();
        assert!(
            unknown.contains("unknown setting \"pool-sise\""),
            "{unknown}"
        );
        let not_toml = load("pool-size = \n", &[], &[]).unwrap_err();
        assert!(not_toml.contains("is not valid TOML"), "{not_toml}");
        let table = load("[listen]\nport = 1\n", &[], &[]).unwrap_err();
        assert!(table.contains("must be a string"), "{table}");
        let bad = load("pool-size = \"many\"\n", &[], &[]).unwrap_err();
        assert!(bad.contains("pool-size"), "{bad}");
    }
}
