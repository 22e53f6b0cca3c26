//! One client's session over the classic protocol: reads command messages,
//! has the executor run them, and answers with a status (or a payload and
//! a status), paced for clients that read packets. A client that asks
//! switches to the extended protocol (module `extended`) on the same
//! connection.
//!
//! The session owns its state (the executor's view, pacing) and is driven
//! by one task; nothing here is shared or locked. Every rule is the
//! executor's: this module only translates.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

mod extended;

use super::pacing::Pacer;
use crate::connection::{Connection, ConnectionError, PayloadFailure, contains_token};
use crate::executor::{
    Executor, IncomingUpload, Outcome, OutgoingDownload, Peer, ReceiveProblem, Received, Service,
};
use crate::operation::{ErrorCode, Failure};
use crate::protocol::extended::{upgrade_accepted, upgrade_request};
use crate::protocol::text::excerpt;
use crate::protocol::{PayloadShape, TOKEN_LEN, Token, classic, reply};
use crate::stream::Stream;

/// How long a closing connection keeps discarding input so that the client
/// can read the last message.
pub(super) const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// What a classic client is told when a file holds its connection's token.
const HOLDS_THE_TOKEN: &str =
    "the file contains this connection's token; use the extended protocol";

/// Whether the session goes on after a command.
enum Flow {
    Continue,
    Exit,
    /// The client switched to the extended protocol.
    Upgrade,
}

/// A session's state: its connection, the executor's view, pacing.
pub(super) struct Session {
    connection: Connection<Stream>,
    executor: Executor,
    /// Present while the client speaks the classic protocol and pacing is on.
    pacer: Option<Pacer>,
    /// Whether something was written that the client may not have read yet.
    unread_output: bool,
}

impl Session {
    /// A session for a freshly accepted client from `peer` (its TLS
    /// handshake, if any, done).
    pub fn new(
        stream: Stream,
        peer: std::net::SocketAddr,
        accepted: tokio::time::Instant,
        service: Arc<Service>,
    ) -> Session {
        // A client that speaks TLS is not the original client: no pacing.
        let pacing = service.config.pacing && !stream.is_tls();
        let pacer = pacing.then(|| Pacer::new(stream.tcp()));
        let peer = Peer {
            address: peer,
            encrypted: stream.is_tls(),
        };
        let executor = Executor::new(service, peer, accepted);
        let mut session = Session {
            connection: Connection::new(stream, Token::generate()),
            executor,
            pacer,
            unread_output: false,
        };
        session.set_read_timeout();
        session
    }

    /// Before a required login, a client has until the login's deadline;
    /// after it, the idle timeout.
    fn set_read_timeout(&mut self) {
        let config = self.executor.config();
        let timeout = match self.executor.login().is_required() {
            true => config.handshake_timeout.min(config.idle_timeout),
            false => config.idle_timeout,
        };
        self.connection.set_read_timeout(Some(timeout));
    }

