//! One client's session: reads commands, runs them against storage, replies.
//!
//! The session owns its state (current directory, pacing) and is driven by
//! one task; nothing here is shared or locked. Dispatch is one `match`.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::sync::CancellationToken;

mod extended;
mod login;

use super::Shared;
use super::pacing::Pacer;
use crate::config::ServerConfig;
use crate::connection::{Connection, ConnectionError, PayloadFailure, contains_token};
use crate::protocol::extended::{upgrade_accepted, upgrade_request};
use crate::protocol::request::excerpt;
use crate::protocol::{PayloadShape, Request, TOKEN_LEN, Token, reply};
use crate::storage::path::names_directory;
use crate::storage::{EntryKind, Removal, Storage, StorageError, VirtualPath};
use crate::stream::Stream;
use login::LoginState;

/// How long a closing connection keeps discarding input so that the client
/// can read the last message.
pub(super) const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// What a session did, for the log line when it ends.
pub(super) struct Summary {
    pub commands: u64,
    pub reason: &'static str,
}

/// Whether the session goes on after a command.
enum Flow {
    Continue,
    Exit,
    /// The client switched to the extended protocol.
    Upgrade,
}

/// A session's state: its connection, who it is, what it sees (its storage
/// and current directory) and pacing.
pub(super) struct Session {
    connection: Connection<Stream>,
    /// The tree this session sees: the root, an account's home, or the
    /// anonymous directory; read-only where the access says so.
    storage: Storage,
    config: Arc<ServerConfig>,
    shared: Arc<Shared>,
    peer: std::net::SocketAddr,
    login: LoginState,
    directory: VirtualPath,
    /// Present while the client speaks the classic protocol and pacing is on.
    pacer: Option<Pacer>,
    /// Whether something was written that the client may not have read yet.
    unread_output: bool,
    /// An extended upload refused before its request was read: its end
    /// frame is dropped without a second answer.
    refused_upload: Option<u32>,
}

impl Session {
    /// A session for a freshly accepted client from `peer` (its TLS
    /// handshake, if any, done).
    pub fn new(
        stream: Stream,
        peer: std::net::SocketAddr,
        accepted: tokio::time::Instant,
        shared: Arc<Shared>,
    ) -> Session {
        let config = Arc::clone(&shared.config);
        // A client that speaks TLS is not the original client: no pacing.
        let pacer = (config.pacing && !stream.is_tls()).then(|| Pacer::new(stream.tcp()));
        let mut connection = Connection::new(stream, Token::generate());
        let (login, storage) = LoginState::at_start(&shared, accepted);
        connection.set_read_timeout(Some(match login {
            LoginState::Required { .. } => config.handshake_timeout.min(config.idle_timeout),
            _ => config.idle_timeout,
        }));
        Session {
            connection,
            storage,
            config,
            shared,
            peer,
            login,
            directory: VirtualPath::root(),
            pacer,
            unread_output: false,
            refused_upload: None,
        }
    }

    /// Runs the session to its end; never fails, reports why it ended.
    pub async fn run(mut self, shutdown: CancellationToken) -> Summary {
        let mut summary = Summary {
            commands: 0,
            reason: "client closed the connection",
        };
        if let Err(error) = self.greet().await {
            tracing::debug!(%error, "could not greet");
            summary.reason = "could not greet";
            return summary;
        }
        loop {
            if self.login.expired() {
                tracing::info!("login timed out");
                if self
                    .send(reply::error("login timed out").as_bytes())
                    .await
                    .is_ok()
                {
                    self.connection.close_gracefully(CLOSE_LINGER).await;
                }
                summary.reason = "login timed out";
                break;
            }
            let message = tokio::select! {
                biased;
                message = self.connection.read_message(self.config.max_command_len) => message,
                _ = shutdown.cancelled() => {
                    let _ = self.send(reply::error("server shutting down").as_bytes()).await;
                    summary.reason = "server shutting down";
                    break;
                }
                // A client trickling a long command cannot outlast its login.
                () = self.login.overdue() => continue,
            };
            let raw = match message {
                Ok(Some(raw)) => raw,
                Ok(None) => break,
                Err(ConnectionError::Io(error))
                    if error.kind() == io::ErrorKind::TimedOut && self.login.is_required() =>
                {
                    continue; // Said and closed at the top of the loop.
                }
                Err(error) => {
                    summary.reason = self.refuse(error).await;
                    break;
                }
            };
            summary.commands += 1;
            // Before a login, a command (a payload trickled in included) must
            // end by the login's deadline.
            let handled = match self.login.deadline() {
                Some(deadline) => match tokio::time::timeout_at(deadline, self.handle(raw)).await {
                    Ok(handled) => handled,
                    Err(_) => continue,
                },
                None => self.handle(raw).await,
            };
            match handled {
                Ok(Flow::Continue) => {}
                Ok(Flow::Exit) => {
                    summary.reason = "client said exit";
                    break;
                }
                Ok(Flow::Upgrade) => {
                    summary.reason = self.run_extended(&shutdown).await;
                    break;
                }
                Err(error) => {
                    // A payload that stalls times out like an idle command.
                    summary.reason = self.refuse(error).await;
                    break;
                }
            }
        }
        summary
    }

