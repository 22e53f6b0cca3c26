//! The test harness: an in-process server and clients that speak to it.

#![allow(dead_code)]

pub mod browser;
pub mod frames;
pub mod garage;
pub mod logs;
pub mod process;
pub mod web;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use miniftp::connection::Connection;
use miniftp::operation::Operation;
use miniftp::{ServerConfig, Storage};
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// A server serving a temporary directory on 127.0.0.1, port 0. Dropping it
/// shuts the server down.
pub struct TestServer {
    pub address: SocketAddr,
    pub root: TempDir,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server with the default configuration.
    pub async fn start() -> TestServer {
        TestServer::start_with(ServerConfig::default()).await
    }

    /// Starts a server with `config`.
    pub async fn start_with(config: ServerConfig) -> TestServer {
        let root = TempDir::new().expect("temporary root");
        TestServer::serve(root, config).await
    }

    /// Starts a server on an existing root (e.g. after a restart).
    pub async fn serve(root: TempDir, config: ServerConfig) -> TestServer {
        let storage = Storage::open(root.path()).expect("open storage");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(miniftp::server::run(
            listener,
            storage,
            config,
            shutdown.clone(),
        ));
        TestServer {
            address,
            root,
            shutdown,
            task: Some(task),
        }
    }

    /// Starts a server on `storage` (a bucket, say); its `root` is an
    /// unused temporary directory.
    pub async fn serve_storage(storage: Storage, config: ServerConfig) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(miniftp::server::run(
            listener,
            storage,
            config,
            shutdown.clone(),
        ));
        TestServer {
            address,
            root: TempDir::new().expect("temporary root"),
            shutdown,
            task: Some(task),
        }
    }

    /// The real path of a virtual path (relative to the root).
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.path().join(relative.trim_start_matches('/'))
    }

    /// Writes a file under the root directly.
    pub fn write(&self, relative: &str, contents: &[u8]) {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }

    /// Reads a file under the root directly.
    pub fn read(&self, relative: &str) -> Vec<u8> {
        std::fs::read(self.path(relative)).unwrap()
    }

    /// Whether a path exists under the root (not following a final link).
    pub fn exists(&self, relative: &str) -> bool {
        self.path(relative).symlink_metadata().is_ok()
    }

    /// Names visible in the root, excluding the server's private directory.
    pub fn visible_entries(&self, relative: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path(relative))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name != ".miniftp")
            .collect();
        names.sort();
        names
    }

    /// Creates a symbolic link at `link` (relative to the root) pointing to `target`.
    pub fn symlink(&self, target: impl AsRef<Path>, link: &str) {
        std::os::unix::fs::symlink(target, self.path(link)).unwrap();
    }

    /// Files in the server's private upload area (should be empty at rest).
    pub fn pending_uploads(&self) -> usize {
        std::fs::read_dir(self.root.path().join(".miniftp/uploads"))
            .map(|entries| entries.count())
            .unwrap_or(0)
    }

    /// Stops the server and waits until it has finished.
    pub async fn stop(mut self) -> TempDir {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
        let root = TempDir::new().unwrap();
        std::mem::replace(&mut self.root, root)
    }

    /// The shutdown token, to cancel by hand.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A classic-protocol client on our own `Connection`, reading by tokens
/// (not by packets). Used to drive the server command by command.
pub struct RawClient {
    pub connection: Connection<TcpStream>,
    pub welcome: String,
}

impl RawClient {
    /// Connects and reads the token and the welcome.
    pub async fn connect(address: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(address).await.expect("connect");
        let mut connection = Connection::accept_token(stream).await.expect("token");
        let welcome = connection
            .read_message(1 << 20)
            .await
            .unwrap()
            .expect("welcome");
        RawClient {
            connection,
            welcome: String::from_utf8(welcome.to_vec()).unwrap(),
        }
    }

    /// Sends a command message.
    pub async fn send(&mut self, command: &str) {
        self.connection
            .write_message(command.as_bytes())
            .await
            .expect("send");
    }

    /// Reads one message as text.
    pub async fn receive(&mut self) -> String {
        let message = self.receive_bytes().await;
        String::from_utf8(message.to_vec()).unwrap()
    }

    /// Reads one message.
    pub async fn receive_bytes(&mut self) -> Bytes {
        self.connection
            .read_message(usize::MAX)
            .await
            .expect("read")
            .expect("a message, not EOF")
    }

    /// Sends a command without payload and returns its status.
    pub async fn command(&mut self, command: &str) -> String {
        self.send(command).await;
        self.receive().await
    }

