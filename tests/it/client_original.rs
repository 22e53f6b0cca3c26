//! The `Client` against a stand-in for the original Mini-FTP server: it
//! pauses after each command (briefly here, about 1 s in the original),
//! reports real absolute paths, prints an empty `-- ` line for an empty
//! group in its welcome, and answers a failing command with silence or a
//! closed connection.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use miniftp::client::{Client, ClientConfig, ClientError, TransferOptions};
use miniftp::connection::Connection;
use miniftp::protocol::Token;
use tempfile::TempDir;
use tokio::net::{TcpListener, TcpStream};

use crate::support::{pseudo_random_bytes, sha256, sha256_file};

/// How long the stand-in pauses after each command and between messages.
const PAUSE: Duration = Duration::from_millis(20);

/// A server that behaves like the original, on port 0 in a temporary
/// directory. Dropping it stops it.
pub struct OriginalServer {
    pub address: SocketAddr,
    pub root: TempDir,
    /// How many times a client asked to switch protocols.
    pub upgrade_requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

/// How a variant of the stand-in differs from the original (to test that
/// our client falls back to classic whatever a classic server does).
#[derive(Debug, Clone, Copy)]
pub struct Variant {
    /// Name directories as `/...` below the root, as our server does (so
    /// that our client asks it to switch protocols).
    pub virtual_paths: bool,
    /// What it does with an unknown command.
    pub unknown: Unknown,
}

/// Answers to an unknown command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unknown {
    /// None at all (the original).
    Silence,
    /// An `error:` status.
    Error,
    /// The connection is closed.
    Close,
}

impl Variant {
    /// The original's behaviour.
    pub const ORIGINAL: Variant = Variant {
        virtual_paths: false,
        unknown: Unknown::Silence,
    };
}

impl OriginalServer {
    pub async fn start() -> OriginalServer {
        OriginalServer::start_variant(Variant::ORIGINAL).await
    }

    pub async fn start_variant(variant: Variant) -> OriginalServer {
        let root = TempDir::new().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let real_root = root.path().canonicalize().unwrap();
        let upgrade_requests = Arc::new(AtomicUsize::new(0));
        let counter = upgrade_requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(session(stream, real_root.clone(), variant, counter));
            }
        });
        OriginalServer {
            address,
            root,
            upgrade_requests,
            task,
        }
    }

    /// The real path of the shared root, as the original reports it.
    fn real_root(&self) -> PathBuf {
        self.root.path().canonicalize().unwrap()
    }

    pub async fn connect(&self) -> Client {
        let config = ClientConfig {
            timeout: Duration::from_millis(500),
            ..ClientConfig::default()
        };
        Client::connect(&self.address.to_string(), config)
            .await
            .expect("connect")
    }
}

impl Drop for OriginalServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One client, as the original served it: the token, a pause, the welcome,
/// then for each command a pause and its replies; a failing command gets
/// no reply at all, except `rm`, which drops the connection.
async fn session(stream: TcpStream, root: PathBuf, variant: Variant, upgrades: Arc<AtomicUsize>) {
    let token = Token::generate();
    let mut connection = Connection::new(stream, token);
    let mut cwd = root.clone();
    let shown = |path: &Path| match variant.virtual_paths {
        true => format!("/{}", path.strip_prefix(&root).unwrap().display()),
        false => path.to_string_lossy().into_owned(),
    };
    if connection.write_token().await.is_err() {
        return;
    }
    tokio::time::sleep(PAUSE).await;
    if connection
        .write_message(welcome(&root, &shown(&root)).as_bytes())
        .await
        .is_err()
    {
        return;
    }
    while let Ok(Some(command)) = connection.read_message(1 << 16).await {
        tokio::time::sleep(PAUSE).await;
        let command = String::from_utf8_lossy(&command).into_owned();
        let words: Vec<&str> = command.split_whitespace().collect();
        let target = |name: &str| match name.strip_prefix('/') {
            Some(below) if variant.virtual_paths => root.join(below),
            _ => cwd.join(name),
        };
        let replies: Option<Vec<Vec<u8>>> = match words[..] {
            ["cd", name] => target(name)
                .canonicalize()
                .ok()
                .filter(|p| p.is_dir())
                .map(|path| {
                    cwd = path;
                    vec![]
                }),
            ["mkdir", name] => std::fs::create_dir(target(name)).ok().map(|_| vec![]),
            ["rm", name] => {
                let path = target(name);
                let removed = match path.is_dir() {
                    true => std::fs::remove_dir(&path),
                    false => std::fs::remove_file(&path),
                };
                match removed {
                    Ok(()) => Some(vec![]),
                    Err(_) => return,
                }
            }
            ["ul", name] => {
                let mut file = tokio::fs::File::create(target(name)).await.unwrap();
                connection.read_payload(&mut file, None).await.unwrap();
                Some(vec![])
            }
            ["dl", name] => std::fs::read(target(name)).ok().map(|data| vec![data]),
            ["info", name] => std::fs::metadata(target(name))
                .ok()
                .filter(|m| m.is_file())
                .map(|m| vec![m.len().to_string().into_bytes()]),
            ["mv", from, to] => {
                let mut destination = target(to);
                if destination.is_dir() {
                    destination.push(from);
                }
                std::fs::rename(target(from), destination)
                    .ok()
                    .map(|_| vec![])
            }
            _ => {
                if command.starts_with("x-miniftp-extended") {
                    upgrades.fetch_add(1, Ordering::SeqCst);
                }
                match variant.unknown {
                    Unknown::Silence => None,
                    Unknown::Close => return,
                    Unknown::Error => Some(vec![b"error: unknown command".to_vec()]),
                }
            }
        };
        let Some(mut replies) = replies else {
            continue;
        };
        if replies
            .last()
            .is_some_and(|reply| reply.starts_with(b"error:"))
        {
            if connection.write_message(&replies[0]).await.is_err() {
                return;
            }
            continue;
        }
        replies.push(shown(&cwd).into_bytes());
        for reply in replies {
            if connection.write_message(&reply).await.is_err() {
                return;
            }
            tokio::time::sleep(PAUSE).await;
        }
    }
}

