//! The client library: a [`Client`] with one typed async method per
//! operation. The shell, the script modes and the tests all use it; nothing
//! else on the client side speaks the wire. It knows no terminal: progress
//! is reported through a callback.
//!
//! A connection starts classic (module `classic`); against our own server
//! the client then switches to the extended protocol (module `extended`,
//! see `docs/PROTOCOL.md`), unless told not to ([`Protocol::Classic`]).
//! Every operation goes through the private `Transport`, which speaks one
//! or the other behind the same methods; operations that only the extended
//! protocol has (listings, `stat`, recursive operations, pipelines) fail
//! with [`ClientError::NeedsExtended`] on a classic connection.

mod classic;
mod error;
mod extended;
mod local;
mod tree;

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

pub use error::{ClientError, Direction, plain_io};
pub use local::RESUMABLE_SUFFIX;
pub use tree::RemoteTree;

use crate::digest::Hasher;
use crate::operation::Operation;
pub use crate::operation::{Entry, EntryKind, ErrorCode, Password};
use crate::protocol::reply::Welcome;
use crate::stream::Stream;
use crate::tls::ClientTrust;
use classic::{Classic, Upgrade};
use extended::{Extended, Job, Outcome};
use local::PartialFile;

/// The default port of a miniftp server.
pub const DEFAULT_PORT: u16 = 65438;

/// Which protocol the client may speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// Switch to the extended protocol when the server agrees (only asked
    /// of a server whose welcome names `/`, as ours does); otherwise stay
    /// classic, silently.
    #[default]
    Auto,
    /// Never ask: the classic protocol only (for comparisons and tests).
    Classic,
}

/// An account to log in to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The account's name.
    pub user: String,
    /// Its password (never shown by `Debug`).
    pub password: Password,
}

/// Asks for a password (on a terminal, say); the error says why there is
/// none.
pub type AskPassword = dyn Fn() -> Result<Password, String> + Send + Sync;

/// An account whose password is asked for only when it is first needed: by
/// then the server is trusted (a TLS server's certificate decided on), as
/// ssh asks. Asked once per client; reconnections use the same answer.
#[derive(Clone)]
pub struct AskedLogin {
    /// The account's name.
    pub user: String,
    /// Asks for its password; called on the blocking pool.
    pub ask: Arc<AskPassword>,
    answer: Arc<std::sync::Mutex<Option<Password>>>,
}

impl AskedLogin {
    /// The account `user`, its password from `ask`.
    pub fn new(user: String, ask: Arc<AskPassword>) -> AskedLogin {
        AskedLogin {
            user,
            ask,
            answer: Arc::default(),
        }
    }

    /// The password: asked the first time (which sets `asked`), then the
    /// same answer.
    async fn password(&self, asked: &AtomicBool) -> Result<Password, ClientError> {
        if let Some(password) = self.remembered() {
            return Ok(password);
        }
        asked.store(true, Ordering::Relaxed);
        let ask = Arc::clone(&self.ask);
        let answer = tokio::task::spawn_blocking(move || ask())
            .await
            .map_err(|error| ClientError::NoPassword(error.to_string()))?
            .map_err(ClientError::NoPassword)?;
        *self.answer.lock().unwrap_or_else(|e| e.into_inner()) = Some(answer.clone());
        Ok(answer)
    }

