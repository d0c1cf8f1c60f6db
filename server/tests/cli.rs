//! The `users-server` binary as an operator meets it: flags, exit codes,
//! error lines, signals.

mod support;

use std::{
    process::{Command, Output},
    time::Duration,
};

use support::{server, start};
use users_client::UsersClient;

/// Runs the server with `args` until it exits; it must exit on its own.
fn run_to_exit(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    server()
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .output()
        .unwrap()
}

fn assert_one_line_error(output: &Output, expected: &str) {
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("users-server: "), "{stderr}");
    assert!(last.contains(expected), "expected {expected:?} in {last:?}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn an_unsupported_url_scheme_is_a_one_line_error_and_exit_code_2() {
    let output = run_to_exit(&["--database-url", "oracle://scott@localhost/orcl"]);
    assert_one_line_error(
        &output,
        "invalid --database-url: unsupported database URL scheme 'oracle'",
    );
}

#[test]
fn a_url_without_a_scheme_is_a_one_line_error_and_exit_code_2() {
    let output = run_to_exit(&["--database-url", "users.db"]);
    assert_one_line_error(&output, "'users.db' is not a database URL");
}

#[test]
fn a_sqlite_file_that_cannot_be_created_is_a_one_line_error_and_exit_code_2() {
    let output = run_to_exit(&["--database-url", "sqlite:///no/such/directory/users.db"]);
    assert_one_line_error(
        &output,
        "cannot open database sqlite:///no/such/directory/users.db",
    );
}

#[test]
fn an_unreachable_postgres_is_a_one_line_error_and_exit_code_2() {
    // Port 1 on loopback: nothing listens there.
    let output = run_to_exit(&["--database-url", "postgres://app:secret@127.0.0.1:1/users"]);
    assert_one_line_error(
        &output,
        "cannot open database postgres://app:***@127.0.0.1:1/users",
    );
    assert!(!String::from_utf8_lossy(&output.stderr).contains("secret"));
}

#[test]
fn an_unreachable_mysql_is_a_one_line_error_and_exit_code_2() {
    let output = run_to_exit(&["--database-url", "mysql://app:secret@127.0.0.1:1/users"]);
    assert_one_line_error(
        &output,
        "cannot open database mysql://app:***@127.0.0.1:1/users",
    );
    assert!(!String::from_utf8_lossy(&output.stderr).contains("secret"));
}

#[test]
fn a_malformed_mysql_url_is_a_one_line_error_and_exit_code_2() {
    let output = run_to_exit(&["--database-url", "mysql://root@localhost:notaport/users"]);
    assert_one_line_error(&output, "invalid --database-url: invalid MySQL URL");
}

#[test]
fn read_replicas_without_postgres_are_a_one_line_error_and_exit_code_2() {
    let output = run_to_exit(&["--read-replica-url", "postgres://app@127.0.0.1:1/users"]);
    assert_one_line_error(
        &output,
        "--read-replica-url needs a PostgreSQL --database-url",
    );

    let output = run_to_exit(&[
        "--database-url",
        "postgres://app@127.0.0.1:1/users",
        "--read-replica-url",
        "mysql://app:secret@127.0.0.1:1/users",
    ]);
    assert_one_line_error(
        &output,
        "invalid --read-replica-url mysql://app:***@127.0.0.1:1/users: read replicas are PostgreSQL hot standbys",
    );
    assert!(!String::from_utf8_lossy(&output.stderr).contains("secret"));

    let output = run_to_exit(&[
        "--database-url",
        "postgres://app@127.0.0.1:1/users",
        "--read-replica-url",
        "standby:5432",
    ]);
    assert_one_line_error(
        &output,
        "invalid --read-replica-url: 'standby:5432' is not a database URL",
    );
}

#[test]
fn an_address_in_use_is_a_one_line_error_and_exit_code_2() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let output = server()
        .args(["--listen", &addr])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_one_line_error(&output, &format!("cannot listen on {addr}"));
}

#[test]
fn a_missing_tls_certificate_is_a_one_line_error_and_exit_code_2() {
    let output = run_to_exit(&[
        "--tls-cert",
        "/no/such/server.pem",
        "--tls-key",
        "/no/such/server.key",
    ]);
    assert_one_line_error(
        &output,
        "cannot read --tls-cert /no/such/server.pem: No such file or directory",
    );
}

