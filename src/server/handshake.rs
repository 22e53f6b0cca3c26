//! A new connection's first moments: plain TCP as it is, or a TLS handshake
//! bounded by the handshake timeout.
//!
//! A TLS client speaks first (its ClientHello); a classic client waits for
//! our token. So on a TLS server, a client that stays silent for a moment,
//! or whose first byte is not a TLS handshake record, is told in clear that
//! TLS is required, then closed: it fails fast with a reason instead of
//! both sides waiting for each other.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use crate::config::ServerConfig;
use crate::protocol::reply;
use crate::stream::Stream;

/// How long a TLS server waits for a client's first byte before deciding
/// that it is a classic client waiting for its token. A TLS client sends its
/// ClientHello with (or right after) the end of the TCP handshake.
const FIRST_BYTE_WAIT: Duration = Duration::from_secs(2);

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// What a plain client of a TLS server is told.
pub(crate) const TLS_REQUIRED: &str =
    "this server speaks TLS only: connect with miniftp connect --tls";

/// The connection's stream once it is ready for a session: as it is on
/// plain TCP, after the handshake on TLS. `None` when the handshake failed
/// or the client does not speak TLS (it was told so).
pub(super) async fn open(
    tcp: TcpStream,
    tls: Option<&TlsAcceptor>,
    config: &ServerConfig,
) -> Option<Stream> {
    let stream = match tls {
        None => Stream::plain(tcp),
        Some(acceptor) => secure(tcp, acceptor, config).await?,
    };
    Some(match config.rate_limit {
        Some(rate) => stream.with_rate_limit(rate),
        None => stream,
    })
}

async fn secure(tcp: TcpStream, acceptor: &TlsAcceptor, config: &ServerConfig) -> Option<Stream> {
    let mut first = [0u8; 1];
    let wait = FIRST_BYTE_WAIT.min(config.handshake_timeout);
    match tokio::time::timeout(wait, tcp.peek(&mut first)).await {
        Ok(Ok(0)) => {
            tracing::debug!("closed before the TLS handshake");
            return None;
        }
        Ok(Ok(_)) if first[0] == TLS_HANDSHAKE_RECORD => {}
        Ok(Err(error)) => {
            tracing::debug!(%error, "failed before the TLS handshake");
            return None;
        }
        Ok(Ok(_)) | Err(_) => {
            tracing::warn!("refused a client that does not speak TLS");
            let status = reply::error(TLS_REQUIRED);
            let refusal = super::answer_and_close(Stream::plain(tcp), config.pacing, &status);
            let _ = tokio::time::timeout(config.handshake_timeout, refusal).await;
            return None;
        }
    }
    match tokio::time::timeout(config.handshake_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Some(Stream::tls(tls)),
        Ok(Err(error)) => {
            tracing::info!(%error, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::info!("TLS handshake timed out");
            None
        }
    }
}