    fn remembered(&self) -> Option<Password> {
        self.answer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

impl std::fmt::Debug for AskedLogin {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AskedLogin")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// A client's settings.
#[derive(Clone)]
pub struct ClientConfig {
    /// The longest the client waits for the server to connect or to send
    /// the next bytes of an answer (or to take the next bytes sent). A
    /// silent server (the original answers some failures with silence)
    /// ends the operation with [`ClientError::TimedOut`]. Default 30 s.
    pub timeout: Duration,
    /// Which protocol to speak. Default [`Protocol::Auto`].
    pub protocol: Protocol,
    /// Speak TLS, trusting the server as this says. Default: plain TCP.
    pub tls: Option<Arc<ClientTrust>>,
    /// Log in to this account after connecting (extended protocol only).
    /// Default: no login.
    pub login: Option<Credentials>,
    /// Log in to this account, asking for its password only when it is
    /// needed (when `login` is not set). Default: none.
    pub asked_login: Option<AskedLogin>,
    /// Send the password even over plain TCP to another host. Default off:
    /// a login needs TLS, unless the server is on this host.
    pub allow_insecure_login: bool,
    /// How long a server has, once connected (and its TLS handshake done),
    /// to send its token: a miniftp or Mini-FTP server sends it at once, so
    /// one that stays silent is another kind of server (an HTTP server
    /// waits for its client to speak first), said as
    /// [`ClientError::NotMiniftp`]. At most `timeout`. Default
    /// [`DEFAULT_GREETING_TIMEOUT`].
    pub greeting_timeout: Duration,
    /// Wait, before a downloaded file appears under its name, until its
    /// bytes are on the disk (`fsync`), so that it survives a power cut.
    /// Default off: a download is verified and appears whole or not at
    /// all, its bytes in the page cache (as curl, scp or rsync leave them),
    /// written to the disk by the system soon after.
    pub durable_downloads: bool,
}

impl ClientConfig {
    /// Whether the client logs in (`login` or `asked_login`).
    fn logs_in(&self) -> bool {
        self.login.is_some() || self.asked_login.is_some()
    }

    /// The account to log in to, if any: its name and password (asked now
    /// if it must be, which sets `asked`).
    async fn credentials(&self, asked: &AtomicBool) -> Result<Option<Credentials>, ClientError> {
        if let Some(login) = &self.login {
            return Ok(Some(login.clone()));
        }
        let Some(asked_login) = &self.asked_login else {
            return Ok(None);
        };
        Ok(Some(Credentials {
            user: asked_login.user.clone(),
            password: asked_login.password(asked).await?,
        }))
    }
}

/// How long a server has to send its token by default (see
/// [`ClientConfig::greeting_timeout`]).
pub const DEFAULT_GREETING_TIMEOUT: Duration = Duration::from_secs(3);

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ClientConfig")
            .field("timeout", &self.timeout)
            .field("protocol", &self.protocol)
            .field("tls", &self.tls.is_some())
            .field("login", &self.login)
            .field("asked_login", &self.asked_login)
            .field("allow_insecure_login", &self.allow_insecure_login)
            .field("greeting_timeout", &self.greeting_timeout)
            .field("durable_downloads", &self.durable_downloads)
            .finish()
    }
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            timeout: Duration::from_secs(30),
            protocol: Protocol::Auto,
            tls: None,
            login: None,
            asked_login: None,
            allow_insecure_login: false,
            greeting_timeout: DEFAULT_GREETING_TIMEOUT,
            durable_downloads: false,
        }
    }
}

/// How far a transfer has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Bytes transferred so far (including what a resumed transfer had
    /// before).
    pub done: u64,
    /// The expected total, when known (a local file's size, or the remote
    /// size reported before a download).
    pub total: Option<u64>,
    /// Of `done`, the bytes an earlier, interrupted attempt left, which a
    /// resumed transfer did not move again (0 when not resuming).
    pub kept: u64,
    /// What the transfer is doing.
    pub stage: Stage,
}

/// What a transfer is doing, for a display (bytes move only in
/// [`Stage::Transferring`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stage {
    /// Moving bytes.
    #[default]
    Transferring,
    /// Reading back what an earlier attempt left, before resuming: here
    /// (a download's `kept` bytes), or on the server (an upload, whose
    /// `kept` is known only once the server has said it).
    Checking,
    /// Every byte is across; the receiving side checks the digest and
    /// makes the file durable.
    Verifying,
}

/// How a file transfer goes about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TransferOptions {
    /// Continue an interrupted transfer of the same file instead of
    /// starting over (extended protocol only; ignored by a classic
    /// connection, which cannot resume). An upload continues from what the
    /// server kept of an earlier upload of the same path and size; a
    /// download continues the temporary file an interrupted one left
    /// beside its target (`.NAME.miniftp-part`) and, unlike a download
    /// without it, leaves that file behind when interrupted. Either way the
    /// whole file is verified at the end, and if the kept part turns out
    /// to belong to another file the transfer starts over, once.
    pub resume: bool,
}

