//! `users-server`: parses the configuration, opens the database and serves
//! until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use users_server::{Application, Config, shutdown_signal, telemetry};

/// mimalloc over glibc's malloc: fewer CPU cycles per call under load, and
/// less memory held (measurements in BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    let logs = telemetry::init();
    let result = match Application::build(&config).await {
        Ok(app) => app.run_until(shutdown_signal()).await,
        Err(error) => Err(error),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            drop(logs); // flush the log lines before the error line
            // One line, for humans and for log scrapers alike.
            eprintln!("users-server: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