    /// Runs the session to its end; never fails. Logs why it ended and
    /// what it did.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let reason = self.serve(&shutdown).await;
        let summary = self.executor.summary();
        tracing::info!(
            reason,
            succeeded = summary.succeeded,
            failed = summary.failed,
            bytes_received = summary.bytes_received,
            bytes_sent = summary.bytes_sent,
            "connection closed"
        );
    }

    async fn serve(&mut self, shutdown: &CancellationToken) -> &'static str {
        if let Err(error) = self.greet().await {
            tracing::debug!(%error, "could not greet");
            return "could not greet";
        }
        loop {
            if self.executor.login().expired() {
                tracing::info!("login timed out");
                if self
                    .send(reply::error("login timed out").as_bytes())
                    .await
                    .is_ok()
                {
                    self.connection.close_gracefully(CLOSE_LINGER).await;
                }
                return "login timed out";
            }
            let limit = self.executor.config().max_command_len;
            let message = tokio::select! {
                biased;
                message = self.connection.read_message(limit) => message,
                _ = shutdown.cancelled() => {
                    let _ = self.send(reply::error("server shutting down").as_bytes()).await;
                    return "server shutting down";
                }
                // A client trickling a long command cannot outlast its login.
                () = self.executor.login().overdue() => continue,
            };
            let raw = match message {
                Ok(Some(raw)) => raw,
                Ok(None) => return "client closed the connection",
                Err(ConnectionError::Io(error))
                    if error.kind() == io::ErrorKind::TimedOut
                        && self.executor.login().is_required() =>
                {
                    continue; // Said and closed at the top of the loop.
                }
                Err(error) => return self.refuse(error).await,
            };
            // Before a login, a command (a payload trickled in included) must
            // end by the login's deadline.
            let handled = match self.executor.login().deadline() {
                Some(deadline) => match tokio::time::timeout_at(deadline, self.handle(raw)).await {
                    Ok(handled) => handled,
                    Err(_) => continue,
                },
                None => self.handle(raw).await,
            };
            match handled {
                Ok(Flow::Continue) => {}
                Ok(Flow::Exit) => return "client said exit",
                Ok(Flow::Upgrade) => return self.run_extended(shutdown).await,
                // A payload that stalls times out like an idle command.
                Err(error) => return self.refuse(error).await,
            }
        }
    }

    /// Sends the token alone, then the welcome listing of the root.
    async fn greet(&mut self) -> io::Result<()> {
        self.connection.write_token().await?;
        self.unread_output = true;
        let (directories, files) = self
            .executor
            .welcome_entries()
            .await
            .into_iter()
            .partition::<Vec<_>, _>(|entry| entry.is_directory());
        let welcome = reply::welcome(
            "/",
            directories.into_iter().map(|entry| entry.name).collect(),
            files.into_iter().map(|entry| entry.name).collect(),
        );
        self.send(welcome.as_bytes()).await
    }

    /// Answers a read that failed: says why when it helps, and names the reason.
    async fn refuse(&mut self, error: ConnectionError) -> &'static str {
        let (status, reason) = match &error {
            ConnectionError::TooLong { .. } => (reply::COMMAND_TOO_LONG, "command too long"),
            ConnectionError::Io(io) if io.kind() == io::ErrorKind::TimedOut => {
                (reply::IDLE_TIMEOUT, "idle timeout")
            }
            _ => {
                tracing::debug!(%error, "read failed");
                return "connection failed";
            }
        };
        tracing::info!(reason, "closing the connection");
        if self.send(status.as_bytes()).await.is_ok() {
            self.connection.close_gracefully(CLOSE_LINGER).await;
        }
        reason
    }

    /// Parses and runs one command message, keeping the payload in step
    /// even when the command is invalid or refused.
    async fn handle(&mut self, raw: Bytes) -> Result<Flow, ConnectionError> {
        tracing::debug!(command = %excerpt(&String::from_utf8_lossy(&raw)), "command");
        if raw == upgrade_request().as_bytes() {
            tracing::info!("client switched to the extended protocol");
            self.send(upgrade_accepted().as_bytes()).await?;
            return Ok(Flow::Upgrade);
        }
        let operation = match classic::parse(&raw) {
            Ok(operation) => operation,
            Err(error) => {
                let failure = Failure::new(ErrorCode::BadRequest, error.to_string());
                self.executor.refused_unread("invalid command", &failure);
                self.keep_in_step(&raw).await?;
                self.send(reply::error(&failure.message).as_bytes()).await?;
                return Ok(Flow::Continue);
            }
        };
        let was_required = self.executor.login().is_required();
        let status = match self.executor.execute(operation).await {
            Ok(Outcome::Exit) => return Ok(Flow::Exit),
            Ok(Outcome::Done) => Ok(()),
            Ok(Outcome::Size(size)) => {
                self.send(size.to_string().as_bytes()).await?;
                Ok(())
            }
            Ok(Outcome::Upload(upload)) => self.receive(upload).await?,
            Ok(Outcome::Download(download)) => self.send_file(download).await?,
            // The classic protocol has no stat, listing or login: they never
            // come from a classic command.
            Ok(Outcome::Entry(_) | Outcome::Listing(_)) => Ok(()),
            Err(failure) => {
                self.keep_in_step(&raw).await?;
                Err(failure)
            }
        };
        if was_required && !self.executor.login().is_required() {
            self.set_read_timeout();
        }
        let status = match status {
            Ok(()) => self.executor.directory().to_string(),
            Err(failure) => reply::error(&failure.message),
        };
        self.send(status.as_bytes()).await?;
        Ok(Flow::Continue)
    }

    /// After a command that failed before its payload: reads (and drops)
    /// the upload payload a `ul` is followed by, or sends the empty payload
    /// a `dl` or `info` expects, so that client and server stay in step.
    async fn keep_in_step(&mut self, raw: &[u8]) -> Result<(), ConnectionError> {
        match PayloadShape::of_command(raw) {
            PayloadShape::FromClient => {
                self.connection
                    .read_payload(&mut tokio::io::sink(), Some(0))
                    .await?;
            }
            PayloadShape::FromServer => self.send(b"").await?,
            PayloadShape::None => {}
        }
        Ok(())
    }

    /// Receives an upload's payload into storage; it appears only when
    /// whole. The payload is read to its end even past a failure.
    async fn receive(
        &mut self,
        mut upload: IncomingUpload,
    ) -> Result<Result<(), Failure>, ConnectionError> {
        let limit = upload.limit();
        let receipt = self.connection.read_payload(upload.sink(), limit).await?;
        let received = Received {
            bytes: receipt.received,
            digest: None,
            problem: receipt.failure.map(|failure| match failure {
                PayloadFailure::TooLarge => ReceiveProblem::TooLarge,
                PayloadFailure::Sink(error) => ReceiveProblem::Storage(error.into()),
            }),
        };
        Ok(match self.executor.verify_upload(upload, received).await {
            Ok(verified) => self.executor.commit(verified).await,
            Err(failure) => Err(failure),
        })
    }

    /// Sends a file as one payload message, or an empty one and the reason.
    async fn send_file(
        &mut self,
        outgoing: OutgoingDownload,
    ) -> Result<Result<(), Failure>, ConnectionError> {
        // A file holding the token would be cut short by the receiver: look
        // for it before sending a single byte.
        let size = outgoing.download.size;
        let scanned = match outgoing.download.reader(0).await {
            Ok(mut reader) => {
                contains_token(&mut (&mut reader).take(size), self.connection.token())
                    .await
                    .map_err(Into::into)
            }
            Err(error) => Err(error),
        };
        let refusal = match scanned {
            Ok(false) => None,
            Ok(true) => Some(Failure::new(ErrorCode::BadRequest, HOLDS_THE_TOKEN)),
            Err(error) => Some(self.executor.failure(error, outgoing.argument()).await),
        };
        if let Some(failure) = refusal {
            self.send(b"").await?;
            return Ok(self.executor.finish_download(outgoing, 0, Some(failure)));
        }
        // Straight from the page cache on plain TCP (sendfile), as an
        // extended download; else through a reader.
        let reader = match outgoing.download.local_file() {
            Some(_) => None,
            None => match outgoing.download.reader(0).await {
                Ok(reader) => Some(reader),
                Err(error) => {
                    self.send(b"").await?;
                    let failure = self.executor.failure(error, outgoing.argument()).await;
                    return Ok(self.executor.finish_download(outgoing, 0, Some(failure)));
                }
            },
        };
        self.pace().await;
        let mut sent = 0;
        let sending = match (reader, outgoing.download.local_file()) {
            (Some(mut reader), _) => {
                let mut reader = (&mut reader).take(size);
                self.connection.write_from(&mut reader, &mut sent).await
            }
            (None, Some(file)) => self.connection.send_file(file, 0, size, &mut sent).await,
            (None, None) => Ok(()),
        };
        if let Err(error) = sending {
            let failure = Failure::new(ErrorCode::Internal, format!("sending failed: {error}"));
            let _ = self.executor.finish_download(outgoing, sent, Some(failure));
            return Err(error.into());
        }
        if sent < size {
            // The file shrank while being sent: the message cannot be
            // completed truthfully, so the connection ends here.
            let failure = Failure::new(ErrorCode::Internal, "the file shrank while being sent");
            let _ = self.executor.finish_download(outgoing, sent, Some(failure));
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank during download",
            )
            .into());
        }
        self.unread_output = true;
        self.pace().await;
        self.connection.write_token().await?;
        self.unread_output = true;
        Ok(self.executor.finish_download(outgoing, sent, None))
    }

    /// Sends one whole message, paced for clients that read packets.
    async fn send(&mut self, body: &[u8]) -> io::Result<()> {
        self.pace().await;
        let whole_message_limit = self.pacer.as_ref().map(Pacer::whole_message_limit);
        if whole_message_limit.is_some_and(|limit| body.len() + TOKEN_LEN > limit) {
            // The client reads 1,024 bytes at a time: if the token could be
            // split between two of its reads it would never see the end.
            self.connection.write_raw(body).await?;
            self.unread_output = true;
            self.pace().await;
            self.connection.write_token().await?;
        } else {
            self.connection.write_message(body).await?;
        }
        self.unread_output = true;
        Ok(())
    }

    /// Waits, when pacing, until the client has read what was sent.
    async fn pace(&mut self) {
        if !self.unread_output {
            return;
        }
        if let Some(pacer) = self.pacer.as_mut() {
            pacer.wait_until_read(self.connection.stream().tcp()).await;
        }
        self.unread_output = false;
    }
}