/// What a recursive transfer did ([`Client::upload_tree`],
/// [`Client::download_tree`]).
#[derive(Debug, Default)]
pub struct TreeSummary {
    /// Directories created (or found existing) on the receiving side.
    pub directories: u64,
    /// Files transferred and verified.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// What could not be transferred, relative to the tree's root, and why.
    pub failures: Vec<(String, ClientError)>,
}

/// A connection to a miniftp (or original Mini-FTP) server.
///
/// Every method leaves the connection in step or drops it: after an error
/// for which [`ClientError::is_connection_lost`] holds, or after a method's
/// future was dropped before completion (e.g. a cancelled transfer), the
/// next call fails with [`ClientError::NotConnected`] until
/// [`Client::reconnect`] is called.
pub struct Client {
    address: String,
    config: ClientConfig,
    /// `None` while not connected; taken out during each operation so that
    /// an interrupted one leaves it `None`.
    transport: Option<Transport>,
    /// The remote directory as the server last reported it.
    directory: String,
    welcome: Welcome,
    /// Whether to ask for the extended protocol when reconnecting: only if
    /// the server agreed the first time (a server that did not answer
    /// would cost a timeout on every reconnection).
    ask_extended: bool,
}

impl Client {
    /// Connects to `address` (`HOST:PORT`), reads the welcome and, unless
    /// configured otherwise, switches to the extended protocol if the
    /// server agrees.
    pub async fn connect(address: &str, config: ClientConfig) -> Result<Client, ClientError> {
        let ask = config.protocol == Protocol::Auto;
        let (transport, welcome) = Transport::open(address, &config, ask).await?;
        Ok(Client {
            address: address.to_owned(),
            ask_extended: transport.is_extended(),
            config,
            transport: Some(transport),
            directory: welcome.directory.clone(),
            welcome,
        })
    }

    /// The welcome the server sent on the first connection.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// The remote current directory, as the server last reported it (a
    /// virtual path on our server, a real one on the original).
    pub fn directory(&self) -> &str {
        &self.directory
    }

    /// The address connected to, as given.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Whether the connection speaks the extended protocol.
    pub fn is_extended(&self) -> bool {
        self.transport.as_ref().is_some_and(Transport::is_extended)
    }

    /// The token that no uploaded data may contain on this connection (the
    /// classic protocol's end-of-message marker); `None` when not connected
    /// or when the connection speaks the extended protocol, which has no
    /// such limit.
    pub fn forbidden_token(&self) -> Option<crate::protocol::Token> {
        self.transport.as_ref()?.forbidden_token().copied()
    }

    /// Whether the connection is usable.
    pub fn is_connected(&self) -> bool {
        self.transport.is_some()
    }

    /// Opens a new connection and returns to the remote directory of the
    /// old one. If that directory is gone, the client stays connected where
    /// the server put it, and the server's refusal is returned.
    pub async fn reconnect(&mut self) -> Result<(), ClientError> {
        self.transport = None;
        let (transport, welcome) =
            Transport::open(&self.address, &self.config, self.ask_extended).await?;
        self.transport = Some(transport);
        let previous = std::mem::replace(&mut self.directory, welcome.directory);
        if previous != self.directory {
            self.change_directory(&previous).await?;
        }
        Ok(())
    }

    /// Whether the server lets nothing happen before a login (it has
    /// accounts and no anonymous access) while this client did not log in.
    /// Such a server's welcome lists nothing, so only then is it asked, with
    /// a harmless `cd .`. A client says so at once this way, rather than at
    /// each command that fails.
    pub async fn needs_login(&mut self) -> Result<bool, ClientError> {
        if self.config.logs_in()
            || self.welcome.directory != "/"
            || !self.welcome.entries.is_empty()
        {
            return Ok(false);
        }
        match self.change_directory(".").await {
            Ok(()) => Ok(false),
            Err(error) if error.code() == Some(ErrorCode::LoginRequired) => Ok(true),
            // The classic protocol has no codes: our server's words.
            Err(ClientError::Server { reason, code: None })
                if reason.starts_with("login required") =>
            {
                Ok(true)
            }
            Err(error) => Err(error),
        }
    }

