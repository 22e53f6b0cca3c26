//! The client library: a [`Client`] with one typed async method per
//! operation. The shell, the script modes and the tests all use it; nothing
//! else on the client side speaks the wire. It knows no terminal: progress
//! is reported through a callback.
//!
//! The client speaks the classic token protocol (module `classic`); every
//! operation goes through the private `Transport`, which is where a second
//! protocol (the extended one) will slot in behind the same methods.

mod classic;
mod error;
mod local;

use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

pub use error::ClientError;

use crate::protocol::Request;
use crate::protocol::reply::Welcome;
use classic::Classic;
use local::PartialFile;

/// The default port of a miniftp server.
pub const DEFAULT_PORT: u16 = 65438;

/// A client's settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The longest the client waits for the server to connect or to send
    /// the next bytes of an answer. A silent server (the original answers
    /// some failures with silence) ends the operation with
    /// [`ClientError::TimedOut`]. Default 30 s.
    pub timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            timeout: Duration::from_secs(30),
        }
    }
}

/// How far a transfer has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes transferred so far.
    pub done: u64,
    /// The expected total, when known (a local file's size, or the remote
    /// size reported before a download).
    pub total: Option<u64>,
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
}

impl Client {
    /// Connects to `address` (`HOST:PORT`) and reads the welcome.
    pub async fn connect(address: &str, config: ClientConfig) -> Result<Client, ClientError> {
        let (transport, welcome) = Transport::open(address, &config).await?;
        Ok(Client {
            address: address.to_owned(),
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

    /// The token that no uploaded data may contain on this connection (the
    /// classic protocol's end-of-message marker); `None` when not connected.
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
        let (transport, welcome) = Transport::open(&self.address, &self.config).await?;
        self.transport = Some(transport);
        let previous = std::mem::replace(&mut self.directory, welcome.directory);
        if previous != self.directory {
            self.change_directory(&previous).await?;
        }
        Ok(())
    }

    /// `cd`: changes the remote directory.
    pub async fn change_directory(&mut self, path: &str) -> Result<(), ClientError> {
        let request = Request::ChangeDirectory { path: path.into() };
        self.run(async |transport| transport.command(&request).await.map(|d| ((), d)))
            .await
    }

    /// `mkdir`: creates one remote directory.
    pub async fn make_directory(&mut self, path: &str) -> Result<(), ClientError> {
        let request = Request::MakeDirectory { path: path.into() };
        self.run(async |transport| transport.command(&request).await.map(|d| ((), d)))
            .await
    }

    /// `rm`: removes a remote file or empty directory.
    pub async fn remove(&mut self, path: &str) -> Result<(), ClientError> {
        let request = Request::Remove { path: path.into() };
        self.run(async |transport| transport.command(&request).await.map(|d| ((), d)))
            .await
    }

    /// `mv`: renames `from` to `to`, or moves it into `to` if that is an
    /// existing directory. Never replaces an existing entry.
    pub async fn rename(&mut self, from: &str, to: &str) -> Result<(), ClientError> {
        let request = Request::Rename {
            from: from.into(),
            to: to.into(),
        };
        self.run(async |transport| transport.command(&request).await.map(|d| ((), d)))
            .await
    }

    /// `info`: the size of a remote file in bytes.
    pub async fn size(&mut self, path: &str) -> Result<u64, ClientError> {
        self.run(async |transport| transport.size(path).await).await
    }

    /// Uploads everything `reader` yields to `remote`; returns the bytes
    /// sent. Data containing the connection's token is refused; since it is
    /// only seen on the way, the connection may have to be dropped (see
    /// [`ClientError::TokenInFile`]). [`Client::upload_file`] checks first.
    pub async fn upload<R: AsyncRead + Unpin>(
        &mut self,
        mut reader: R,
        remote: &str,
        mut progress: impl FnMut(Progress),
    ) -> Result<u64, ClientError> {
        let start = Progress {
            done: 0,
            total: None,
        };
        self.run(async |transport| {
            transport
                .upload(remote, &mut reader, start, &mut progress)
                .await
        })
        .await
    }

    /// Uploads the local file `local` to `remote`; returns the bytes sent.
    /// Fails before anything is sent if `local` is missing, not a regular
    /// file, or contains the connection's token.
    pub async fn upload_file(
        &mut self,
        local: &Path,
        remote: &str,
        mut progress: impl FnMut(Progress),
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
        };
        self.run(async |transport| {
            transport
                .upload(remote, &mut file, start, &mut progress)
                .await
        })
        .await
    }

    /// Downloads `remote` into `writer`; returns the bytes received. Asks
    /// for the size first, so that progress knows the total.
    pub async fn download<W: AsyncWrite + Unpin>(
        &mut self,
        remote: &str,
        mut writer: W,
        mut progress: impl FnMut(Progress),
    ) -> Result<u64, ClientError> {
        let start = Progress {
            done: 0,
            total: Some(self.size(remote).await?),
        };
        progress(start);
        self.run(async |transport| {
            transport
                .download(remote, &mut writer, start, &mut progress)
                .await
        })
        .await
    }

    /// Downloads `remote` to the local file `local`, through a temporary
    /// file beside it that is renamed only when the download is complete:
    /// a failed or interrupted download leaves nothing under `local`.
    pub async fn download_file(
        &mut self,
        remote: &str,
        local: &Path,
        progress: impl FnMut(Progress),
    ) -> Result<u64, ClientError> {
        let mut partial = PartialFile::create(local).await?;
        let received = self.download(remote, partial.writer(), progress).await?;
        partial.complete().await?;
        Ok(received)
    }

    /// Says goodbye and closes the connection.
    pub async fn close(mut self) {
        if let Some(transport) = self.transport.take() {
            transport.close().await;
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

/// The protocol a connection speaks. Only the classic one for now; the
/// extended protocol becomes a second variant, and each method below a
/// second arm.
enum Transport {
    Classic(Classic),
}

impl Transport {
    async fn open(
        address: &str,
        config: &ClientConfig,
    ) -> Result<(Transport, Welcome), ClientError> {
        let connect = |source| ClientError::Connect {
            address: address.to_owned(),
            source,
        };
        let stream = tokio::time::timeout(config.timeout, TcpStream::connect(address))
            .await
            .map_err(|_| connect(std::io::ErrorKind::TimedOut.into()))?
            .map_err(connect)?;
        let _ = stream.set_nodelay(true);
        let (classic, welcome) = Classic::open(stream, config.timeout).await?;
        Ok((Transport::Classic(classic), welcome))
    }

    /// The token that uploaded data must not contain, if the protocol has one.
    fn forbidden_token(&self) -> Option<&crate::protocol::Token> {
        match self {
            Transport::Classic(classic) => Some(classic.token()),
        }
    }

    async fn command(&mut self, request: &Request) -> Result<String, ClientError> {
        match self {
            Transport::Classic(classic) => classic.command(request).await,
        }
    }

    async fn size(&mut self, path: &str) -> Result<(u64, String), ClientError> {
        match self {
            Transport::Classic(classic) => classic.size(path).await,
        }
    }

    async fn upload<R: AsyncRead + Unpin>(
        &mut self,
        path: &str,
        reader: &mut R,
        start: Progress,
        report: &mut dyn FnMut(Progress),
    ) -> Result<(u64, String), ClientError> {
        match self {
            Transport::Classic(classic) => classic.upload(path, reader, start, report).await,
        }
    }

    async fn download<W: AsyncWrite + Unpin>(
        &mut self,
        path: &str,
        writer: &mut W,
        start: Progress,
        report: &mut dyn FnMut(Progress),
    ) -> Result<(u64, String), ClientError> {
        match self {
            Transport::Classic(classic) => classic.download(path, writer, start, report).await,
        }
    }

    async fn close(self) {
        match self {
            Transport::Classic(classic) => classic.exit().await,
        }
    }
}

/// Counts what passes through to `inner` and reports it.
struct ProgressWriter<'a, W> {
    inner: &'a mut W,
    progress: Progress,
    report: &'a mut dyn FnMut(Progress),
}

impl<'a, W> ProgressWriter<'a, W> {
    fn new(inner: &'a mut W, progress: Progress, report: &'a mut dyn FnMut(Progress)) -> Self {
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
