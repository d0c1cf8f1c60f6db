//! The subcommands, parsed from command lines, against a real users-server
//! running in this process on a temporary SQLite database.

use std::path::PathBuf;

use clap::Parser;
use tokio::task::JoinHandle;
use users_server::{Application, Config};

use crate::error::BenchError;
use crate::report::Report;
use crate::{Cli, Command, load, seed, sqlite_ceiling, sqlite_seed};

struct TestServer {
    endpoint: String,
    database: PathBuf,
    serving: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

async fn start_server() -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("users.db");
    let url = format!("sqlite://{}", database.display());
    let config = Config::new("127.0.0.1:0".parse().unwrap(), url);
    let app = Application::build(&config).await.unwrap();
    let endpoint = format!("http://{}", app.local_addr());
    let serving = tokio::spawn(async move {
        app.run_until(std::future::pending()).await.unwrap();
    });
    TestServer {
        endpoint,
        database,
        serving,
        _dir: dir,
    }
}

fn parse(args: &[&str]) -> Command {
    Cli::try_parse_from(std::iter::once("users-bench").chain(args.iter().copied()))
        .unwrap()
        .command
}

async fn load(server: &TestServer, args: &[&str]) -> Report {
    let mut line = vec!["load", "--endpoint", &server.endpoint];
    line.extend_from_slice(args);
    let Command::Load(args) = parse(&line) else {
        unreachable!()
    };
    load::run(&args).await.unwrap()
}

fn ceiling(server: &TestServer, args: &[&str]) -> Result<Report, BenchError> {
    let database = server.database.display().to_string();
    let mut line = vec!["sqlite-ceiling", "--database", &database];
    line.extend_from_slice(args);
    let Command::SqliteCeiling(args) = parse(&line) else {
        unreachable!()
    };
    sqlite_ceiling::run(&args)
}

const SHORT: [&str; 4] = ["--duration", "700ms", "--warmup", "100ms"];
/// For the ceiling runs, which write to the server's own SQLite file: a
/// write that has to wait for the server's writer (up to the busy timeout)
/// once left a 700 ms run with no call finished, in CI.
const CEILING: [&str; 4] = ["--duration", "3s", "--warmup", "100ms"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_load_and_ceiling_against_a_real_server() {
    let server = start_server().await;
    let Command::Seed(args) = parse(&[
        "seed",
        "--endpoint",
        &server.endpoint,
        "--users",
        "200",
        "--names",
        "20",
    ]) else {
        unreachable!()
    };
    seed::run(&args).await.unwrap();
    let pid = std::process::id().to_string();

    // 10 users a name, 100 a prefix: every find gets a full page.
    for rpc in [
        "find-name",
        "find-prefix",
        "get",
        "create",
        "create-with-request-id",
    ] {
        let mut args = vec![
            "--rpc",
            rpc,
            "--names",
            "20",
            "--users",
            "200",
            "--concurrency",
            "4",
        ];
        args.extend_from_slice(&["--server-pid", &pid]);
        args.extend_from_slice(&SHORT);
        let report = load(&server, &args).await;
        assert!(report.calls > 0, "{report}");
        assert!(report.ensure_no_failures().is_ok(), "{report}");
        assert!(report.peak_rss_mib.is_some_and(|mib| mib > 0.0), "{report}");
        assert_eq!(report.connections, 4, "no more connections than calls");
    }

    // Names 20..40 were never seeded: their pages come back empty.
    let mut args = vec!["--rpc", "find-name", "--names", "40"];
    args.extend_from_slice(&SHORT);
    let report = load(&server, &args).await;
    assert!(report.errors["wrong_result"] > 0, "{report}");
    let error = report.ensure_no_failures().unwrap_err();
    assert_eq!(error.exit_code(), 3);

    // Open loop: about the asked rate, and the rate in the report.
    let mut args = vec!["--rpc", "create", "--rate", "200"];
    args.extend_from_slice(&SHORT);
    let report = load(&server, &args).await;
    assert_eq!(report.rate, Some(200.0));
    assert!((120..=160).contains(&report.calls), "{report}");

    for (rpc, threads) in [
        ("find-name", "2"),
        ("find-prefix", "2"),
        ("get", "2"),
        ("create", "1"),
        ("create-with-request-id", "1"),
    ] {
        let mut args = vec![
            "--rpc",
            rpc,
            "--threads",
            threads,
            "--names",
            "20",
            "--users",
            "200",
        ];
        args.extend_from_slice(&CEILING);
        let report = ceiling(&server, &args).unwrap();
        assert!(report.calls > 0, "{report}");
        assert!(report.ensure_no_failures().is_ok(), "{report}");
    }
    // Grouped inserts count each insert as a call.
    let mut args = vec!["--rpc", "create", "--group", "16"];
    args.extend_from_slice(&SHORT);
    let report = ceiling(&server, &args).unwrap();
    assert!(
        report.calls >= 16 && report.calls.is_multiple_of(16),
        "{report}"
    );
    assert!(report.ensure_no_failures().is_ok(), "{report}");
    let refused = ceiling(&server, &["--rpc", "create", "--threads", "2"]).unwrap_err();
    assert!(matches!(refused, BenchError::InvalidInput(_)), "{refused}");

    // Direct seeding lands in the table the server reads.
    let database = server.database.display().to_string();
    let Command::SqliteSeed(args) = parse(&[
        "sqlite-seed",
        "--database",
        &database,
        "--users",
        "100",
        "--names",
        "20",
    ]) else {
        unreachable!()
    };
    sqlite_seed::run(&args).unwrap();
    let mut args = vec!["--rpc", "find-name", "--names", "20"];
    args.extend_from_slice(&SHORT);
    assert!(load(&server, &args).await.ensure_no_failures().is_ok());
}

#[tokio::test]
async fn an_unreachable_server_fails_cleanly() {
    let Command::Load(args) = parse(&[
        "load",
        "--endpoint",
        "http://127.0.0.1:1",
        "--rpc",
        "find-name",
    ]) else {
        unreachable!()
    };
    let error = load::run(&args).await.unwrap_err();
    assert!(matches!(error, BenchError::Connect { .. }), "{error}");
    assert_eq!(error.exit_code(), 1);
}