#[test]
fn a_tls_certificate_that_is_not_pem_is_a_one_line_error_and_exit_code_2() {
    let files = tempfile::tempdir().unwrap();
    let garbage = files.path().join("server.pem");
    std::fs::write(&garbage, "this is no certificate\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    // From the environment, as a container spec would set them.
    let output = server()
        .env("USERS_TLS_CERT", &garbage)
        .env("USERS_TLS_KEY", &garbage)
        .args(["--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_one_line_error(
        &output,
        &format!("--tls-cert {} holds no PEM certificate", garbage.display()),
    );
}

#[test]
fn a_tls_certificate_without_its_key_is_refused_by_the_command_line() {
    let output = run_to_exit(&["--tls-cert", "server.pem"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--tls-key <PATH>"), "{stderr}");
}

#[test]
fn a_metrics_address_in_use_is_a_one_line_error_and_exit_code_2() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = run_to_exit(&["--metrics-listen", &addr]);
    assert_one_line_error(&output, &format!("cannot serve metrics on {addr}"));
}

/// A server started in a temporary working directory, with its log lines.
#[tokio::test]
async fn sigterm_stops_the_server_gracefully_with_exit_code_0() {
    let mut server = start(&[]);
    let client = UsersClient::connect(format!("http://{}", server.addr))
        .await
        .unwrap();
    client.create_user("John").await.unwrap();

    let killed = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || {
        let status = server.child.wait().unwrap();
        (status, server)
    })
    .await
    .unwrap();
    let (status, server) = status;
    assert_eq!(status.code(), Some(0));
    let log: Vec<String> = server.log.try_iter().collect();
    assert!(log.iter().any(|line| line.contains("stopped")), "{log:#?}");
}

#[tokio::test]
async fn by_default_users_are_stored_in_users_db_in_the_working_directory() {
    let mut server = start(&[]);
    let client = UsersClient::connect(format!("http://{}", server.addr))
        .await
        .unwrap();
    client.create_user("John").await.unwrap();
    assert!(server.dir.path().join("users.db").exists());

    // Logged once per call: method, request id, status code, latency.
    let rpc_line = loop {
        let line = server.log.recv_timeout(Duration::from_secs(10)).unwrap();
        if line.contains("rpc") {
            break line;
        }
    };
    assert!(rpc_line.contains(r#"method="CreateUser""#), "{rpc_line}");
    assert!(rpc_line.contains("request_id="), "{rpc_line}");
    assert!(rpc_line.contains("code=Ok"), "{rpc_line}");
    assert!(rpc_line.contains("latency_us="), "{rpc_line}");

    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

/// `--config FILE` settings apply under the environment, which applies
/// under the command line: a bad URL from each layer in turn shows which
/// one won.
#[test]
fn config_file_settings_yield_to_the_environment_and_to_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.toml");
    std::fs::write(
        &file,
        "# users-server settings\ndatabase-url = \"sqlserver://from-the-file/db\"\npool-size = 2\n",
    )
    .unwrap();
    let run = |env: Option<&str>, args: &[&str]| {
        let mut command = server();
        command
            .args(["--listen", "127.0.0.1:0", "--config"])
            .arg(&file)
            .args(args)
            .current_dir(dir.path());
        if let Some(url) = env {
            command.env("DATABASE_URL", url);
        }
        command.output().unwrap()
    };

    let from_file = run(None, &[]);
    assert_one_line_error(&from_file, "unsupported database URL scheme 'sqlserver'");

    let from_env = run(Some("oracle://from-the-environment/db"), &[]);
    assert_one_line_error(&from_env, "unsupported database URL scheme 'oracle'");

    let from_flag = run(
        Some("oracle://from-the-environment/db"),
        &["--database-url", "db2://from-the-flag/db"],
    );
    assert_one_line_error(&from_flag, "unsupported database URL scheme 'db2'");
}

#[test]
fn a_config_file_with_an_unknown_setting_is_a_one_line_error_and_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.toml");
    std::fs::write(&file, "pool-sise = 4\n").unwrap();
    let output = run_to_exit(&["--config", file.to_str().unwrap()]);
    assert_one_line_error(&output, "unknown setting \"pool-sise\"");
}