/// The original's welcome: a real path, directories then files, and an
/// empty `-- ` line for an empty group.
fn welcome(root: &Path, shown: &str) -> String {
    let mut directories = Vec::new();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        match entry.file_type().unwrap().is_dir() {
            true => directories.push(name),
            false => files.push(name),
        }
    }
    let mut text = format!("Current Directory: {shown}:\n|");
    for mut group in [directories, files] {
        group.sort();
        if group.is_empty() {
            group.push(String::new());
        }
        for name in group {
            text.push_str("\n-- ");
            text.push_str(&name);
        }
    }
    text
}

#[tokio::test]
async fn the_readme_session_works_against_the_original() {
    let server = OriginalServer::start().await;
    std::fs::write(server.root.path().join("notes.txt"), b"n").unwrap();
    let local = TempDir::new().unwrap();
    let data = pseudo_random_bytes(300_000, 7);
    let source = local.path().join("jellyfish.jpg");
    std::fs::write(&source, &data).unwrap();
    let root = server.real_root();

    let mut client = server.connect().await;
    assert_eq!(client.directory(), root.to_str().unwrap());
    assert_eq!(client.welcome().entries, ["notes.txt"]);
    // A real path in the welcome: the client never asks to switch.
    assert!(!client.is_extended());
    assert_eq!(server.upgrade_requests.load(Ordering::SeqCst), 0);

    client.make_directory("test_dir").await.unwrap();
    client.change_directory("test_dir").await.unwrap();
    let inside = root.join("test_dir");
    assert_eq!(client.directory(), inside.to_str().unwrap());
    client
        .upload_file(&source, "jellyfish.jpg", TransferOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(client.size("jellyfish.jpg").await.unwrap(), 300_000);
    let target = local.path().join("back.jpg");
    client
        .download_file("jellyfish.jpg", &target, TransferOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(sha256_file(&target), sha256(&data));
    client.rename("jellyfish.jpg", "renamed.jpg").await.unwrap();
    assert!(inside.join("renamed.jpg").is_file());
    client.remove("renamed.jpg").await.unwrap();
    client.change_directory("..").await.unwrap();
    client.remove("test_dir").await.unwrap();
    assert_eq!(client.directory(), root.to_str().unwrap());
    assert!(!inside.exists());
    client.close().await;
}

#[tokio::test]
async fn silence_ends_with_a_timeout_and_reconnect_restores_the_directory() {
    let server = OriginalServer::start().await;
    std::fs::create_dir(server.root.path().join("sub")).unwrap();
    let local = TempDir::new().unwrap();
    let mut client = server.connect().await;
    client.change_directory("sub").await.unwrap();

    let error = client.change_directory("missing").await.unwrap_err();
    assert!(matches!(error, ClientError::TimedOut(_)), "{error:?}");
    assert!(error.to_string().contains("sent nothing"), "{error}");
    assert!(!client.is_connected());

    client.reconnect().await.unwrap();
    let sub = server.real_root().join("sub");
    assert_eq!(client.directory(), sub.to_str().unwrap());

    let target = local.path().join("missing");
    let error = client
        .download_file("missing", &target, TransferOptions::default(), |_| {})
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::TimedOut(_)), "{error:?}");
    assert_eq!(std::fs::read_dir(local.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn a_dropped_connection_is_reported_and_recovered() {
    let server = OriginalServer::start().await;
    let mut client = server.connect().await;
    let error = client.remove("missing").await.unwrap_err();
    assert!(error.is_connection_lost(), "{error:?}");
    assert!(!matches!(error, ClientError::TimedOut(_)), "{error:?}");
    client.reconnect().await.unwrap();
    client.make_directory("after").await.unwrap();
    assert!(server.root.path().join("after").is_dir());
}

#[tokio::test]
async fn an_empty_welcome_lists_nothing() {
    let server = OriginalServer::start().await;
    let client = server.connect().await;
    assert_eq!(client.welcome().entries, Vec::<String>::new());
    std::fs::create_dir(server.root.path().join("only a dir")).unwrap();
    let client = server.connect().await;
    assert_eq!(client.welcome().entries, ["only a dir"]);
}

#[tokio::test]
async fn a_file_holding_the_token_cut_short_by_the_original_is_not_kept() {
    let server = OriginalServer::start().await;
    let mut client = server.connect().await;
    let token = client.forbidden_token().expect("a classic connection");
    let mut data = pseudo_random_bytes(50_000, 8);
    data[20_000..20_010].copy_from_slice(token.as_bytes());
    std::fs::write(server.root.path().join("tokened.bin"), &data).unwrap();
    let local = TempDir::new().unwrap();
    let target = local.path().join("tokened.bin");
    let error = client
        .download_file("tokened.bin", &target, TransferOptions::default(), |_| {})
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Protocol(_)), "{error}");
    assert!(
        error.to_string().contains("received 20000 of 50000 bytes"),
        "{error}"
    );
    assert_eq!(
        std::fs::read_dir(local.path()).unwrap().count(),
        0,
        "nothing kept"
    );
    // The connection was out of step: it is gone, and a new one works.
    assert!(!client.is_connected());
    client.reconnect().await.unwrap();
    assert_eq!(client.size("tokened.bin").await.unwrap(), 50_000);
}
