//! What can go wrong in a client operation, as types the caller can match.
//!
//! Three families: the server refused ([`ClientError::Server`], the
//! connection goes on), something on the local side failed before or after
//! the wire ([`ClientError::Local`], [`ClientError::TokenInFile`], ...), and the
//! connection itself failed ([`ClientError::is_connection_lost`]): after
//! those the client must [`reconnect`](super::Client::reconnect).

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::connection::ConnectionError;
use crate::protocol::extended::ErrorCode;

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused the request; the connection goes on.
    #[error("{reason}")]
    Server {
        /// The server's words (after `error: ` in the classic protocol).
        reason: String,
        /// The stable code of the refusal (extended protocol only).
        code: Option<ErrorCode>,
    },
    /// The bytes received did not match the digest the sender computed:
    /// the data was corrupted on the way. Nothing was stored under the
    /// final name; the connection goes on.
    #[error(
        "{name}: the {direction} was corrupted on the way (digest mismatch); nothing was stored"
    )]
    DigestMismatch {
        /// The remote path concerned.
        name: String,
        /// Which way the data went.
        direction: Direction,
    },
    /// The operation exists only in the extended protocol, and this
    /// connection speaks the classic one.
    #[error("{operation} needs the extended protocol; this connection speaks the classic one")]
    NeedsExtended {
        /// The operation, as the shell names it (`ls`, `rm -r`, ...).
        operation: &'static str,
    },
    /// No connection could be opened.
    #[error("cannot connect to {address}: {}", plain_io(source))]
    Connect {
        /// The address as given.
        address: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// What answered is not a miniftp (or Mini-FTP) server: it sent
    /// something other than a token first, or nothing at all in time (an
    /// HTTP server, for one, waits for its client to speak).
    #[error("the server at {address} does not look like a miniftp server ({})", match sent {
        Some(sent) if !sent.is_empty() => format!("it sent '{sent}'"),
        Some(_) => "it did not send a valid token".to_owned(),
        None => format!(
            "it sent nothing within {} s of the connection; an HTTP server, for one, \
             waits for its client to speak first",
            waited.as_secs_f64()
        ),
    })]
    NotMiniftp {
        /// The address as given.
        address: String,
        /// The first line it sent (escaped), if it sent anything.
        sent: Option<String>,
        /// How long it was given to send a token.
        waited: Duration,
    },
    /// The server went silent for longer than the configured timeout. The
    /// connection is out of step and has been dropped.
    #[error("the server sent nothing for {} s; the connection was dropped", .0.as_secs_f64())]
    TimedOut(Duration),
    /// The connection failed or was closed by the server.
    #[error("{}", plain_connection(.0))]
    ConnectionLost(#[source] ConnectionError),
    /// The server closed the connection where a message was expected.
    #[error("{CLOSED_BY_SERVER}")]
    Closed,
    /// An earlier operation was interrupted mid-way (its future dropped),
    /// so the connection is out of step, or the client was closed.
    #[error("not connected (an earlier operation was interrupted); reconnect first")]
    NotConnected,
    /// The server's answer does not fit the protocol.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    /// The data to upload contains the connection's token, which would end
    /// the classic message early and store a truncated file.
    #[error(
        "{} contains this connection's token, so it cannot be sent with the classic protocol",
        .name
    )]
    TokenInFile {
        /// The local file or remote name concerned.
        name: String,
        /// Whether the connection had to be dropped because the token was
        /// only found after part of the data was sent.
        connection_dropped: bool,
    },
    /// A local file could not be read or written.
    #[error("{}: {}", .path.display(), plain_io(source))]
    Local {
        /// The local path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A local path that must name a regular file does not.
    #[error("{}: not a regular file", .0.display())]
    NotAFile(PathBuf),
    /// Reading the data to upload failed after the upload began (or it
    /// ended before the size announced). A classic message cannot be
    /// abandoned half-way, so there the connection was dropped; the
    /// extended protocol abandons the upload and goes on.
    #[error("reading the data to upload failed ({}); {}", plain_io(source), match .connection_dropped {
        true => "the connection was dropped",
        false => "nothing was stored",
    })]
    Source {
        /// Why.
        #[source]
        source: io::Error,
        /// Whether the connection had to be dropped.
        connection_dropped: bool,
    },
    /// Writing the downloaded data failed; the rest was read and discarded,
    /// and the connection goes on.
    #[error("writing the download failed: {}", plain_io(.0))]
    Sink(#[source] io::Error),
    /// TLS could not be set up, or the server could not be trusted.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// A login was asked for, but the password would travel in clear to
    /// another host.
    #[error(
        "refusing to send a password in clear to {address}: connect with --tls (or, on a trusted network, --allow-insecure-login)"
    )]
    InsecureLogin {
        /// The address as given.
        address: String,
    },
    /// A login was asked for, but no password could be had (the
    /// [`AskedLogin`](super::AskedLogin) said why).
    #[error("no password: {0}")]
    NoPassword(String),
    /// A login was asked for, but the server speaks only the classic
    /// protocol, which has no logins.
    #[error("this server does not support logins (it speaks only the classic protocol)")]
    LoginUnsupported,
}

