//! The classic token protocol, client side: one command message, an
//! optional payload each way, one status.
//!
//! Works against our server and against the original, which reports real
//! absolute paths as status and may answer a failing command with silence
//! (ended by the read timeout) or a closed connection.

use std::borrow::Cow;
use std::time::Duration;

use crate::stream::Stream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use super::error::ClientError;
use super::{Progress, ProgressWriter};
use crate::connection::{Connection, ConnectionError, PayloadFailure};
use crate::operation::Operation;
use crate::protocol::extended::{upgrade_accepted, upgrade_request};
use crate::protocol::frame::TokenDetector;
use crate::protocol::reply::Welcome;
use crate::protocol::token::TOKEN_LEN;
use crate::protocol::{Token, classic};

/// The longest welcome accepted (a listing of a large root).
const WELCOME_LIMIT: usize = 16 << 20;

/// The longest status or `info` payload accepted.
const STATUS_LIMIT: usize = 64 << 10;

/// How much of an upload is read and sent at a time.
const UPLOAD_CHUNK: usize = 256 << 10;

/// What a server said to the request to switch protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Upgrade {
    /// Switched: frames from now on.
    Accepted,
    /// An error status: still classic, and in step.
    Refused,
    /// Silence, a close or an unexpected answer: the connection is unusable.
    NoAnswer,
}

/// A classic connection in step: every command has had all its replies.
pub(super) struct Classic {
    connection: Connection<Stream>,
    timeout: Duration,
}

impl Classic {
    /// Reads the token and the welcome from a freshly connected server at
    /// `address`. The token must come within `greeting` (a miniftp or
    /// Mini-FTP server sends it at once); a server that sends nothing, or
    /// something else, is said not to look like one.
    pub async fn open(
        stream: Stream,
        address: &str,
        timeout: Duration,
        greeting: Duration,
    ) -> Result<(Classic, Welcome), ClientError> {
        let greeting = greeting.min(timeout);
        let not_miniftp = |sent: Option<&[u8]>| ClientError::NotMiniftp {
            address: address.to_owned(),
            sent: sent.map(shown),
            waited: greeting,
        };
        // On plain TCP the first bytes can be looked at before they are
        // taken, to quote them if they are no token.
        if !stream.is_tls() {
            let tcp = stream.tcp();
            let mut first = [0u8; 64];
            let peeked = tokio::time::timeout(greeting, tcp.peek(&mut first))
                .await
                .map_err(|_| not_miniftp(None))?;
            match peeked {
                // Closed before a word: a server going away, not another kind.
                Ok(0) => return Err(ClientError::Closed),
                Ok(read) if !could_start_a_token(&first[..read]) => {
                    return Err(not_miniftp(Some(&first[..read])));
                }
                _ => {}
            }
        }
        let connection = tokio::time::timeout(greeting, Connection::accept_token(stream))
            .await
            .map_err(|_| not_miniftp(None))?
            .map_err(|error| match error {
                ConnectionError::BadToken => not_miniftp(Some(b"")),
                error => ClientError::from_connection(error, timeout),
            })?;
        let mut classic = Classic {
            connection,
            timeout,
        };
        classic.connection.set_read_timeout(Some(timeout));
        let text = classic.message(WELCOME_LIMIT).await?;
        if let Some(reason) = text.strip_prefix("error: ") {
            return Err(ClientError::Server {
                reason: reason.to_owned(),
                code: None,
            });
        }
        let welcome = Welcome::parse(&text).ok_or_else(|| {
            ClientError::Protocol(format!("not a welcome: {}", first_line(&text)))
        })?;
        Ok((classic, welcome))
    }

    /// Asks to switch to the extended protocol (`x-miniftp-extended 1`).
    /// Only an error status leaves the connection usable when the answer
    /// is no; after silence, a close or anything unexpected it is not.
    pub async fn ask_upgrade(&mut self) -> Upgrade {
        let asked = self
            .connection
            .write_message(upgrade_request().as_bytes())
            .await;
        if asked.is_err() {
            return Upgrade::NoAnswer;
        }
        match self.message(STATUS_LIMIT).await {
            Ok(status) if status == upgrade_accepted() => Upgrade::Accepted,
            Ok(status) if status.starts_with("error:") => Upgrade::Refused,
            Ok(_) | Err(_) => Upgrade::NoAnswer,
        }
    }

    /// Whether the server has closed the connection, or said something
    /// unasked (the classic protocol's way to say it gives up, as on an
    /// idle timeout), since the last command: looked at without waiting.
    pub fn closed_by_server(&mut self) -> bool {
        super::ready_now(self.connection.read_message(STATUS_LIMIT)).is_some()
    }

    /// The connection, to go on with another protocol.
    pub fn into_connection(self) -> Connection<Stream> {
        self.connection
    }

    /// This connection's token, which no classic upload may contain.
    pub fn token(&self) -> &Token {
        self.connection.token()
    }

    /// Sends a command without payload; the directory from its status.
    /// An operation the classic protocol cannot say is refused unsent.
    pub async fn command(&mut self, operation: &Operation) -> Result<String, ClientError> {
        self.send(operation).await?;
        self.status().await
    }

    /// `info`: the size of a remote file, and the directory.
    pub async fn size(&mut self, path: &str) -> Result<(u64, String), ClientError> {
        self.send(&Operation::Size { path: path.into() }).await?;
        let payload = self.message(STATUS_LIMIT).await?;
        let directory = self.status().await?;
        let size = payload
            .trim()
            .parse()
            .map_err(|_| ClientError::Protocol(format!("not a size: {}", first_line(&payload))))?;
        Ok((size, directory))
    }

