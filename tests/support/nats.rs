//! NATS JetStream for the change-event tests: [`TestStream`], a stream of
//! a test's own on the shared server (`USERS_TEST_NATS_URL`), deleted on
//! drop, and [`PrivateNats`], a `nats-server` of a test's own that it may
//! stop and start again without disturbing the others.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use async_nats::jetstream;
use users_client::UserEvent;

use crate::system::free_port;

/// The environment variable with the URL of the NATS server (JetStream on)
/// that the tests use.
pub const NATS_URL_VAR: &str = "USERS_TEST_NATS_URL";
/// Where the tests look for NATS without it.
const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
/// The `nats-server` program of [`PrivateNats`], if not in `PATH` or
/// `/usr/sbin`.
pub const NATS_SERVER_VAR: &str = "USERS_TEST_NATS_SERVER";

/// How long NATS may take to answer, at start and per request.
const PATIENCE: Duration = Duration::from_secs(30);

/// One message of the stream, as the relay published it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Its subject (`<prefix>.created`, ...).
    pub subject: String,
    /// Its `Nats-Msg-Id`.
    pub message_id: String,
    /// Its payload, decoded.
    pub event: UserEvent,
}

/// A JetStream stream and subject prefix of a test's own; the stream is
/// deleted on drop.
#[derive(Debug)]
pub struct TestStream {
    /// The NATS URL.
    pub url: String,
    /// The stream name, for `--events-nats-stream`.
    pub name: String,
    /// The subject prefix, for `--events-nats-subject-prefix`.
    pub subject_prefix: String,
}

impl TestStream {
    /// A fresh name and prefix on the shared NATS server; fails, with how
    /// to provide one, when it is unreachable.
    pub async fn new() -> Self {
        let url = std::env::var(NATS_URL_VAR).unwrap_or_else(|_| DEFAULT_NATS_URL.to_owned());
        let stream = Self::on(&url);
        if let Err(error) = connect(&url).await {
            panic!(
                "NATS is not reachable at {url} ({error}): start nats-server with JetStream \
                 (-js), or set {NATS_URL_VAR} to the URL of one"
            );
        }
        stream
    }

    /// A fresh name and prefix on the NATS server at `url` (which may be
    /// down now).
    pub fn on(url: &str) -> Self {
        let unique = uuid::Uuid::new_v4().simple().to_string();
        Self {
            url: url.to_owned(),
            name: format!("TEST_{unique}"),
            subject_prefix: format!("test.{unique}"),
        }
    }

    /// Makes `config` publish to this stream.
    pub fn configure(&self, config: &mut users_server::Config) {
        config.events_nats_url = Some(self.url.clone());
        config.events_nats_stream = self.name.clone();
        config.events_nats_subject_prefix = self.subject_prefix.clone();
    }

    /// The server flags that publish to this stream.
    pub fn server_args(&self) -> Vec<String> {
        vec![
            "--events-nats-url".to_owned(),
            self.url.clone(),
            "--events-nats-stream".to_owned(),
            self.name.clone(),
            "--events-nats-subject-prefix".to_owned(),
            self.subject_prefix.clone(),
        ]
    }

    /// Every message in the stream, in stream order; none if it does not
    /// exist yet.
    pub async fn messages(&self) -> Vec<Published> {
        let jetstream = jetstream::new(connect(&self.url).await.expect("cannot connect to NATS"));
        let Ok(mut stream) = jetstream.get_stream(&self.name).await else {
            return Vec::new();
        };
        let last = stream
            .info()
            .await
            .expect("cannot read the stream's info")
            .state
            .last_sequence;
        let mut messages = Vec::new();
        for sequence in 1..=last {
            let message = stream
                .get_raw_message(sequence)
                .await
                .expect("cannot read a message of the stream");
            let message_id = message
                .headers
                .get(async_nats::header::NATS_MESSAGE_ID)
                .map(|id| id.as_str().to_owned())
                .unwrap_or_default();
            messages.push(Published {
                subject: message.subject.to_string(),
                message_id,
                event: UserEvent::decode(&message.payload).expect("a payload that decodes"),
            });
        }
        messages
    }

    /// Waits until the stream holds `count` messages (or more); every
    /// message then.
    pub async fn wait_for_count(&self, count: usize) -> Vec<Published> {
        let started = Instant::now();
        loop {
            let messages = self.messages().await;
            if messages.len() >= count {
                return messages;
            }
            assert!(
                started.elapsed() < 3 * PATIENCE,
                "JetStream holds {} events after {:?}, not yet {count}",
                messages.len(),
                started.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the stream holds the event `sequence` (or later);
    /// every message then.
    pub async fn wait_for(&self, sequence: i64) -> Vec<Published> {
        let started = Instant::now();
        loop {
            let messages = self.messages().await;
            if messages
                .last()
                .is_some_and(|last| last.event.sequence >= sequence)
            {
                return messages;
            }
            assert!(
                started.elapsed() < 3 * PATIENCE,
                "JetStream holds {} events after {:?}, not yet event {sequence}",
                messages.len(),
                started.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestStream {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // Drop cannot await: a thread of its own, with a runtime of its own.
        let deleted = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?
                .block_on(async {
                    let client = connect(&url).await.ok()?;
                    jetstream::new(client).delete_stream(&name).await.ok()
                })
        });
        let _ = deleted.join();
    }
}

async fn connect(url: &str) -> Result<async_nats::Client, String> {
    match tokio::time::timeout(PATIENCE, async_nats::connect(url)).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {PATIENCE:?}")),
    }
}

/// A `nats-server` with JetStream, its store in a temporary directory, on
/// a free loopback port; killed, and its directory deleted, on drop.
#[derive(Debug)]
pub struct PrivateNats {
    dir: tempfile::TempDir,
    port: u16,
    /// `None` while stopped.
    server: Mutex<Option<Child>>,
}

impl PrivateNats {
    /// Starts it and waits until it accepts connections.
    pub async fn start() -> Self {
        let nats = Self {
            dir: tempfile::Builder::new()
                .prefix("users-test-nats-")
                .tempdir()
                .expect("cannot create a temporary directory"),
            port: free_port(),
            server: Mutex::new(None),
        };
        nats.start_again().await;
        nats
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills it with SIGKILL and waits until it is gone.
    pub fn kill(&self) {
        let mut server = self.server.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(mut child) = server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again, on the same port and store, after
    /// [`kill`](Self::kill); waits until it accepts clients.
    pub async fn start_again(&self) {
        let program = program();
        let child = Command::new(&program)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.path())
            .arg("-l")
            .arg(self.dir.path().join("nats-server.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start {} ({error}): install nats-server (Debian: nats-server), \
                     or set {NATS_SERVER_VAR} to it",
                    program.display()
                )
            });
        *self.server.lock().unwrap_or_else(PoisonError::into_inner) = Some(child);
        let started = Instant::now();
        loop {
            if let Ok(Ok(client)) =
                tokio::time::timeout(Duration::from_secs(1), async_nats::connect(self.url())).await
                && client.flush().await.is_ok()
            {
                return;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "nats-server did not answer within {PATIENCE:?}: {}",
                std::fs::read_to_string(self.dir.path().join("nats-server.log"))
                    .unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.kill();
    }
}

fn program() -> PathBuf {
    if let Ok(program) = std::env::var(NATS_SERVER_VAR) {
        return program.into();
    }
    let in_sbin = PathBuf::from("/usr/sbin/nats-server");
    if in_sbin.exists() {
        in_sbin
    } else {
        "nats-server".into()
    }
}