    /// If the server closed the connection since the last operation (an
    /// idle timeout, a restart), opens a new one and returns to the remote
    /// directory, before anything is sent on the dead one; whether it did.
    /// The check itself does not wait.
    pub async fn reconnect_if_closed(&mut self) -> Result<bool, ClientError> {
        // Lets the runtime poll its I/O driver, which learns of a close only
        // then: the shell's runtime sleeps while the user types.
        tokio::task::yield_now().await;
        let closed = match &mut self.transport {
            Some(Transport::Classic(classic)) => classic.closed_by_server(),
            Some(Transport::Extended(extended)) => extended.closed_by_server(),
            None => return Ok(false),
        };
        if !closed {
            return Ok(false);
        }
        tracing::debug!("the server closed the connection; reconnecting");
        self.reconnect().await.map(|()| true)
    }

    /// `cd`: changes the remote directory.
    pub async fn change_directory(&mut self, path: &str) -> Result<(), ClientError> {
        self.command(Operation::ChangeDirectory { path: path.into() })
            .await
    }

    /// `mkdir`: creates one remote directory; its parent must exist.
    pub async fn make_directory(&mut self, path: &str) -> Result<(), ClientError> {
        self.command(Operation::MakeDirectory {
            path: path.into(),
            parents: false,
        })
        .await
    }

    /// `mkdir -p`: creates a remote directory and any missing parents; an
    /// existing directory is fine. Extended protocol only.
    pub async fn make_directories(&mut self, path: &str) -> Result<(), ClientError> {
        self.command(Operation::MakeDirectory {
            path: path.into(),
            parents: true,
        })
        .await
    }

    /// `rm`: removes a remote file or empty directory.
    pub async fn remove(&mut self, path: &str) -> Result<(), ClientError> {
        self.command(Operation::Remove {
            path: path.into(),
            recursive: false,
        })
        .await
    }

    /// `rm -r`: removes a remote file, or a directory with everything
    /// below it (links are removed, never followed). Extended protocol only.
    pub async fn remove_tree(&mut self, path: &str) -> Result<(), ClientError> {
        self.command(Operation::Remove {
            path: path.into(),
            recursive: true,
        })
        .await
    }

    /// `mv`: renames `from` to `to`, or moves it into `to` if that is an
    /// existing directory. Never replaces an existing entry.
    pub async fn rename(&mut self, from: &str, to: &str) -> Result<(), ClientError> {
        self.command(Operation::Rename {
            from: from.into(),
            to: to.into(),
        })
        .await
    }

    /// `info`: the size of a remote file in bytes.
    pub async fn size(&mut self, path: &str) -> Result<u64, ClientError> {
        self.run(async |transport| match transport {
            Transport::Classic(classic) => classic.size(path).await,
            Transport::Extended(extended) => extended.size(path).await,
        })
        .await
    }

    /// `stat`: describes one remote entry. Extended protocol only.
    pub async fn stat(&mut self, path: &str) -> Result<Entry, ClientError> {
        self.run(async |t| t.extended("stat")?.stat(path).await)
            .await
    }

    /// Describes many remote entries with one round trip's worth of
    /// waiting: the requests are pipelined. One result per path, in order;
    /// the outer error is a failed connection. Extended protocol only.
    pub async fn stat_many(
        &mut self,
        paths: &[String],
    ) -> Result<Vec<Result<Entry, ClientError>>, ClientError> {
        let jobs = paths
            .iter()
            .map(|path| Job::Request(Operation::Stat { path: path.clone() }))
            .collect();
        let results = self
            .pipeline("stat", jobs, Progress::default(), &mut |_| {})
            .await?;
        Ok(results
            .into_iter()
            .map(|result| match result? {
                Outcome::Entry(entry) => Ok(entry),
                other => Err(unexpected(other)),
            })
            .collect())
    }

    /// `ls`: a remote directory's entries, directories first, then files,
    /// each group by name. Extended protocol only.
    pub async fn list(&mut self, path: &str) -> Result<Vec<Entry>, ClientError> {
        self.run(async |t| t.extended("ls")?.list(path).await).await
    }