impl ClientError {
    /// Whether the connection is gone (or out of step), so that the client
    /// must reconnect before the next operation.
    pub fn is_connection_lost(&self) -> bool {
        match self {
            ClientError::TimedOut(_)
            | ClientError::ConnectionLost(_)
            | ClientError::Closed
            | ClientError::NotConnected
            | ClientError::Protocol(_)
            | ClientError::Tls(_)
            | ClientError::InsecureLogin { .. }
            | ClientError::LoginUnsupported
            | ClientError::NotMiniftp { .. }
            | ClientError::NoPassword(_)
            | ClientError::Connect { .. } => true,
            ClientError::TokenInFile {
                connection_dropped, ..
            }
            | ClientError::Source {
                connection_dropped, ..
            } => *connection_dropped,
            _ => false,
        }
    }

    /// The stable code of a refusal by a server speaking the extended
    /// protocol (a digest mismatch reads as [`ErrorCode::DigestMismatch`]).
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server { code, .. } => *code,
            ClientError::DigestMismatch { .. } => Some(ErrorCode::DigestMismatch),
            _ => None,
        }
    }

    /// Maps a connection failure, recognising a silent server.
    pub(super) fn from_connection(error: ConnectionError, timeout: Duration) -> ClientError {
        match error {
            ConnectionError::Io(io) if io.kind() == io::ErrorKind::TimedOut => {
                ClientError::TimedOut(timeout)
            }
            error => ClientError::ConnectionLost(error),
        }
    }
}

/// An I/O error in plain words, as the rest of miniftp's messages: what
/// the system says, without its `(os error N)` suffix, lowercase
/// (`no such file or directory`).
pub fn plain_io(error: &io::Error) -> String {
    let text = error.to_string();
    let text = match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => &text[..at],
        _ => text.as_str(),
    };
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        // An initialism (`TLS ...`) keeps its capitals.
        (Some(first), Some(second)) if first.is_uppercase() && !second.is_uppercase() => first
            .to_lowercase()
            .chain(text[first.len_utf8()..].chars())
            .collect(),
        _ => text.to_owned(),
    }
}

/// What a client is told when the server went away (most often because
/// it is shutting down or restarting).
const CLOSED_BY_SERVER: &str = "the server closed the connection (shutting down?)";

/// A connection failure in plain words.
fn plain_connection(error: &ConnectionError) -> String {
    match error {
        ConnectionError::ClosedMidMessage => CLOSED_BY_SERVER.to_owned(),
        ConnectionError::Io(error)
            if matches!(
                error.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
            ) =>
        {
            CLOSED_BY_SERVER.to_owned()
        }
        ConnectionError::Io(error) => format!("connection lost: {}", plain_io(error)),
        error => format!("connection lost: {error}"),
    }
}

/// Which way a transfer went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client to the server.
    Upload,
    /// From the server to the client.
    Download,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Upload => "upload",
            Direction::Download => "download",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_read_as_plain_words() {
        let missing = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(plain_io(&missing), "no such file or directory");
        let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(plain_io(&refused), "connection refused");
        let kind: io::Error = io::ErrorKind::NotADirectory.into();
        assert_eq!(plain_io(&kind), "not a directory");
        let custom = io::Error::other("TLS alert (os error in name only");
        assert_eq!(plain_io(&custom), "TLS alert (os error in name only");
    }
}
