//! The server: accepts connections and runs one session task for each.
//!
//! Shutdown is an argument: when the token is cancelled the server stops
//! accepting, idle sessions close, commands in flight get a grace period.

mod handshake;
mod pacing;
mod peer_queue;
mod session;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::config::ServerConfig;
use crate::connection::Connection;
use crate::executor::Service;
use crate::protocol::{Token, reply};
use crate::storage::Storage;
use crate::stream::Stream;

use pacing::Pacer;
use session::Session;

/// How many refusals ("server busy", "banned") may be in flight at once;
/// past that an excess connection is simply closed.
const MAX_REFUSALS: usize = 64;

/// Serves `storage` on `listener` until `shutdown` is cancelled, then waits
/// up to the configured grace period for sessions to finish.
pub async fn run(
    listener: TcpListener,
    storage: Storage,
    config: ServerConfig,
    shutdown: CancellationToken,
) {
    serve(listener, Service::new(storage, config).await, shutdown).await;
}

/// Serves `service` on `listener` until `shutdown` is cancelled, then waits
/// up to the configured grace period for sessions to finish.
pub async fn serve(listener: TcpListener, service: Arc<Service>, shutdown: CancellationToken) {
    let config = Arc::clone(&service.config);
    let tls = config.tls.clone().map(tokio_rustls::TlsAcceptor::from);
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
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    let tracker = TaskTracker::new();
    let next_id = AtomicU64::new(1);
    let mut accept_backoff = Duration::from_millis(10);

    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let accepted_at = tokio::time::Instant::now();
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
        let span = tracing::info_span!("connection", id, %peer, user = tracing::field::Empty);
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(parent: &span, %error, "could not set TCP_NODELAY");
        }
        let admitted = match Arc::clone(&connections).try_acquire_owned() {
            Ok(permit) => service
                .guard
                .admit(peer.ip())
                .map(|address_permit| (permit, address_permit))
                .map_err(|refusal| refusal.message()),
            Err(_) => Err(reply::BUSY_REASON.to_owned()),
        };
        match admitted {
            Ok(permits) => {
                let service = Arc::clone(&service);
                let tls = tls.clone();
                let shutdown = shutdown.clone();
                tracker.spawn(
                    async move {
                        let _permits = permits;
                        tracing::info!("connection opened");
                        let Some(stream) =
                            handshake::open(stream, tls.as_ref(), &service.config).await
                        else {
                            return;
                        };
                        Session::new(stream, peer, accepted_at, service)
                            .run(shutdown)
                            .await;
                    }
                    .instrument(span),
                );
            }
            Err(reason) => match Arc::clone(&refusals).try_acquire_owned() {
                Ok(permit) => {
                    let config = Arc::clone(&config);
                    let tls = tls.clone();
                    tracker.spawn(
                        async move {
                            tracing::warn!(%reason, "connection refused");
                            let refuse = async {
                                if let Some(stream) =
                                    handshake::open(stream, tls.as_ref(), &config).await
                                {
                                    answer_and_close(stream, config.pacing, &reply::error(&reason))
                                        .await;
                                }
                            };
                            let _ = tokio::time::timeout(config.handshake_timeout, refuse).await;
                            drop(permit);
                        }
                        .instrument(span),
                    );
                }
                Err(_) => tracing::warn!(parent: &span, %reason, "connection dropped"),
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

/// Tells a client why it is turned away: its token, then `status` as its
/// welcome, then the connection closes.
async fn answer_and_close(stream: Stream, pacing: bool, status: &str) {
    let mut pacer = (pacing && !stream.is_tls()).then(|| Pacer::new(stream.tcp()));
    let mut connection = Connection::new(stream, Token::generate());
    if connection.write_token().await.is_err() {
        return;
    }
    if let Some(pacer) = pacer.as_mut() {
        pacer.wait_until_read(connection.stream().tcp()).await;
    }
    if connection.write_message(status.as_bytes()).await.is_ok() {
        connection.close_gracefully(session::CLOSE_LINGER).await;
    }
}