    /// Uploads the `size` bytes that `reader` yields to `remote`; returns
    /// the bytes sent. If the reader fails or ends early, the upload fails
    /// with [`ClientError::Source`] and nothing is stored. On a classic
    /// connection, data containing the connection's token is refused; since
    /// it is only seen on the way, the connection may have to be dropped
    /// (see [`ClientError::TokenInFile`]); [`Client::upload_file`] checks
    /// first.
    pub async fn upload<R: AsyncRead + Unpin>(
        &mut self,
        mut reader: R,
        size: u64,
        remote: &str,
        mut progress: impl FnMut(Progress) + Send,
    ) -> Result<u64, ClientError> {
        let start = Progress {
            done: 0,
            total: Some(size),
            ..Progress::default()
        };
        self.run(async |transport| match transport {
            Transport::Classic(classic) => {
                classic
                    .upload(remote, &mut reader, size, start, &mut progress)
                    .await
            }
            Transport::Extended(extended) => {
                extended
                    .upload(remote, &mut reader, size, start, &mut progress)
                    .await
            }
        })
        .await
    }

    /// Uploads the local file `local` to `remote`; returns the bytes sent
    /// (with `resume`, only those sent this time). Fails before anything is
    /// sent if `local` is missing or not a regular file, or, on a classic
    /// connection, contains the connection's token. On the extended
    /// protocol the server checks the file's digest before storing it.
    pub async fn upload_file(
        &mut self,
        local: &Path,
        remote: &str,
        options: TransferOptions,
        mut progress: impl FnMut(Progress) + Send,
    ) -> Result<u64, ClientError> {
        let (mut file, size) = local::open_for_upload(local).await?;
        if !self.is_connected() {
            return Err(ClientError::NotConnected);
        }
        if let Some(token) = self.forbidden_token()
            && local::contains_token(&mut file, &token, local).await?
        {
            return Err(ClientError::TokenInFile {
                name: local.display().to_string(),
                connection_dropped: false,
            });
        }
        let start = Progress {
            done: 0,
            total: Some(size),
            ..Progress::default()
        };
        self.run(async |transport| match transport {
            Transport::Classic(classic) => {
                classic
                    .upload(remote, &mut file, size, start, &mut progress)
                    .await
            }
            Transport::Extended(extended) if options.resume => {
                extended
                    .upload_resuming(remote, &mut file, size, &mut progress)
                    .await
            }
            Transport::Extended(extended) => {
                extended
                    .upload(remote, &mut file, size, start, &mut progress)
                    .await
            }
        })
        .await
    }

    /// Downloads `remote` into `writer`; returns the bytes received. On the
    /// extended protocol the digest is checked at the end: a mismatch is
    /// [`ClientError::DigestMismatch`] (the bytes are in `writer` by then;
    /// [`Client::download_file`] keeps nothing in that case).
    pub async fn download<W: AsyncWrite + Unpin>(
        &mut self,
        remote: &str,
        mut writer: W,
        mut progress: impl FnMut(Progress) + Send,
    ) -> Result<u64, ClientError> {
        if self.is_extended() {
            return self
                .run(async |t| {
                    t.extended("dl")?
                        .download(remote, 0, Hasher::new(), &mut writer, &mut progress)
                        .await
                })
                .await;
        }
        let start = Progress {
            done: 0,
            total: Some(self.size(remote).await?),
            ..Progress::default()
        };
        progress(start);
        let expected = start.total.unwrap_or_default();
        self.run(async |transport| match transport {
            Transport::Classic(classic) => {
                let (received, directory) = classic
                    .download(remote, &mut writer, start, &mut progress)
                    .await?;
                if received != expected {
                    // Cut short: the file holds the connection's token (an
                    // original server sends it anyway) or changed meanwhile;
                    // the rest of it was read as the status, so the
                    // connection is out of step and must go.
                    return Err(ClientError::Protocol(format!(
                        "{remote}: received {received} of {expected} bytes; the file \
                         contains the connection's token or changed during the download"
                    )));
                }
                Ok((received, directory))
            }
            Transport::Extended(_) => Err(ClientError::NotConnected),
        })
        .await
    }

