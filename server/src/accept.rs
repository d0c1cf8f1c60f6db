//! [`incoming`]: the connections the listener accepts, as the gRPC server
//! takes them.

use std::{io, time::Duration};

use futures_util::Stream;
use tokio::net::{TcpListener, TcpStream};

/// How long to wait before accepting again after running out of file
/// descriptors or memory.
const PAUSE_WHEN_EXHAUSTED: Duration = Duration::from_millis(100);

/// Every connection `listener` accepts, with TCP_NODELAY set (tonic leaves
/// it off for a listener passed in; without it small replies can wait
/// 40 ms for Nagle's algorithm).
///
/// When an accept fails for want of file descriptors or memory, the next
/// one waits [`PAUSE_WHEN_EXHAUSTED`]: the pending connection stays in the
/// listen backlog, so retrying at once (as tonic's own listener does) fails
/// again at once, and spun a core for as long as a flood of idle
/// connections held the descriptors. Other failures concern one
/// connection (the client reset it first): the next is accepted.
pub fn incoming(listener: TcpListener) -> impl Stream<Item = io::Result<TcpStream>> {
    futures_util::stream::unfold(listener, |listener| async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    if let Err(error) = stream.set_nodelay(true) {
                        tracing::debug!(%error, "cannot set TCP_NODELAY");
                    }
                    return Some((Ok(stream), listener));
                }
                Err(error) if is_exhaustion(&error) => {
                    tracing::warn!(
                        %error,
                        pause_ms = PAUSE_WHEN_EXHAUSTED.as_millis() as u64,
                        "cannot accept connections"
                    );
                    tokio::time::sleep(PAUSE_WHEN_EXHAUSTED).await;
                }
                Err(error) => tracing::debug!(%error, "a connection failed before it was accepted"),
            }
        }
    })
}

/// Whether accepting failed for want of a resource of the process or the
/// system rather than because of the connection.
fn is_exhaustion(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}