    /// Uploads `data` to `path`; returns the status.
    pub async fn upload(&mut self, path: &str, data: &[u8]) -> String {
        let command = classic_command(Operation::Upload {
            path: path.into(),
            size: None,
            resume: false,
        });
        self.send(&command).await;
        self.connection.write_message(data).await.expect("payload");
        self.receive().await
    }

    /// Downloads `path`; returns the payload and the status.
    pub async fn download(&mut self, path: &str) -> (Bytes, String) {
        let command = classic_command(Operation::Download {
            path: path.into(),
            offset: 0,
        });
        self.send(&command).await;
        let payload = self.receive_bytes().await;
        (payload, self.receive().await)
    }

    /// Sends a command message of arbitrary bytes (not necessarily UTF-8).
    pub async fn send_bytes(&mut self, command: &[u8]) {
        self.connection.write_message(command).await.expect("send");
    }

    /// Writes raw bytes, with no token added: several messages, or part of one.
    pub async fn write_raw(&mut self, bytes: &[u8]) {
        self.connection.write_raw(bytes).await.expect("write");
    }

    /// This connection's token.
    pub fn token(&self) -> miniftp::protocol::Token {
        *self.connection.token()
    }

    /// `bytes` followed by this connection's token.
    pub fn framed(&self, bytes: &[u8]) -> Vec<u8> {
        let mut message = bytes.to_vec();
        message.extend_from_slice(self.token().as_bytes());
        message
    }

    /// Reads the messages that remain until the server closes the
    /// connection (clean EOF or reset); fails if it stays open for
    /// [`HANG_GUARD`].
    pub async fn read_until_closed(&mut self) -> Vec<String> {
        self.read_until_closed_within(HANG_GUARD).await
    }

    /// [`RawClient::read_until_closed`] with another guard (paused-time
    /// tests need one longer than the timeout they wait for).
    pub async fn read_until_closed_within(&mut self, guard: std::time::Duration) -> Vec<String> {
        let mut messages = Vec::new();
        let read_all = async {
            while let Ok(Some(message)) = self.connection.read_message(usize::MAX).await {
                messages.push(String::from_utf8_lossy(&message).into_owned());
            }
        };
        tokio::time::timeout(guard, read_all)
            .await
            .expect("the server should close the connection");
        messages
    }

    /// `info PATH`; returns the payload and the status.
    pub async fn info(&mut self, path: &str) -> (String, String) {
        let command = classic_command(Operation::Size { path: path.into() });
        self.send(&command).await;
        let payload = self.receive().await;
        (payload, self.receive().await)
    }
}

/// How long a test waits for something that must happen before calling it
/// a hang. Not a measure of speed: only a guard so that a bug fails a test
/// instead of blocking the suite.
pub const HANG_GUARD: std::time::Duration = std::time::Duration::from_secs(60);

/// Polls `condition` until it holds, failing after [`HANG_GUARD`]. For
/// states that only the disk shows (a temporary upload appearing).
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

/// Deterministic pseudo-random bytes (xorshift), for payloads of any size.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// SHA-256 of some bytes, hex.
pub fn sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> String {
    sha256(&std::fs::read(path).unwrap())
}

/// Every file under `root` (private directory aside) with its contents.
pub fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, directory: &Path, into: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(directory).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let relative = path.strip_prefix(base).unwrap().display().to_string();
            if relative == ".miniftp" {
                continue;
            }
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                into.insert(format!("{relative}/"), Vec::new());
                walk(base, &path, into);
            } else if kind.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                into.insert(relative, target.display().to_string().into_bytes());
            } else if kind.is_file() {
                into.insert(relative, std::fs::read(&path).unwrap());
            } else {
                into.insert(relative, b"(not a regular file)".to_vec());
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(root, root, &mut files);
    files
}

impl TestServer {
    /// Starts a server on an existing root at `address`, the address of a
    /// stopped one: a restart, as its clients see it.
    pub async fn serve_at(root: TempDir, config: ServerConfig, address: SocketAddr) -> TestServer {
        let storage = Storage::open(root.path()).expect("open storage");
        let listener = TcpListener::bind(address).await.expect("bind");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(miniftp::server::run(
            listener,
            storage,
            config,
            shutdown.clone(),
        ));
        TestServer {
            address,
            root,
            shutdown,
            task: Some(task),
        }
    }
}

/// The classic command message for `operation`.
pub fn classic_command(operation: Operation) -> String {
    miniftp::protocol::classic::encode(&operation).expect("a classic operation")
}