    /// Downloads `remote` to the local file `local`, through a temporary
    /// file beside it that is renamed only when the download is complete
    /// (and, on the extended protocol, verified): a failed or interrupted
    /// download leaves nothing under `local`. See [`TransferOptions`] for
    /// resuming. Returns the file's size.
    pub async fn download_file(
        &mut self,
        remote: &str,
        local: &Path,
        options: TransferOptions,
        mut progress: impl FnMut(Progress) + Send,
    ) -> Result<u64, ClientError> {
        let durable = self.config.durable_downloads;
        if !self.is_extended() {
            let mut partial = PartialFile::create(local).await?;
            let received = self.download(remote, partial.writer(), progress).await?;
            partial.complete(durable).await?;
            return Ok(received);
        }
        let mut partial = match options.resume {
            true => PartialFile::resumable(local).await?,
            false => PartialFile::create(local).await?,
        };
        let kept = partial.len().await?;
        if kept > 0 {
            progress(Progress {
                done: kept,
                total: None,
                kept,
                stage: Stage::Checking,
            });
        }
        let (mut offset, mut hasher) = partial.held().await?;
        loop {
            let file = partial.take_file().await?;
            let attempt = hasher.clone();
            let result = self
                .run(async |t| {
                    t.extended("dl")?
                        .download_to_file(remote, offset, attempt, file, durable, &mut progress)
                        .await
                })
                .await;
            // What was kept may be of another file (a changed remote file,
            // or one shorter than what is held): start over, once.
            let stale = matches!(&result, Err(ClientError::DigestMismatch { .. }))
                || result.as_ref().err().and_then(ClientError::code) == Some(ErrorCode::BadRequest);
            match result {
                Err(_) if stale && offset > 0 => {
                    tracing::debug!(remote, offset, "the kept part did not match; starting over");
                    partial.restart().await?;
                    (offset, hasher) = (0, Hasher::new());
                }
                Ok((size, file)) => {
                    partial.put_back(file);
                    partial.complete(durable).await?;
                    return Ok(size);
                }
                // Kept for the next attempt: the connection went away (only
                // a resumable download keeps its file).
                Err(error) if error.is_connection_lost() => {
                    partial.settle().await;
                    return Err(error);
                }
                Err(error) => {
                    partial.discard();
                    return Err(error);
                }
            }
        }
    }

    /// Says goodbye and closes the connection.
    pub async fn close(mut self) {
        if let Some(transport) = self.transport.take() {
            transport.close().await;
        }
    }

    /// Runs an operation answered by a status alone, in whichever protocol
    /// the connection speaks (one that cannot say it refuses it unsent).
    async fn command(&mut self, operation: Operation) -> Result<(), ClientError> {
        self.run(async |transport| {
            let directory = match transport {
                Transport::Classic(classic) => classic.command(&operation).await?,
                Transport::Extended(extended) => extended.command(operation).await?,
            };
            Ok(((), directory))
        })
        .await
    }

    /// Runs jobs in a pipeline (extended protocol only).
    async fn pipeline(
        &mut self,
        operation: &'static str,
        jobs: Vec<Job>,
        start: Progress,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<Vec<Result<Outcome, ClientError>>, ClientError> {
        self.run(async |t| {
            let extended = t.extended(operation)?;
            let results = extended.pipeline(jobs, start, progress).await?;
            Ok((results, extended.directory().to_owned()))
        })
        .await
    }

    fn needs_extended(&self, operation: &'static str) -> ClientError {
        match self.is_connected() {
            true => ClientError::NeedsExtended { operation },
            false => ClientError::NotConnected,
        }
    }

    /// Runs one operation on the transport, keeping the transport only if
    /// the connection is still in step afterwards, and recording the
    /// directory the server reported.
    async fn run<T>(
        &mut self,
        operation: impl AsyncFnOnce(&mut Transport) -> Result<(T, String), ClientError>,
    ) -> Result<T, ClientError> {
        let mut transport = self.transport.take().ok_or(ClientError::NotConnected)?;
        let result = operation(&mut transport).await;
        let lost = result.as_ref().is_err_and(ClientError::is_connection_lost);
        if !lost {
            self.transport = Some(transport);
        }
        result.map(|(value, directory)| {
            self.directory = directory;
            value
        })
    }
}

/// `HOST:PORT` (or `[V6]:PORT`) as the host and the port; the default port
/// when none is given.
fn split_address(address: &str) -> (&str, u16) {
    if let Some((host, port)) = address.rsplit_once(':')
        && !host.is_empty()
        && (!host.contains(':') || host.ends_with(']'))
        && let Ok(port) = port.parse()
    {
        return (host.trim_start_matches('[').trim_end_matches(']'), port);
    }
    (
        address.trim_start_matches('[').trim_end_matches(']'),
        DEFAULT_PORT,
    )
}

/// Polls `future` once, without waiting: its output if it is ready now.
/// (For reads that keep what they read in their connection, so that
/// dropping them is harmless.)
fn ready_now<F: std::future::Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut context = Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

/// The error of a source that ended before the size announced.
fn ended_early(read: u64, size: u64) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        format!("the data ended after {read} of the {size} bytes announced"),
    )
}

