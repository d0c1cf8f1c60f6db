//! The seed article's scenario, against a running server: store John, find
//! users named John, print them.
//!
//! ```sh
//! cargo run --release -p users-server            # in one terminal
//! cargo run -p users-client --example quickstart  # in another
//! ```
//!
//! Pass another endpoint as the first argument, e.g. `http://10.0.0.5:50051`.

use std::process::ExitCode;

use users_client::{ClientError, FindUsers, UsersClient};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("quickstart: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), ClientError> {
    let endpoint = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:50051".to_owned());
    let client = UsersClient::connect(endpoint).await?;

    let john = client.create_user("John").await?;
    println!("created: id={} name={:?}", john.id, john.name);

    let page = client.find_users(&FindUsers::new().name("John")).await?;
    for user in &page.users {
        println!("found:   id={} name={:?}", user.id, user.name);
    }
    Ok(())
}