    /// `ul`: streams the `size` bytes of `reader` as the payload, checking
    /// every chunk for the token before it is sent. A token found (or a
    /// read failure, or data ending early) after part of the data went out
    /// cannot be undone within the message: the connection is then dropped
    /// without a token, so that the server discards the partial upload.
    pub async fn upload<R: AsyncRead + Unpin>(
        &mut self,
        path: &str,
        reader: &mut R,
        size: u64,
        mut progress: Progress,
        report: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(u64, String), ClientError> {
        self.send(&Operation::Upload {
            path: path.into(),
            size: Some(size),
            resume: false,
        })
        .await?;
        let mut detector = TokenDetector::new(self.connection.token());
        let mut buffer = vec![0u8; UPLOAD_CHUNK];
        let mut reader = reader.take(size);
        let source = |source| ClientError::Source {
            source,
            connection_dropped: true,
        };
        loop {
            let read = reader.read(&mut buffer).await.map_err(source)?;
            if read == 0 {
                if progress.done < size {
                    return Err(source(super::ended_early(progress.done, size)));
                }
                break;
            }
            let chunk = &buffer[..read];
            if detector.feed(chunk) {
                return Err(ClientError::TokenInFile {
                    name: path.to_owned(),
                    connection_dropped: true,
                });
            }
            self.connection.write_raw(chunk).await.map_err(lost)?;
            progress.done += read as u64;
            report(progress);
        }
        self.connection.write_token().await.map_err(lost)?;
        let directory = self.status().await?;
        Ok((progress.done, directory))
    }

    /// `dl`: streams the payload into `writer`. A failing writer does not
    /// break the connection: the rest of the payload is read and dropped.
    pub async fn download<W: AsyncWrite + Unpin>(
        &mut self,
        path: &str,
        writer: &mut W,
        progress: Progress,
        report: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(u64, String), ClientError> {
        self.send(&Operation::Download {
            path: path.into(),
            offset: 0,
        })
        .await?;
        let mut sink = ProgressWriter::new(writer, progress, report);
        let receipt = self
            .connection
            .read_payload(&mut sink, None)
            .await
            .map_err(|error| self.lost(error))?;
        let directory = self.status().await?;
        match receipt.failure {
            Some(PayloadFailure::Sink(error)) => Err(ClientError::Sink(error)),
            Some(PayloadFailure::TooLarge) | None => Ok((receipt.received, directory)),
        }
    }

    /// `exit`: the server closes without a status.
    pub async fn exit(mut self) {
        let _ = self.send(&Operation::Exit).await;
    }

    async fn send(&mut self, operation: &Operation) -> Result<(), ClientError> {
        let command =
            classic::encode(operation).map_err(|unsupported| ClientError::NeedsExtended {
                operation: unsupported.0,
            })?;
        self.connection
            .write_message(command.as_bytes())
            .await
            .map_err(lost)
    }

    /// Reads a status: the current directory, or the server's refusal.
    async fn status(&mut self) -> Result<String, ClientError> {
        let text = self.message(STATUS_LIMIT).await?;
        match text.strip_prefix("error:") {
            Some(reason) => Err(ClientError::Server {
                reason: reason.trim_start().to_owned(),
                code: None,
            }),
            None => Ok(text),
        }
    }

    /// Reads one whole message as text (lossily: statuses are for people).
    async fn message(&mut self, limit: usize) -> Result<String, ClientError> {
        match self.connection.read_message(limit).await {
            Ok(Some(bytes)) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
            Ok(None) => Err(ClientError::Closed),
            Err(error) => Err(self.lost(error)),
        }
    }

    fn lost(&self, error: ConnectionError) -> ClientError {
        ClientError::from_connection(error, self.timeout)
    }
}

/// Whether `bytes` could be the start of a token (`<` and alphanumerics,
/// up to the closing `>`).
fn could_start_a_token(bytes: &[u8]) -> bool {
    let token = &bytes[..bytes.len().min(TOKEN_LEN)];
    token.iter().enumerate().all(|(at, byte)| match at {
        0 => *byte == b'<',
        at if at == TOKEN_LEN - 1 => *byte == b'>',
        _ => byte.is_ascii_alphanumeric(),
    })
}

/// The first line of what a server sent, for a message: lossy, escaped,
/// without its line ending.
fn shown(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let line = text.lines().next().unwrap_or_default();
    crate::protocol::text::escape(line)
}

/// A failed write to the server.
fn lost(error: std::io::Error) -> ClientError {
    ClientError::ConnectionLost(ConnectionError::Io(error))
}

/// The first line of a text, for error messages.
fn first_line(text: &str) -> Cow<'_, str> {
    let line = text.lines().next().unwrap_or_default();
    match line.len() > 80 {
        true => Cow::Owned(format!("{}...", &line[..line.floor_char_boundary(80)])),
        false => Cow::Borrowed(line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_start_of_a_token_could_be_one() {
        for start in [&b"<"[..], b"<Ab3", b"<Ab3X9kQw>", b"<Ab3X9kQw>Current"] {
            assert!(could_start_a_token(start), "{start:?}");
        }
        for other in [
            &b"SSH-2.0-OpenSSH_9.6\r\n"[..],
            b"<html>",
            b"<Ab3X9kQw!",
            b"HTTP/1.1",
        ] {
            assert!(!could_start_a_token(other), "{other:?}");
        }
        assert_eq!(shown(b"SSH-2.0-OpenSSH_9.6\r\nmore"), "SSH-2.0-OpenSSH_9.6");
        assert_eq!(shown(b"\x1b[31mred"), "\\u{1b}[31mred");
    }
}