fn unexpected(outcome: Outcome) -> ClientError {
    ClientError::Protocol(format!("unexpected answer {outcome:?}"))
}

/// The protocol a connection speaks; each method has an arm per protocol,
/// or sends the caller to [`Transport::extended`].
// One per client, moved only when (re)connecting: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Transport {
    Classic(Classic),
    Extended(Extended),
}

impl Transport {
    /// Connects, reads the welcome, and switches to the extended protocol
    /// if `ask` and the server agrees. A server that answers the question
    /// with silence or a close (which a classic server may) is left, and a
    /// fresh classic connection opened instead.
    async fn open(
        address: &str,
        config: &ClientConfig,
        ask: bool,
    ) -> Result<(Transport, Welcome), ClientError> {
        let asked_user = Arc::new(AtomicBool::new(false));
        match Transport::open_once(address, config, ask, &asked_user).await {
            // The user took a while to decide whether to trust the server's
            // certificate, or to type the password, and the server may have
            // given up waiting for a login meanwhile. The answers are kept
            // now: once more. (A refusal to trust it is final, of course,
            // and a refused login is not tried twice.)
            Err(error)
                if asked_user.load(Ordering::Relaxed)
                    && error.is_connection_lost()
                    && !matches!(error, ClientError::Tls(_) | ClientError::NoPassword(_)) =>
            {
                tracing::debug!(%error, "failed after asking the user; once more");
                let not_again = Arc::new(AtomicBool::new(false));
                Transport::open_once(address, config, ask, &not_again).await
            }
            opened => opened,
        }
    }

    /// [`Transport::open`], once; `asked_user` is set if the user was asked
    /// whether to trust the server, or for the password.
    async fn open_once(
        address: &str,
        config: &ClientConfig,
        ask: bool,
        asked_user: &Arc<AtomicBool>,
    ) -> Result<(Transport, Welcome), ClientError> {
        let stream = Transport::connect(address, config, asked_user).await?;
        let private = stream.is_tls()
            || stream
                .tcp()
                .peer_addr()
                .is_ok_and(|peer| peer.ip().is_loopback());
        if config.logs_in() && !private && !config.allow_insecure_login {
            return Err(ClientError::InsecureLogin {
                address: address.to_owned(),
            });
        }
        let (mut classic, mut welcome) =
            Classic::open(stream, address, config.timeout, config.greeting_timeout).await?;
        // Only our server names `/`; the original names a real path.
        if !ask || welcome.directory != "/" {
            if config.logs_in() {
                return Err(ClientError::LoginUnsupported);
            }
            return Ok((Transport::Classic(classic), welcome));
        }
        match classic.ask_upgrade().await {
            Upgrade::Accepted => {
                let mut extended = Extended::new(
                    classic.into_connection(),
                    welcome.directory.clone(),
                    config.timeout,
                )?;
                if let Some(credentials) = config.credentials(asked_user).await? {
                    extended
                        .command(Operation::Login {
                            user: credentials.user.clone(),
                            password: credentials.password.clone(),
                        })
                        .await?;
                    // The welcome listed nothing, or the anonymous directory:
                    // what counts now is the account's home.
                    let (entries, directory) = extended.list("/").await?;
                    welcome = Welcome {
                        directory,
                        entries: entries.into_iter().map(|entry| entry.name).collect(),
                    };
                }
                Ok((Transport::Extended(extended), welcome))
            }
            Upgrade::Refused | Upgrade::NoAnswer if config.logs_in() => {
                Err(ClientError::LoginUnsupported)
            }
            Upgrade::Refused => Ok((Transport::Classic(classic), welcome)),
            Upgrade::NoAnswer => {
                tracing::debug!("no answer to the protocol switch; reconnecting classic");
                let stream = Transport::connect(address, config, asked_user).await?;
                let (classic, welcome) =
                    Classic::open(stream, address, config.timeout, config.greeting_timeout).await?;
                Ok((Transport::Classic(classic), welcome))
            }
        }
    }

