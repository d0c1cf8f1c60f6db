//! Prints the change events a server publishes to NATS JetStream, from the
//! first one kept, then as they come: the way to see the stream without
//! the `nats` CLI.
//!
//! ```sh
//! cargo run --release -p users-server -- --events-nats-url nats://127.0.0.1:4222   # one terminal
//! cargo run -p users-client --example nats_events                                  # another
//! ```
//!
//! Arguments: the NATS URL (default `nats://127.0.0.1:4222`) and the stream
//! (default `USERS_EVENTS`, the server's `--events-nats-stream`).

use std::process::ExitCode;

use async_nats::jetstream::{self, consumer::pull::OrderedConfig};
use futures_util::StreamExt;
use users_client::UserEvent;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("nats_events: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned());
    let stream = args.next().unwrap_or_else(|| "USERS_EVENTS".to_owned());

    let jetstream = jetstream::new(async_nats::connect(&url).await?);
    // An ordered consumer: every message once, in stream order, nothing
    // left on the server when this ends.
    let consumer = jetstream
        .get_stream(&stream)
        .await?
        .create_consumer(OrderedConfig::default())
        .await?;
    let mut messages = consumer.messages().await?;
    while let Some(message) = messages.next().await {
        let message = message?;
        match UserEvent::decode(&message.payload) {
            Ok(event) => println!(
                "{:>8} {:<7} id={} name={:?} etag={} request_id={}",
                event.sequence,
                format!("{:?}", event.kind).to_lowercase(),
                event.user.id,
                event.user.name,
                event.user.etag,
                event.request_id,
            ),
            Err(error) => eprintln!("{}: {error}", message.subject),
        }
    }
    Ok(())
}
