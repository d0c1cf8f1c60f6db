//! [`ServerProcess`]: the real `users-server` program as a process of its
//! own, which a test may kill with SIGKILL and start again.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, PoisonError},
    thread,
    time::{Duration, Instant},
};

use users_client::{RetryPolicy, UsersClient};

/// The program (`tests/bin/users_server.rs`, the same as `users-server`).
const PROGRAM: &str = env!("CARGO_BIN_EXE_users-server-under-test");

/// A running `users-server`, serving on a free loopback port.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    /// Where it serves.
    pub addr: SocketAddr,
    /// Every line it has logged, in every run.
    log: Arc<Mutex<Vec<String>>>,
    args: Vec<String>,
}

impl ServerProcess {
    /// Starts the server on `database_url`, with `args` on top of the
    /// defaults, and waits until it serves.
    pub fn start(database_url: &str, args: &[&str]) -> Self {
        let mut args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
        args.extend(["--database-url".to_owned(), database_url.to_owned()]);
        let log = Arc::new(Mutex::new(Vec::new()));
        let (child, addr) = spawn(&args, &log, "127.0.0.1:0");
        Self {
            child,
            addr,
            log,
            args,
        }
    }

    /// A client of this server, which sends each call once: the tests
    /// watch what the server answers.
    pub async fn client(&self) -> UsersClient {
        UsersClient::builder(format!("http://{}", self.addr))
            .retry_policy(RetryPolicy::none())
            .connect()
            .await
            .expect("cannot connect to the server")
    }

    /// Kills it with SIGKILL: no shutdown, no flush, like a crash or the OOM
    /// killer.
    pub fn kill(&mut self) {
        self.child.kill().expect("cannot kill the server");
        self.child.wait().expect("cannot reap the server");
    }

    /// Starts it again with the same settings (on a new port), after
    /// [`kill`](Self::kill).
    pub fn restart(&mut self) {
        let (child, addr) = spawn(&self.args, &self.log, "127.0.0.1:0");
        self.child = child;
        self.addr = addr;
    }

    /// Starts it again on the same port, after [`kill`](Self::kill): its
    /// clients' connections break, and they connect again.
    pub fn restart_on_same_port(&mut self) {
        let (child, addr) = spawn(&self.args, &self.log, &self.addr.to_string());
        self.child = child;
        self.addr = addr;
    }

    /// Sends it SIGTERM, as an orchestrator stopping it would.
    pub fn terminate(&self) {
        self.signal("-TERM");
    }

    /// Sends it SIGHUP, as an operator asking it to reload would.
    pub fn hang_up(&self) {
        self.signal("-HUP");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("cannot run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Every line logged so far.
    pub fn log(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .join("\n")
    }

    /// Waits up to `timeout` for the process to exit; its exit status.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("cannot check the server") {
                return Some(status);
            }
            if started.elapsed() >= timeout {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the process is still running (it has not exited or crashed).
    pub fn is_running(&mut self) -> bool {
        self.child
            .try_wait()
            .expect("cannot check the server")
            .is_none()
    }

    /// The lines logged so far that contain `text`.
    pub fn log_lines_with(&self, text: &str) -> Vec<String> {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.iter()
            .filter(|line| line.contains(text))
            .cloned()
            .collect()
    }

    /// The lines logged so far, for a failure message.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        log[log.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the program and reads its log until it says where it serves.
fn spawn(args: &[String], log: &Arc<Mutex<Vec<String>>>, listen: &str) -> (Child, SocketAddr) {
    let mut child = Command::new(PROGRAM)
        .args(["--listen", listen])
        .args(args)
        .env_clear()
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start users-server");
    let (serving, addr) = std::sync::mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().expect("stderr is piped"));
    let log = Arc::clone(log);
    thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if let Some((_, rest)) = line.split_once("addr=") {
                let _ = serving.send(rest.split_whitespace().next().map(str::to_owned));
            }
            log.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(line);
        }
        let _ = serving.send(None);
    });
    let started = Instant::now();
    match addr.recv_timeout(Duration::from_secs(60)) {
        Ok(Some(addr)) => (child, addr.parse().expect("the logged address parses")),
        _ => {
            let _ = child.kill();
            panic!(
                "users-server did not start within {:?}: {:?}",
                started.elapsed(),
                child.wait()
            )
        }
    }
}