    async fn connect(
        address: &str,
        config: &ClientConfig,
        asked_user: &Arc<AtomicBool>,
    ) -> Result<Stream, ClientError> {
        let connect = |source| ClientError::Connect {
            address: address.to_owned(),
            source,
        };
        let tcp = tokio::time::timeout(config.timeout, TcpStream::connect(address))
            .await
            .map_err(|_| connect(std::io::ErrorKind::TimedOut.into()))?
            .map_err(connect)?;
        let _ = tcp.set_nodelay(true);
        let Some(trust) = &config.tls else {
            return Ok(Stream::plain(tcp));
        };
        let (host, port) = split_address(address);
        // Notes whether the user is asked (the wait for an answer is no
        // handshake time: the handshake bounds itself, the question not).
        let noting = trust.ask.as_ref().map(|ask| {
            let (ask, asked_user) = (Arc::clone(ask), Arc::clone(asked_user));
            ClientTrust {
                ca_file: trust.ca_file.clone(),
                known_hosts: trust.known_hosts.clone(),
                accept_new: trust.accept_new,
                handshake_timeout: trust.handshake_timeout,
                ask: Some(Arc::new(move |server: &str, fingerprint: &_| {
                    asked_user.store(true, Ordering::Relaxed);
                    ask(server, fingerprint)
                })),
            }
        });
        let trust = noting.as_ref().unwrap_or(trust);
        let tls = crate::tls::connect(tcp, host, port, trust).await?;
        Ok(Stream::tls(tls))
    }

    fn is_extended(&self) -> bool {
        matches!(self, Transport::Extended(_))
    }

    /// The extended connection, or why `operation` cannot run.
    fn extended(&mut self, operation: &'static str) -> Result<&mut Extended, ClientError> {
        match self {
            Transport::Extended(extended) => Ok(extended),
            Transport::Classic(_) => Err(ClientError::NeedsExtended { operation }),
        }
    }

    /// The token that uploaded data must not contain, if the protocol has one.
    fn forbidden_token(&self) -> Option<&crate::protocol::Token> {
        match self {
            Transport::Classic(classic) => Some(classic.token()),
            Transport::Extended(_) => None,
        }
    }

    async fn close(self) {
        match self {
            Transport::Classic(classic) => classic.exit().await,
            Transport::Extended(extended) => extended.close().await,
        }
    }
}

/// Counts what passes through to `inner` and reports it.
struct ProgressWriter<'a, W> {
    inner: &'a mut W,
    progress: Progress,
    report: &'a mut (dyn FnMut(Progress) + Send),
}

impl<'a, W> ProgressWriter<'a, W> {
    fn new(
        inner: &'a mut W,
        progress: Progress,
        report: &'a mut (dyn FnMut(Progress) + Send),
    ) -> Self {
        ProgressWriter {
            inner,
            progress,
            report,
        }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for ProgressWriter<'_, W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let written = std::task::ready!(Pin::new(&mut *this.inner).poll_write(context, buffer))?;
        this.progress.done += written as u64;
        (this.report)(this.progress);
        Poll::Ready(Ok(written))
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.inner).poll_flush(context)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.inner).poll_shutdown(context)
    }
}