    /// Sends the token alone, then the welcome listing of the root.
    async fn greet(&mut self) -> io::Result<()> {
        self.connection.write_token().await?;
        self.unread_output = true;
        let listing = match self.login {
            // Before a required login, the tree is nobody's business.
            LoginState::Required { .. } => Ok(Vec::new()),
            _ => self.storage.list_all(&VirtualPath::root()).await,
        };
        let (directories, files) = match listing {
            Ok(entries) => entries
                .into_iter()
                .partition::<Vec<_>, _>(|entry| entry.kind == EntryKind::Directory),
            Err(error) => {
                tracing::error!(%error, "cannot list the shared root");
                (Vec::new(), Vec::new())
            }
        };
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
    /// even when the command is invalid.
    async fn handle(&mut self, raw: Bytes) -> Result<Flow, ConnectionError> {
        let started = Instant::now();
        if raw == upgrade_request().as_bytes() {
            tracing::info!("client switched to the extended protocol");
            self.send(upgrade_accepted().as_bytes()).await?;
            return Ok(Flow::Upgrade);
        }
        let parsed = match (Request::parse(&raw), &self.login) {
            (Ok(Request::Exit), _) => Ok(Request::Exit),
            (Ok(_), LoginState::Required { .. }) => Err(login::CLASSIC_LOGIN_REQUIRED.to_owned()),
            (Ok(request), _) => Ok(request),
            (Err(error), _) => Err(error.to_string()),
        };
        let request = match parsed {
            Ok(request) => request,
            Err(error) => {
                match PayloadShape::of_command(&raw) {
                    PayloadShape::FromClient => {
                        self.connection
                            .read_payload(&mut tokio::io::sink(), Some(0))
                            .await?;
                    }
                    PayloadShape::FromServer => self.send(b"").await?,
                    PayloadShape::None => {}
                }
                tracing::info!(outcome = %error, "invalid command");
                self.send(reply::error(&error).as_bytes()).await?;
                return Ok(Flow::Continue);
            }
        };
        let verb = request.verb();
        let (outcome, bytes) = match request {
            Request::Exit => return Ok(Flow::Exit),
            Request::ChangeDirectory { ref path } => (self.change_directory(path).await, 0),
            Request::MakeDirectory { ref path } => (self.make_directory(path).await, 0),
            Request::Remove { ref path } => (self.remove(path).await, 0),
            Request::Rename { ref from, ref to } => (self.rename(from, to).await, 0),
            Request::Upload { ref path } => self.upload(path).await?,
            Request::Download { ref path } => self.download(path).await?,
            Request::Size { ref path } => self.size(path).await?,
        };
        let elapsed = started.elapsed();
        let command = excerpt(&request.encode());
        let status = match outcome {
            Ok(()) => {
                tracing::info!(verb, %command, bytes, ?elapsed, outcome = "ok");
                self.directory.to_string()
            }
            Err(reason) => {
                tracing::info!(verb, %command, bytes, ?elapsed, outcome = %reason);
                reply::error(reason)
            }
        };
        self.send(status.as_bytes()).await?;
        Ok(Flow::Continue)
    }

    async fn change_directory(&mut self, argument: &str) -> Result<(), String> {
        let target = self.resolve(argument)?;
        match self.storage.check_directory(&target).await {
            Ok(()) => {
                self.directory = target;
                Ok(())
            }
            Err(error) => Err(self.describe(error, argument).await),
        }
    }

    async fn make_directory(&mut self, argument: &str) -> Result<(), String> {
        let target = self.resolve(argument)?;
        match self.storage.make_directory(&target).await {
            Ok(()) => Ok(()),
            Err(error) => Err(self.describe(error, argument).await),
        }
    }

    async fn remove(&mut self, argument: &str) -> Result<(), String> {
        let last = argument
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default();
        if matches!(last, "." | "..") && !argument.is_empty() {
            return Err(describe_plainly(StorageError::RemoveDot, argument));
        }
        let target = self.resolve(argument)?;
        match self.storage.remove(&target, Removal::Entry).await {
            Ok(()) => Ok(()),
            Err(error) => Err(self.describe(error, argument).await),
        }
    }

    async fn rename(&mut self, from: &str, to: &str) -> Result<(), String> {
        let source = self.resolve(from)?;
        let destination = self.resolve(to)?;
        if source.is_root() {
            return Err(describe_plainly(StorageError::PermissionDenied, from));
        }
        match self
            .storage
            .rename(&source, &destination, names_directory(to))
            .await
        {
            Ok(_) => Ok(()),
            Err(error) => Err(self.describe(error, &format!("{from} -> {to}")).await),
        }
    }

    /// Receives an upload's payload into a private file and puts it in place
    /// only when whole. The payload is read even when the upload is refused.
    async fn upload(
        &mut self,
        argument: &str,
    ) -> Result<(Result<(), String>, u64), ConnectionError> {
        let limit = self.config.max_upload_size;
        let prepared = match self.resolve(argument) {
            Ok(target) if names_directory(argument) => Err(self
                .describe(
                    match self.storage.stat(&target).await {
                        Ok(entry) if entry.kind == EntryKind::Directory => {
                            StorageError::IsADirectory
                        }
                        _ => StorageError::NotADirectory,
                    },
                    argument,
                )
                .await),
            Ok(target) => match self.storage.create_upload(&target).await {
                Ok(upload) => Ok(upload),
                Err(error) => Err(self.describe(error, argument).await),
            },
            Err(reason) => Err(reason),
        };
        let mut upload = match prepared {
            Ok(upload) => upload,
            Err(reason) => {
                let receipt = self
                    .connection
                    .read_payload(&mut tokio::io::sink(), Some(0))
                    .await?;
                return Ok((Err(reason), receipt.received));
            }
        };
        let receipt = self.connection.read_payload(upload.writer(), limit).await?;
        let outcome = match receipt.failure {
            Some(PayloadFailure::TooLarge) => {
                Err(describe_plainly(StorageError::TooLarge, argument))
            }
            Some(PayloadFailure::Sink(error)) => Err(self.describe(error.into(), argument).await),
            None => match upload.commit().await {
                Ok(()) => Ok(()),
                Err(error) => Err(self.describe(error, argument).await),
            },
        };
        Ok((outcome, receipt.received))
    }

    /// Sends a file as one payload message, or an empty one and the reason.
    async fn download(
        &mut self,
        argument: &str,
    ) -> Result<(Result<(), String>, u64), ConnectionError> {
        let opened = match self.resolve(argument) {
            Ok(target) => match self.storage.open_file(&target).await {
                Ok(opened) => Ok(opened),
                Err(error) => Err(self.describe(error, argument).await),
            },
            Err(reason) => Err(reason),
        };
        let (mut file, size) = match opened {
            Ok(opened) => opened,
            Err(reason) => {
                self.send(b"").await?;
                return Ok((Err(reason), 0));
            }
        };
        // A file holding the token would be cut short by the receiver: look
        // for it before sending a single byte.
        match contains_token(&mut (&mut file).take(size), self.connection.token()).await {
            Ok(false) => {}
            Ok(true) => {
                self.send(b"").await?;
                let reason = "the file contains this connection's token; use the extended protocol";
                return Ok((Err(reason.to_owned()), 0));
            }
            Err(error) => {
                self.send(b"").await?;
                return Ok((Err(self.describe(error.into(), argument).await), 0));
            }
        }
        file.seek(io::SeekFrom::Start(0)).await?;
        self.pace().await;
        let sent = self
            .connection
            .write_from(&mut (&mut file).take(size))
            .await?;
        if sent < size {
            // The file shrank while being sent: the message cannot be
            // completed truthfully, so the connection ends here.
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
        Ok((Ok(()), sent))
    }

    /// Sends a file's size in decimal as one payload message.
    async fn size(&mut self, argument: &str) -> Result<(Result<(), String>, u64), ConnectionError> {
        let described = match self.resolve(argument) {
            Ok(target) => match self.storage.stat(&target).await {
                Ok(entry) if entry.kind == EntryKind::Directory => {
                    Err(describe_plainly(StorageError::IsADirectory, argument))
                }
                Ok(entry) => Ok(entry.size),
                Err(error) => Err(self.describe(error, argument).await),
            },
            Err(reason) => Err(reason),
        };
        match described {
            Ok(size) => {
                self.send(size.to_string().as_bytes()).await?;
                Ok((Ok(()), 0))
            }
            Err(reason) => {
                self.send(b"").await?;
                Ok((Err(reason), 0))
            }
        }
    }

    /// Resolves an argument against the current directory.
    fn resolve(&self, argument: &str) -> Result<VirtualPath, String> {
        self.directory
            .resolve(argument)
            .map_err(|error| describe_plainly(error, argument))
    }

    /// The status reason for a failed operation, noticing when the cause is
    /// that another client removed this session's current directory.
    async fn describe(&self, error: StorageError, argument: &str) -> String {
        if matches!(error, StorageError::NotFound | StorageError::NotADirectory)
            && !argument.starts_with('/')
            && !self.directory.is_root()
            && self.storage.check_directory(&self.directory).await.is_err()
        {
            return format!(
                "the current directory {} no longer exists (cd / to recover)",
                excerpt(&self.directory.to_string())
            );
        }
        describe_plainly(error, argument)
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

/// `REASON: ARGUMENT`, with the argument escaped to keep the status one line.
fn describe_plainly(error: StorageError, argument: &str) -> String {
    match error {
        StorageError::EmptyName => error.to_string(),
        error => format!("{error}: {}", excerpt(argument)),
    }
}
