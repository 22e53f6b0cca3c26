//! The server: accepts connections and runs one session task for each.
//!
//! Shutdown is an argument: when the token is cancelled the server stops
//! accepting, idle sessions close, commands in flight get a grace period.

mod pacing;
mod peer_queue;
mod session;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::config::ServerConfig;
use crate::connection::Connection;
use crate::protocol::{Token, reply};
use crate::storage::Storage;

use pacing::Pacer;
use session::Session;

/// How many "server busy" answers may be in flight at once; past that an
/// excess connection is simply closed.
const MAX_BUSY_ANSWERS: usize = 64;

/// How long a "server busy" answer may take before it is abandoned.
const BUSY_ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `storage` on `listener` until `shutdown` is cancelled, then waits
/// up to the configured grace period for sessions to finish.
pub async fn run(
    listener: TcpListener,
    storage: Storage,
    config: ServerConfig,
    shutdown: CancellationToken,
) {
    let config = Arc::new(config);
    // tokio listens with a backlog of 128: a burst of connections beyond it
    // overflows the accept queue, and with SYN cookies a client whose
    // handshake was dropped there believes it is connected and waits for a
    // token forever. Listening again only resizes the queue (the kernel
    // caps it at `somaxconn`).
    let backlog = i32::try_from(config.max_connections)
        .unwrap_or(i32::MAX)
        .max(128);
    if let Err(error) = rustix::net::listen(&listener, backlog) {
        tracing::warn!(%error, backlog, "could not enlarge the listen backlog");
    }
    let connections = Arc::new(Semaphore::new(config.max_connections));
    let busy_answers = Arc::new(Semaphore::new(MAX_BUSY_ANSWERS));
    let tracker = TaskTracker::new();
    let next_id = AtomicU64::new(1);
    let mut accept_backoff = Duration::from_millis(10);

    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                accept_backoff = Duration::from_millis(10);
                accepted
            }
            Err(error) => {
                // Typically out of file descriptors: back off instead of spinning.
                tracing::warn!(%error, backoff = ?accept_backoff, "accept failed");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(accept_backoff) => {}
                }
                accept_backoff = (accept_backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        let span = tracing::info_span!("connection", id, %peer);
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(parent: &span, %error, "could not set TCP_NODELAY");
        }
        match Arc::clone(&connections).try_acquire_owned() {
            Ok(permit) => {
                let session = Session::new(stream, storage.clone(), Arc::clone(&config));
                let shutdown = shutdown.clone();
                tracker.spawn(
                    async move {
                        tracing::info!("connection opened");
                        let summary = session.run(shutdown).await;
                        tracing::info!(commands = summary.commands, reason = %summary.reason, "connection closed");
                        drop(permit);
                    }
                    .instrument(span),
                );
            }
            Err(_) => match Arc::clone(&busy_answers).try_acquire_owned() {
                Ok(permit) => {
                    let pacing = config.pacing;
                    tracker.spawn(
                        async move {
                            tracing::warn!("connection refused: server busy");
                            let _ = tokio::time::timeout(
                                BUSY_ANSWER_TIMEOUT,
                                answer_busy(stream, pacing),
                            )
                            .await;
                            drop(permit);
                        }
                        .instrument(span),
                    );
                }
                Err(_) => tracing::warn!(parent: &span, "connection dropped: server busy"),
            },
        }
    }

    tracker.close();
    tracing::info!(
        sessions = tracker.len(),
        "no longer accepting; waiting for sessions"
    );
    if tokio::time::timeout(config.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            remaining = tracker.len(),
            "grace period over; abandoning the remaining sessions (their connections close on exit)"
        );
    }
}

/// Tells a client beyond the connection limit that the server is busy: its
/// token, then the busy message as its welcome, then the connection closes.
async fn answer_busy(stream: TcpStream, pacing: bool) {
    let mut pacer = pacing.then(|| Pacer::new(&stream));
    let mut connection = Connection::new(stream, Token::generate());
    if connection.write_token().await.is_err() {
        return;
    }
    if let Some(pacer) = pacer.as_mut() {
        pacer.wait_until_read(connection.stream()).await;
    }
    if connection
        .write_message(reply::BUSY.as_bytes())
        .await
        .is_ok()
    {
        connection.close_gracefully(session::CLOSE_LINGER).await;
    }
}
