//! The `users-server` program, built once more in this package so that the
//! fault tests can run it as a process of its own and kill it: Cargo tells
//! integration tests where their own package's binaries are, and no others.

use std::process::ExitCode;

/// As in the real binary (`server/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    users_server::run()
}
