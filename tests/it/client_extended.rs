//! The `Client` on the extended protocol, against the in-process server:
//! negotiation and fallback, every operation, files holding the token,
//! corruption caught by the digests (in a test proxy that flips a byte),
//! resume after the connection is cut at several points, pipelined
//! recursive transfers of awkward trees, and the shell's new commands
//! through the real binary.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use miniftp::client::{
    Client, ClientConfig, ClientError, Direction, Entry, ErrorCode, Progress, Protocol,
    TransferOptions,
};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::client_original::{OriginalServer, Unknown, Variant};
use crate::client_script::{miniftp, run, stderr, stdout};
use crate::support::{TestServer, pseudo_random_bytes};

const PLAIN: TransferOptions = TransferOptions { resume: false };
const RESUME: TransferOptions = TransferOptions { resume: true };

async fn connect(address: SocketAddr) -> Client {
    connect_with(address, Protocol::Auto).await
}

async fn connect_with(address: SocketAddr, protocol: Protocol) -> Client {
    let config = ClientConfig {
        protocol,
        timeout: Duration::from_secs(10),
        ..ClientConfig::default()
    };
    Client::connect(&address.to_string(), config)
        .await
        .expect("connect")
}

fn code(error: &ClientError) -> ErrorCode {
    error
        .code()
        .unwrap_or_else(|| panic!("expected a refusal with a code, got {error:?}"))
}

/// Names in a local directory, sorted.
fn local_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every file and directory below `root`, as sorted relative paths with
/// their contents (`None` for a directory).
fn tree(root: &Path) -> Vec<(String, Option<Vec<u8>>)> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).unwrap() {
            let path = entry.unwrap().path();
            let relative = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if relative == ".miniftp" {
                continue;
            }
            if path.is_dir() {
                found.push((relative, None));
                pending.push(path);
            } else {
                found.push((relative, Some(std::fs::read(&path).unwrap())));
            }
        }
    }
    found.sort();
    found
}

// ---------------------------------------------------------------------------
// A proxy that does harm on purpose.

/// What the proxy does to one connection.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Forward everything.
    None,
    /// Forward this many bytes from the client, then drop the connection.
    CutToServer(u64),
    /// Forward this many bytes from the server, then drop the connection.
    CutToClient(u64),
    /// Flip a bit of the byte at this offset of what the server sends.
    FlipToClient(u64),
    /// Flip a bit of the byte at this offset of what the client sends.
    FlipToServer(u64),
}

/// A TCP proxy to a server; connection `i` suffers `faults[i]` (later
/// ones none). After a cut it closes the client's side at once, and
/// tells when the server has seen the end too.
struct Proxy {
    address: SocketAddr,
    /// Each connection's first ten bytes from the server: its token.
    tokens: Arc<Mutex<Vec<Vec<u8>>>>,
    /// Notified when the server closed a connection that was cut.
    server_closed: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: SocketAddr, faults: Vec<Fault>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let tokens = Arc::new(Mutex::new(Vec::new()));
        let server_closed = Arc::new(Notify::new());
        let (tokens_task, closed_task) = (tokens.clone(), server_closed.clone());
        let task = tokio::spawn(async move {
            let mut index = 0;
            while let Ok((client, _)) = listener.accept().await {
                let fault = faults.get(index).copied().unwrap_or(Fault::None);
                index += 1;
                let server = TcpStream::connect(upstream).await.unwrap();
                tokio::spawn(relay(
                    client,
                    server,
                    fault,
                    tokens_task.clone(),
                    closed_task.clone(),
                ));
            }
        });
        Proxy {
            address,
            tokens,
            server_closed,
            task,
        }
    }

    fn token(&self, connection: usize) -> Vec<u8> {
        self.tokens.lock().unwrap()[connection].clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(
    client: TcpStream,
    server: TcpStream,
    fault: Fault,
    tokens: Arc<Mutex<Vec<Vec<u8>>>>,
    server_closed: Arc<Notify>,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let cut = CancellationToken::new();
    let (up_cut, up_flip, down_cut, down_flip) = match fault {
        Fault::None => (None, None, None, None),
        Fault::CutToServer(at) => (Some(at), None, None, None),
        Fault::FlipToServer(at) => (None, Some(at), None, None),
        Fault::CutToClient(at) => (None, None, Some(at), None),
        Fault::FlipToClient(at) => (None, None, None, Some(at)),
    };
    let up = pump(
        &mut client_read,
        &mut server_write,
        up_cut,
        up_flip,
        &cut,
        None,
    );
    let down = pump(
        &mut server_read,
        &mut client_write,
        down_cut,
        down_flip,
        &cut,
        Some(&tokens),
    );
    tokio::join!(up, down);
    if cut.is_cancelled() {
        drop((client_read, client_write));
        let _ = server_write.shutdown().await;
        let mut sink = vec![0u8; 64 << 10];
        while matches!(server_read.read(&mut sink).await, Ok(n) if n > 0) {}
        server_closed.notify_one();
    }
}

/// Copies `from` to `to` until EOF, or until `cut` bytes (then cancels
/// the whole relay), flipping the byte at `flip`.
async fn pump(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    cut: Option<u64>,
    flip: Option<u64>,
    cancel: &CancellationToken,
    tokens: Option<&Mutex<Vec<Vec<u8>>>>,
) {
    let mut copied = 0u64;
    let mut buffer = vec![0u8; 64 << 10];
    loop {
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            () = cancel.cancelled() => return,
        };
        let mut read = match read {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(read) => read,
        };
        // The token is the first ten bytes the server sends.
        if let Some(tokens) = tokens
            && copied == 0
        {
            tokens.lock().unwrap().push(buffer[..read.min(10)].to_vec());
        }
        if let Some(at) = flip
            && (copied..copied + read as u64).contains(&at)
        {
            buffer[(at - copied) as usize] ^= 0x01;
        }
        let stop = cut.is_some_and(|at| copied + read as u64 >= at);
        if let Some(at) = cut {
            read = read.min((at - copied) as usize);
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
        copied += read as u64;
        if stop {
            cancel.cancel();
            return;
        }
    }
}

/// Bytes the client sends before its first frame: the upgrade request
/// and its token.
const UPGRADE_LEN: u64 = 30;

/// Bytes the server sends before its first frame, for a root holding
/// only `names`: token, welcome, token, the upgrade status, token.
fn server_prefix(names: &[&str]) -> u64 {
    let welcome: usize =
        "Current Directory: /:\n|".len() + names.iter().map(|name| 4 + name.len()).sum::<usize>();
    (10 + welcome + 10 + "ok x-miniftp-extended 1".len() + 10) as u64
}

// ---------------------------------------------------------------------------
// Negotiation and fallback.

#[tokio::test]
async fn our_server_switches_unless_the_client_is_told_to_stay_classic() {
    let server = TestServer::start().await;
    let client = connect(server.address).await;
    assert!(client.is_extended());
    assert_eq!(client.forbidden_token(), None);
    assert_eq!(client.directory(), "/");

    let mut classic = connect_with(server.address, Protocol::Classic).await;
    assert!(!classic.is_extended());
    assert!(classic.forbidden_token().is_some());
    classic.make_directory("still classic").await.unwrap();
    assert!(server.exists("still classic"));
}

#[tokio::test]
async fn any_refusal_of_the_switch_falls_back_to_classic_silently() {
    for unknown in [Unknown::Error, Unknown::Silence, Unknown::Close] {
        let server = OriginalServer::start_variant(Variant {
            virtual_paths: true,
            unknown,
        })
        .await;
        let local = TempDir::new().unwrap();
        let source = local.path().join("a.bin");
        std::fs::write(&source, pseudo_random_bytes(50_000, 1)).unwrap();

        let mut client = server.connect().await;
        assert!(!client.is_extended(), "{unknown:?}");
        assert_eq!(client.directory(), "/", "{unknown:?}");
        assert_eq!(server.upgrade_requests.load(Ordering::SeqCst), 1);
        client.make_directory("d").await.unwrap();
        client.change_directory("d").await.unwrap();
        assert_eq!(client.directory(), "/d");
        client
            .upload_file(&source, "a.bin", RESUME, |_| {})
            .await
            .unwrap();
        let target = local.path().join("back.bin");
        client
            .download_file("a.bin", &target, RESUME, |_| {})
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(&target).unwrap(),
            std::fs::read(&source).unwrap()
        );
        let error = client.list(".").await.unwrap_err();
        assert!(
            matches!(error, ClientError::NeedsExtended { .. }),
            "{error:?}"
        );

        // A reconnection does not ask again.
        client.reconnect().await.unwrap();
        assert_eq!(client.directory(), "/d");
        assert_eq!(server.upgrade_requests.load(Ordering::SeqCst), 1);
    }
}

#[tokio::test]
async fn extended_only_operations_are_refused_on_a_classic_connection() {
    let server = TestServer::start().await;
    server.write("dir/f", b"f");
    let local = TempDir::new().unwrap();
    let mut client = connect_with(server.address, Protocol::Classic).await;
    let needs = |result: Result<(), ClientError>, name: &str| match result {
        Err(ClientError::NeedsExtended { operation }) => assert_eq!(operation, name),
        other => panic!("{name}: {other:?}"),
    };
    needs(client.list(".").await.map(drop), "ls");
    needs(client.stat("dir").await.map(drop), "stat");
    needs(client.stat_many(&["dir".into()]).await.map(drop), "stat");
    needs(client.make_directories("a/b").await, "mkdir -p");
    needs(client.remove_tree("dir").await, "rm -r");
    needs(
        client
            .upload_tree(local.path(), "up", |_| {})
            .await
            .map(drop),
        "ul -r",
    );
    needs(
        client
            .download_tree("dir", local.path(), |_| {})
            .await
            .map(drop),
        "dl -r",
    );
    let error = client.remove_tree("dir").await.unwrap_err();
    assert!(
        error.to_string().contains("needs the extended protocol"),
        "{error}"
    );
    assert!(client.is_connected());
    assert!(server.exists("dir/f"));
}

// ---------------------------------------------------------------------------
// Every operation.

#[tokio::test]
async fn every_operation_on_the_extended_protocol() {
    let server = TestServer::start().await;
    server.write("b.txt", b"hello");
    let mut client = connect(server.address).await;

    client.make_directories("x/y/z").await.unwrap();
    client.make_directories("x/y/z").await.unwrap();
    assert_eq!(
        code(&client.make_directory("x").await.unwrap_err()),
        ErrorCode::AlreadyExists
    );
    client.make_directory("x/new").await.unwrap();
    client.change_directory("x/y").await.unwrap();
    assert_eq!(client.directory(), "/x/y");
    let missing = client.change_directory("nowhere").await.unwrap_err();
    assert_eq!(code(&missing), ErrorCode::NotFound);
    assert!(missing.to_string().contains("nowhere"), "{missing}");
    assert_eq!(client.directory(), "/x/y");

    let listing = client.list("/").await.unwrap();
    let names: Vec<_> = listing
        .iter()
        .map(|entry| (entry.name.as_str(), entry.is_directory(), entry.size))
        .collect();
    assert_eq!(names, [("x", true, 0), ("b.txt", false, 5)]);
    assert!(listing[1].modified.is_some());
    assert_eq!(client.list("z").await.unwrap(), Vec::<Entry>::new());
    assert_eq!(
        code(&client.list("/b.txt").await.unwrap_err()),
        ErrorCode::NotADirectory
    );

    let entry = client.stat("/b.txt").await.unwrap();
    assert_eq!(
        (entry.name.as_str(), entry.size, entry.is_directory()),
        ("b.txt", 5, false)
    );
    assert!(client.stat("z").await.unwrap().is_directory());
    assert_eq!(
        code(&client.stat("nope").await.unwrap_err()),
        ErrorCode::NotFound
    );
    assert_eq!(client.size("/b.txt").await.unwrap(), 5);
    assert_eq!(
        code(&client.size("z").await.unwrap_err()),
        ErrorCode::IsADirectory
    );

    let data = pseudo_random_bytes(300_000, 2);
    let sent = client
        .upload(&data[..], data.len() as u64, "up 📷.bin", |_| {})
        .await
        .unwrap();
    assert_eq!(sent, 300_000);
    assert!(server.read("x/y/up 📷.bin") == data);
    let mut back = Vec::new();
    let received = client
        .download("up 📷.bin", &mut back, |_| {})
        .await
        .unwrap();
    assert_eq!(received, 300_000);
    assert!(back == data);

    client.rename("up 📷.bin", "/x").await.unwrap();
    assert!(server.exists("x/up 📷.bin"));
    assert_eq!(
        code(&client.rename("/x/up 📷.bin", "/b.txt").await.unwrap_err()),
        ErrorCode::AlreadyExists
    );
    client.remove("/x/up 📷.bin").await.unwrap();
    assert_eq!(
        code(&client.remove("/x").await.unwrap_err()),
        ErrorCode::NotEmpty
    );
    client.change_directory("/").await.unwrap();
    client.remove_tree("x").await.unwrap();
    assert_eq!(server.visible_entries("/"), ["b.txt"]);
    assert_eq!(
        code(&client.remove_tree("/").await.unwrap_err()),
        ErrorCode::PermissionDenied
    );
    assert_eq!(
        code(&client.remove_tree("x").await.unwrap_err()),
        ErrorCode::NotFound
    );
    assert!(client.is_connected());
    client.close().await;
}

#[tokio::test]
async fn files_round_trip_with_progress_and_refusals_keep_the_connection() {
    let server = TestServer::start().await;
    server.write("dir/inside", b"x");
    let local = TempDir::new().unwrap();
    let mut client = connect(server.address).await;
    for (index, size) in [0usize, 1, 65_536, 65_537, 3 << 20].into_iter().enumerate() {
        let data = pseudo_random_bytes(size, index as u64);
        let source = local.path().join(format!("f{index}"));
        std::fs::write(&source, &data).unwrap();
        let mut reports: Vec<Progress> = Vec::new();
        let sent = client
            .upload_file(&source, &format!("f{index}"), PLAIN, |p| reports.push(p))
            .await
            .unwrap();
        assert_eq!(sent, size as u64);
        assert!(server.read(&format!("f{index}")) == data, "{size}");
        assert!(reports.iter().all(|p| p.total == Some(size as u64)));
        assert!(reports.windows(2).all(|w| w[0].done <= w[1].done));
        assert_eq!(reports.last().map_or(0, |p| p.done), size as u64);

        let target = local.path().join(format!("back{index}"));
        let mut reports: Vec<Progress> = Vec::new();
        let received = client
            .download_file(&format!("f{index}"), &target, RESUME, |p| reports.push(p))
            .await
            .unwrap();
        assert_eq!(received, size as u64);
        assert!(std::fs::read(&target).unwrap() == data, "{size}");
        assert_eq!(reports.last().unwrap().done, size as u64);
        assert!(reports.iter().all(|p| p.total == Some(size as u64)));
    }

    // A refused upload (onto a directory) and download keep the stream in
    // step and leave nothing behind.
    let source = local.path().join("f4");
    let refused = client
        .upload_file(&source, "dir", PLAIN, |_| {})
        .await
        .unwrap_err();
    assert_eq!(code(&refused), ErrorCode::IsADirectory);
    let refused = client
        .upload_file(&source, "dir", RESUME, |_| {})
        .await
        .unwrap_err();
    assert_eq!(code(&refused), ErrorCode::IsADirectory);
    let target = local.path().join("missing");
    let refused = client
        .download_file("missing", &target, RESUME, |_| {})
        .await
        .unwrap_err();
    assert_eq!(code(&refused), ErrorCode::NotFound);
    assert!(
        !local_entries(local.path())
            .iter()
            .any(|name| name.contains("missing"))
    );
    assert_eq!(server.pending_uploads(), 0);
    client.make_directory("still in step").await.unwrap();
}

#[tokio::test]
async fn a_source_that_ends_early_stores_nothing_and_the_connection_goes_on() {
    let server = TestServer::start().await;
    let mut client = connect(server.address).await;
    for (length, promised) in [(10usize, 20u64), (100_000, 200_000)] {
        let data = pseudo_random_bytes(length, 3);
        let error = client
            .upload(&data[..], promised, "short.bin", |_| {})
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                ClientError::Source {
                    connection_dropped: false,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.to_string().contains("nothing was stored"), "{error}");
        assert!(client.is_connected());
        assert!(!server.exists("short.bin"));
    }
    client.make_directory("after").await.unwrap();
}

#[tokio::test]
async fn a_file_holding_the_connections_token_travels_intact() {
    let server = TestServer::start().await;
    let proxy = Proxy::start(server.address, vec![]).await;
    let local = TempDir::new().unwrap();

    let mut client = connect(proxy.address).await;
    // Make sure the proxy has seen the token of this connection.
    client.make_directory("d").await.unwrap();
    let token = proxy.token(0);
    assert_eq!(token.len(), 10);
    let mut data = pseudo_random_bytes(500_000, 4);
    data.splice(250_000..250_000, token.iter().copied());
    data.extend_from_slice(&token);
    let source = local.path().join("tokened.bin");
    std::fs::write(&source, &data).unwrap();
    client
        .upload_file(&source, "tokened.bin", PLAIN, |_| {})
        .await
        .unwrap();
    assert!(server.read("tokened.bin") == data);
    let target = local.path().join("back.bin");
    client
        .download_file("tokened.bin", &target, PLAIN, |_| {})
        .await
        .unwrap();
    assert!(std::fs::read(&target).unwrap() == data);

    // The classic protocol cannot carry a file holding its own token.
    let mut classic = connect_with(proxy.address, Protocol::Classic).await;
    let token = proxy.token(1);
    let mut data = b"before ".to_vec();
    data.extend_from_slice(&token);
    std::fs::write(&source, &data).unwrap();
    let error = classic
        .upload_file(&source, "x", PLAIN, |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(error, ClientError::TokenInFile { .. }),
        "{error:?}"
    );
}

// ---------------------------------------------------------------------------
// Corruption on the way.

#[tokio::test]
async fn a_corrupted_download_is_refused_and_nothing_is_kept() {
    let server = TestServer::start().await;
    let data = pseudo_random_bytes(1 << 20, 5);
    server.write("f.bin", &data);
    let prefix = server_prefix(&["f.bin"]);
    // Sending (29 bytes) and the data frame's header (13) come first.
    let at = prefix + 42 + 123_456;
    let proxy = Proxy::start(
        server.address,
        vec![
            Fault::FlipToClient(at),
            Fault::FlipToClient(at),
            Fault::None,
        ],
    )
    .await;
    let local = TempDir::new().unwrap();
    let target = local.path().join("f.bin");
    std::fs::write(&target, b"old").unwrap();

    for options in [PLAIN, RESUME] {
        let mut client = connect(proxy.address).await;
        let error = client
            .download_file("f.bin", &target, options, |_| {})
            .await
            .unwrap_err();
        assert!(
            matches!(
                &error,
                ClientError::DigestMismatch {
                    direction: Direction::Download,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.to_string().contains("corrupted"), "{error}");
        assert_eq!(error.code(), Some(ErrorCode::DigestMismatch));
        assert_eq!(std::fs::read(&target).unwrap(), b"old", "{options:?}");
        assert_eq!(local_entries(local.path()), ["f.bin"], "{options:?}");
        assert!(client.is_connected());
    }
    // A clean connection brings the right bytes.
    let mut client = connect(proxy.address).await;
    client
        .download_file("f.bin", &target, RESUME, |_| {})
        .await
        .unwrap();
    assert!(std::fs::read(&target).unwrap() == data);
}

#[tokio::test]
async fn a_download_of_several_parts_hashed_by_two_threads_catches_corruption_in_any_part() {
    // 20 MiB: parts of 8 MiB, the even ones hashed by the receiving thread
    // and the odd one by the writing thread.
    let server = TestServer::start().await;
    let data = pseudo_random_bytes(20 << 20, 11);
    server.write("parts.bin", &data);
    let prefix = server_prefix(&["parts.bin"]);
    let odd_part = prefix + 42 + 9_000_000;
    let last_part = prefix + 42 + 19_000_000;
    let proxy = Proxy::start(
        server.address,
        vec![
            Fault::FlipToClient(odd_part),
            Fault::FlipToClient(last_part),
            Fault::None,
        ],
    )
    .await;
    let local = TempDir::new().unwrap();
    let target = local.path().join("parts.bin");
    for corrupted in ["the odd part", "the last part"] {
        let mut client = connect(proxy.address).await;
        let error = client
            .download_file("parts.bin", &target, PLAIN, |_| {})
            .await
            .unwrap_err();
        assert!(
            matches!(&error, ClientError::DigestMismatch { .. }),
            "{corrupted}: {error:?}"
        );
        assert!(local_entries(local.path()).is_empty(), "{corrupted}");
    }
    let mut client = connect(proxy.address).await;
    let size = client
        .download_file("parts.bin", &target, PLAIN, |_| {})
        .await
        .unwrap();
    assert_eq!(size, data.len() as u64);
    assert!(std::fs::read(&target).unwrap() == data);
}

#[tokio::test]
async fn a_large_download_into_memory_is_hashed_whole_and_a_corrupted_one_refused() {
    // Large enough (6 MiB) to be hashed on a thread of its own while it
    // arrives, its chunks recycled.
    let server = TestServer::start().await;
    let data = pseudo_random_bytes(6 << 20, 9);
    server.write("big.bin", &data);
    let prefix = server_prefix(&["big.bin"]);
    let at = prefix + 42 + 5_000_000;
    let proxy = Proxy::start(server.address, vec![Fault::FlipToClient(at), Fault::None]).await;

    let mut client = connect(proxy.address).await;
    let mut received = Vec::new();
    let error = client
        .download("big.bin", &mut received, |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            ClientError::DigestMismatch {
                direction: Direction::Download,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(received.len(), data.len());
    assert!(client.is_connected());

    let mut client = connect(proxy.address).await;
    let mut received = Vec::new();
    let size = client
        .download("big.bin", &mut received, |_| {})
        .await
        .unwrap();
    assert_eq!(size, data.len() as u64);
    assert!(received == data);
    // The connection is in step after it: a second download, then a stat.
    let mut again = Vec::new();
    client
        .download("big.bin", &mut again, |_| {})
        .await
        .unwrap();
    assert!(again == data);
    assert_eq!(client.size("big.bin").await.unwrap(), data.len() as u64);
}

#[tokio::test]
async fn a_corrupted_upload_is_refused_by_the_server_and_nothing_is_stored() {
    let server = TestServer::start().await;
    server.write("f.bin", b"old");
    let data = pseudo_random_bytes(1 << 20, 6);
    let local = TempDir::new().unwrap();
    let source = local.path().join("f.bin");
    std::fs::write(&source, &data).unwrap();
    // Upload frame (13 + 4 + 5 + 9), the data frame's header (13).
    let at = UPGRADE_LEN + 31 + 13 + 500_000;
    let proxy = Proxy::start(server.address, vec![Fault::FlipToServer(at)]).await;

    let mut client = connect(proxy.address).await;
    let error = client
        .upload_file(&source, "f.bin", PLAIN, |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            ClientError::DigestMismatch {
                direction: Direction::Upload,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(server.read("f.bin"), b"old");
    assert_eq!(server.pending_uploads(), 0);
    assert!(client.is_connected());
    client
        .upload_file(&source, "f.bin", PLAIN, |_| {})
        .await
        .unwrap();
    assert!(server.read("f.bin") == data);
}

// ---------------------------------------------------------------------------
// Resume.

#[tokio::test]
async fn an_upload_cut_at_any_point_resumes_to_an_identical_file() {
    let server = TestServer::start().await;
    let size = 3_000_000u64;
    let data = pseudo_random_bytes(size as usize, 7);
    let local = TempDir::new().unwrap();
    let source = local.path().join("big.bin");
    std::fs::write(&source, &data).unwrap();
    // What the client sends: the upgrade, Upload(resume) (13 + 4 + 8 + 9),
    // the data frame's header (13), the data, End (13 + 32).
    let upload = UPGRADE_LEN + 34;
    let data_start = upload + 13;
    let cuts = [
        (UPGRADE_LEN + 5, "inside the upload request"),
        (upload + 6, "inside the data frame's header"),
        (data_start + 1, "after one byte of data"),
        (data_start + 1_500_000, "in the middle of the data"),
        (data_start + size - 1, "before the last byte"),
        (data_start + size + 20, "inside the end frame"),
    ];
    for (index, (cut, point)) in cuts.into_iter().enumerate() {
        let name = &format!("big{index}.bin");
        let proxy = Proxy::start(server.address, vec![Fault::CutToServer(cut)]).await;
        let mut client = connect(proxy.address).await;
        let error = client
            .upload_file(&source, name, RESUME, |_| {})
            .await
            .unwrap_err();
        assert!(error.is_connection_lost(), "{point}: {error:?}");
        proxy.server_closed.notified().await;
        assert!(!server.exists(name), "{point}: nothing visible");

        let mut client = connect(proxy.address).await;
        let mut reports: Vec<Progress> = Vec::new();
        client
            .upload_file(&source, name, RESUME, |p| reports.push(p))
            .await
            .unwrap();
        assert!(server.read(name) == data, "{point}: identical");
        // The first report of bytes moving starts where it resumed.
        let moving = reports
            .iter()
            .find(|report| report.stage == miniftp::client::Stage::Transferring);
        let resumed_from = moving.unwrap().done;
        assert_eq!(resumed_from, moving.unwrap().kept, "{point}");
        let received = cut.saturating_sub(data_start).min(size);
        assert!(
            resumed_from <= received,
            "{point}: {resumed_from} > {received}"
        );
        if received > 1_000_000 {
            assert!(resumed_from > 0, "{point}: resumed");
        }
        assert_eq!(server.pending_uploads(), 0, "{point}");
    }
}

#[tokio::test]
async fn a_download_cut_at_any_point_resumes_to_an_identical_file() {
    let server = TestServer::start().await;
    let size = 2_000_000u64;
    let data = pseudo_random_bytes(size as usize, 8);
    server.write("d.bin", &data);
    // What the server sends: its prefix, Sending (29), the data frame's
    // header (13), the data, End (13 + 32).
    let prefix = server_prefix(&["d.bin"]);
    let data_start = prefix + 42;
    let cuts = [
        (prefix + 5, "inside the sending frame"),
        (prefix + 35, "inside the data frame's header"),
        (data_start + 1, "after one byte of data"),
        (data_start + 777_777, "in the middle of the data"),
        (data_start + size - 1, "before the last byte"),
        (data_start + size + 20, "inside the end frame"),
    ];
    for (cut, point) in cuts {
        let local = TempDir::new().unwrap();
        let target = local.path().join("d.bin");
        let proxy = Proxy::start(server.address, vec![Fault::CutToClient(cut)]).await;
        let mut client = connect(proxy.address).await;
        let error = client
            .download_file("d.bin", &target, RESUME, |_| {})
            .await
            .unwrap_err();
        assert!(error.is_connection_lost(), "{point}: {error:?}");
        assert!(!target.exists(), "{point}: nothing under the name");
        let kept = cut.saturating_sub(data_start).min(size);
        let part = local.path().join(".d.bin.miniftp-part");
        assert_eq!(std::fs::metadata(&part).unwrap().len(), kept, "{point}");

        let mut client = connect(proxy.address).await;
        let mut reports: Vec<Progress> = Vec::new();
        let got = client
            .download_file("d.bin", &target, RESUME, |p| reports.push(p))
            .await
            .unwrap();
        assert_eq!(got, size);
        assert_eq!(reports.first().unwrap().done, kept, "{point}: resumed");
        assert!(
            std::fs::read(&target).unwrap() == data,
            "{point}: identical"
        );
        assert_eq!(local_entries(local.path()), ["d.bin"], "{point}");
    }
}

#[tokio::test]
async fn a_kept_part_of_another_file_is_thrown_away_and_the_download_starts_over() {
    let server = TestServer::start().await;
    let data = pseudo_random_bytes(300_000, 9);
    server.write("f.bin", &data);
    let local = TempDir::new().unwrap();
    let target = local.path().join("f.bin");
    let mut client = connect(server.address).await;
    for stale in [
        pseudo_random_bytes(1000, 10),
        pseudo_random_bytes(400_000, 11),
    ] {
        std::fs::write(local.path().join(".f.bin.miniftp-part"), &stale).unwrap();
        client
            .download_file("f.bin", &target, RESUME, |_| {})
            .await
            .unwrap();
        assert!(std::fs::read(&target).unwrap() == data);
        assert_eq!(local_entries(local.path()), ["f.bin"]);
    }
}

// ---------------------------------------------------------------------------
// Recursive transfers and pipelines.

/// A local tree with awkward names, empty directories, every size class.
fn awkward_tree(root: &Path) {
    let files: &[(&str, usize)] = &[
        ("a file.txt", 10),
        ("ünïcødé 📷.bin", 100_000),
        ("big.bin", 3 << 20),
        ("zero.bin", 0),
        ("quote'n\"back\\slash.txt", 5),
        ("semi;colon #hash.txt", 6),
        ("*star?[x].txt", 7),
        ("-dash.txt", 8),
        ("nested/deeper/x.txt", 9),
        ("nested/deeper/y z.txt", 65_537),
    ];
    for (index, (name, size)) in files.iter().enumerate() {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, pseudo_random_bytes(*size, index as u64)).unwrap();
    }
    for empty in ["empty", "nested/empty too", "nested/deeper/ä"] {
        std::fs::create_dir_all(root.join(empty)).unwrap();
    }
}

#[tokio::test]
async fn a_tree_with_awkward_names_goes_up_and_comes_back_identical() {
    let server = TestServer::start().await;
    let local = TempDir::new().unwrap();
    let source = local.path().join("tree");
    awkward_tree(&source);
    // The extended protocol carries control characters in names too.
    std::fs::write(source.join("new\nline.txt"), b"n").unwrap();
    let mut client = connect(server.address).await;

    let mut reports: Vec<Progress> = Vec::new();
    let summary = client
        .upload_tree(&source, "up/tree", |p| reports.push(p))
        .await
        .unwrap();
    assert_eq!((summary.files, summary.directories), (11, 5), "{summary:?}");
    assert!(summary.failures.is_empty(), "{:?}", summary.failures);
    assert_eq!(reports.last().unwrap().done, summary.bytes);
    assert_eq!(tree(&server.path("up/tree")), tree(&source));

    let back = local.path().join("back");
    let summary = client
        .download_tree("up/tree", &back, |_| {})
        .await
        .unwrap();
    assert_eq!((summary.files, summary.directories), (11, 5), "{summary:?}");
    assert!(summary.failures.is_empty(), "{:?}", summary.failures);
    assert_eq!(tree(&back), tree(&source));
    assert!(client.is_connected());

    // Into an existing tree: files are replaced, nothing else changes.
    std::fs::write(source.join("a file.txt"), b"changed").unwrap();
    client
        .upload_tree(&source, "up/tree", |_| {})
        .await
        .unwrap();
    assert_eq!(server.read("up/tree/a file.txt"), b"changed");
    assert_eq!(tree(&server.path("up/tree")), tree(&source));
}

#[tokio::test]
async fn many_small_files_are_pipelined_and_a_refused_one_does_not_stop_the_rest() {
    let server = TestServer::start().await;
    let local = TempDir::new().unwrap();
    let source = local.path().join("many");
    for index in 0..600 {
        let path = source.join(format!("d{}/f{index}.txt", index % 7));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, pseudo_random_bytes(1 + index * 7, index as u64)).unwrap();
    }
    // On the server, one file's name is taken by a directory.
    server.write("remote/d3/f3.txt/inside", b"x");
    let mut client = connect(server.address).await;
    let summary = client.upload_tree(&source, "remote", |_| {}).await.unwrap();
    assert_eq!(summary.files, 599);
    assert_eq!(summary.failures.len(), 1);
    assert_eq!(summary.failures[0].0, "d3/f3.txt");
    assert_eq!(code(&summary.failures[0].1), ErrorCode::IsADirectory);
    for index in (0..600).filter(|index| *index != 3) {
        let name = format!("remote/d{}/f{index}.txt", index % 7);
        assert_eq!(server.read(&name).len(), 1 + index * 7, "{name}");
    }
    assert_eq!(server.pending_uploads(), 0);

    let paths: Vec<String> = (0..1000)
        .map(|index| match (index % 10, index % 600) {
            (0, _) => format!("missing{index}"),
            (_, file) => format!("remote/d{}/f{file}.txt", file % 7),
        })
        .collect();
    let stats = client.stat_many(&paths).await.unwrap();
    assert_eq!(stats.len(), 1000);
    for (index, result) in stats.into_iter().enumerate() {
        match (index % 10, index % 600 == 3, result) {
            (0, _, Err(error)) => assert_eq!(code(&error), ErrorCode::NotFound),
            (_, true, Ok(entry)) => assert!(entry.is_directory()),
            (_, false, Ok(entry)) => assert_eq!(entry.size, 1 + (index % 600) as u64 * 7),
            (_, _, other) => panic!("{index}: {other:?}"),
        }
    }
    assert!(client.is_connected());
}

#[tokio::test]
async fn a_pipeline_cut_short_reports_a_lost_connection() {
    let server = TestServer::start().await;
    let local = TempDir::new().unwrap();
    for index in 0..50 {
        std::fs::write(
            local.path().join(format!("f{index}")),
            pseudo_random_bytes(50_000, index),
        )
        .unwrap();
    }
    let proxy = Proxy::start(
        server.address,
        vec![Fault::CutToServer(UPGRADE_LEN + 1_000_000)],
    )
    .await;
    let mut client = connect(proxy.address).await;
    let error = client
        .upload_tree(local.path(), "t", |_| {})
        .await
        .unwrap_err();
    assert!(error.is_connection_lost(), "{error:?}");
    assert!(!client.is_connected());
    client.reconnect().await.unwrap();
    let summary = client.upload_tree(local.path(), "t", |_| {}).await.unwrap();
    assert_eq!(summary.files, 50);
}

// ---------------------------------------------------------------------------
// The shell, through the real binary.

async fn script(address: SocketAddr, local: &Path, commands: &str) -> assert_cmd::assert::Assert {
    let mut command = miniftp(local);
    command.args(["connect", &address.to_string(), "-c", commands]);
    run(command).await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shells_new_commands_in_a_script() {
    let server = TestServer::start().await;
    let local = TempDir::new().unwrap();
    awkward_tree(&local.path().join("tree"));
    for name in ["a.jpg", "b.jpg", "c.txt"] {
        std::fs::write(local.path().join(name), name).unwrap();
    }

    let assert = script(
        server.address,
        local.path(),
        "mkdir -p x/y/z; cd x; pwd; ul -r tree; ul *.jpg y/; ul 'tree/*star?[x].txt' .; ls; ls -l y; stat y/a.jpg; stat y",
    )
    .await
    .success();
    let out = stdout(&assert);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "/x", "{out}");
    assert!(
        lines[1].starts_with("uploaded tree -> tree: 10 files, 5 directories, 3.2 MiB"),
        "{out}"
    );
    assert!(
        lines[2].starts_with("uploaded a.jpg -> y/a.jpg: 5 B"),
        "{out}"
    );
    assert!(
        lines[3].starts_with("uploaded b.jpg -> y/b.jpg: 5 B"),
        "{out}"
    );
    assert!(
        lines[4].starts_with("uploaded tree/*star?[x].txt -> ./*star?[x].txt"),
        "{out}"
    );
    assert_eq!(lines[5..8], ["tree/", "y/", "*star?[x].txt"], "{out}");
    assert!(lines[8].starts_with("d            -  "), "{out}");
    assert!(lines[8].ends_with("  z/"), "{out}");
    assert!(lines[9].starts_with("-            5  "), "{out}");
    assert!(lines[9].ends_with("  a.jpg"), "{out}");
    assert!(
        lines[11].starts_with("y/a.jpg: file, 5 bytes, modified "),
        "{out}"
    );
    assert!(lines[11].ends_with(" UTC"), "{out}");
    assert!(lines[12].starts_with("y: directory, modified "), "{out}");
    assert_eq!(lines.len(), 13, "{out}");
    assert_eq!(stderr(&assert), "");
    assert_eq!(
        tree(&server.path("x/tree")),
        tree(&local.path().join("tree"))
    );
    assert!(!server.exists("x/c.txt"));

    // Remote patterns and recursive downloads.
    let assert = script(
        server.address,
        local.path(),
        "lcd tree; dl -r /x/tree copy; dl /x/y/*.jpg; dl '/x/*star?[x].txt' star.txt",
    )
    .await
    .success();
    let out = stdout(&assert);
    assert!(
        out.contains("downloaded /x/tree -> copy: 10 files, 5 directories"),
        "{out}"
    );
    let tree_dir = local.path().join("tree");
    let reference = TempDir::new().unwrap();
    awkward_tree(reference.path());
    assert_eq!(tree(&tree_dir.join("copy")), tree(reference.path()));
    assert_eq!(std::fs::read(tree_dir.join("a.jpg")).unwrap(), b"a.jpg");
    assert_eq!(std::fs::read(tree_dir.join("b.jpg")).unwrap(), b"b.jpg");
    assert_eq!(std::fs::read(tree_dir.join("star.txt")).unwrap().len(), 7);
}

#[tokio::test(flavor = "multi_thread")]
async fn rm_r_in_a_script_without_a_terminal_needs_f() {
    let server = TestServer::start().await;
    server.write("tree/a/b.txt", b"b");
    server.write("file.txt", b"f");
    let local = TempDir::new().unwrap();

    let assert = script(server.address, local.path(), "rm -r tree")
        .await
        .code(1);
    let err = stderr(&assert);
    assert!(err.contains("a script does not ask; use rm -rf"), "{err}");
    assert!(server.exists("tree/a/b.txt"));

    // A file needs no confirmation; -f removes a tree, and a missing path
    // is fine with it.
    script(
        server.address,
        local.path(),
        "rm -r file.txt; rm -rf tree; rm -f nothing; rm -rf nothing",
    )
    .await
    .success();
    assert_eq!(server.visible_entries("/"), Vec::<String>::new());

    let assert = script(server.address, local.path(), "rm nothing")
        .await
        .code(1);
    assert!(stderr(&assert).contains("nothing"), "{}", stderr(&assert));
}

#[tokio::test(flavor = "multi_thread")]
async fn patterns_that_match_nothing_and_classic_connections_say_so() {
    let server = TestServer::start().await;
    server.write("logs/a.txt", b"a");
    let local = TempDir::new().unwrap();

    let assert = script(server.address, local.path(), "ul *.nothing")
        .await
        .code(1);
    assert!(
        stderr(&assert).contains("*.nothing: no match"),
        "{}",
        stderr(&assert)
    );
    let assert = script(server.address, local.path(), "dl logs/*.log")
        .await
        .code(1);
    assert!(
        stderr(&assert).contains("logs/*.log: no match"),
        "{}",
        stderr(&assert)
    );
    let assert = script(server.address, local.path(), "dl */a.txt")
        .await
        .code(1);
    assert!(
        stderr(&assert).contains("may only be in the last part"),
        "{}",
        stderr(&assert)
    );

    let mut command = miniftp(local.path());
    command.args([
        "connect",
        &server.address.to_string(),
        "--classic",
        "-c",
        "pwd; ls",
    ]);
    let assert = run(command).await.code(1);
    assert_eq!(stdout(&assert), "/\n");
    assert_eq!(
        stderr(&assert),
        "miniftp: ls: ls needs the extended protocol; this connection speaks the classic one\n"
    );
}

/// The benchmark drives many clients from spawned tasks: the futures of
/// the client's operations must be `Send`.
#[allow(dead_code)]
fn client_futures_are_send(client: &mut Client, path: &Path) {
    fn send<T: Send>(_: T) {}
    send(client.upload_file(path, "x", PLAIN, |_| {}));
    send(client.download_file("x", path, RESUME, |_| {}));
    send(client.stat("x"));
    send(client.stat_many(&[]));
    send(client.upload_tree(path, "x", |_| {}));
    send(client.download_tree("x", path, |_| {}));
    send(client.size("x"));
    send(client.list("x"));
}

#[tokio::test(flavor = "multi_thread")]
async fn trees_named_by_their_destination_and_into_existing_directories() {
    let server = TestServer::start().await;
    server.write("existing/keep.txt", b"k");
    let local = TempDir::new().unwrap();
    awkward_tree(&local.path().join("src"));
    std::fs::create_dir(local.path().join("into")).unwrap();

    // `.` has no name of its own: the destination names the copy. An
    // existing directory (remote or local) receives it under its name.
    let assert = script(
        server.address,
        &local.path().join("src"),
        "ul -r . copy; ul -r ../src existing; lcd ..; dl -r copy fresh; dl -r /existing/src into",
    )
    .await
    .success();
    let out = stdout(&assert);
    assert!(out.contains("uploaded . -> copy: 10 files"), "{out}");
    assert!(
        out.contains("uploaded ../src -> existing/src: 10 files"),
        "{out}"
    );
    let source = tree(&local.path().join("src"));
    assert_eq!(tree(&server.path("copy")), source);
    assert_eq!(tree(&server.path("existing/src")), source);
    assert_eq!(server.read("existing/keep.txt"), b"k");
    assert_eq!(tree(&local.path().join("fresh")), source);
    assert_eq!(tree(&local.path().join("into/src")), source);
}

/// A stand-in server that switches to the extended protocol, then answers a
/// resumable upload only after `delay` (as a server reading back and
/// hashing a large kept part would), with a refusal.
async fn slow_to_resume(delay: Duration) -> SocketAddr {
    use miniftp::connection::Connection;
    use miniftp::protocol::Token;
    use miniftp::protocol::extended::{Message, upgrade_accepted};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut connection = Connection::new(stream, Token::generate());
        connection.write_token().await.unwrap();
        connection
            .write_message(b"Current Directory: /:\n|")
            .await
            .unwrap();
        connection.read_message(1024).await.unwrap();
        connection
            .write_message(upgrade_accepted().as_bytes())
            .await
            .unwrap();
        let header = connection.read_header().await.unwrap().unwrap();
        connection.read_body(header.length).await.unwrap();
        tokio::time::sleep(delay).await;
        let mut out = bytes::BytesMut::new();
        Message::Failed {
            code: ErrorCode::NoSpace,
            message: "stand-in refusal".to_owned(),
        }
        .encode(header.id, &mut out);
        connection.write_raw(&out).await.unwrap();
        // Hold the connection until the client leaves.
        let _ = connection.read_header().await;
    });
    address
}

#[tokio::test(start_paused = true)]
async fn the_wait_for_a_resume_offset_grows_with_the_files_size() {
    let local = TempDir::new().unwrap();
    let (small, large) = (local.path().join("small"), local.path().join("large"));
    std::fs::write(&small, b"a small file").unwrap();
    // Sparse: 100 MiB allows the server 2 s more at 50 MiB/s.
    std::fs::File::create(&large)
        .unwrap()
        .set_len(100 << 20)
        .unwrap();
    let config = ClientConfig {
        timeout: Duration::from_millis(300),
        ..ClientConfig::default()
    };
    let delay = Duration::from_millis(900);

    let mut client = Client::connect(&slow_to_resume(delay).await.to_string(), config.clone())
        .await
        .unwrap();
    let error = client
        .upload_file(&large, "large", RESUME, |_| {})
        .await
        .unwrap_err();
    assert_eq!(code(&error), ErrorCode::NoSpace, "{error}");

    // A small file gets only the usual timeout.
    let mut client = Client::connect(&slow_to_resume(delay).await.to_string(), config)
        .await
        .unwrap();
    let error = client
        .upload_file(&small, "small", RESUME, |_| {})
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::TimedOut(_)), "{error:?}");
}

#[tokio::test]
async fn a_download_of_a_tree_without_end_stops_and_says_why() {
    let server = TestServer::start().await;
    // Deeper than any tree the client follows: what a loop of links on the
    // server looks like from the client's side.
    let deep = vec!["d"; 70].join("/");
    std::fs::create_dir_all(server.path(&deep)).unwrap();
    let local = TempDir::new().unwrap();
    let mut client = connect(server.address).await;
    let summary = client
        .download_tree("d", &local.path().join("d"), |_| {})
        .await
        .unwrap();
    assert_eq!(summary.failures.len(), 1, "{:?}", summary.failures);
    let reason = summary.failures[0].1.to_string();
    assert!(reason.contains("deeper than 64 levels"), "{reason}");
    assert!(local.path().join(vec!["d"; 64].join("/")).is_dir());
    assert!(!local.path().join(vec!["d"; 66].join("/")).exists());
}

/// The stages a transfer reported, each once, in order, and the kept
/// bytes it last reported.
fn stages(reports: &[Progress]) -> (Vec<miniftp::client::Stage>, u64) {
    let mut stages = Vec::new();
    for report in reports {
        if stages.last() != Some(&report.stage) {
            stages.push(report.stage);
        }
    }
    (stages, reports.last().map_or(0, |report| report.kept))
}

#[tokio::test]
async fn a_resumed_transfer_reports_checking_then_moving_then_verifying() {
    use miniftp::client::Stage::{Checking, Transferring, Verifying};
    let server = TestServer::start().await;
    let contents = pseudo_random_bytes(3 << 20, 31);
    server.write("big.bin", &contents);
    let local = TempDir::new().unwrap();
    // An earlier download left the first MiB.
    std::fs::write(
        local.path().join(".big.bin.miniftp-part"),
        &contents[..1 << 20],
    )
    .unwrap();
    let mut client = connect(server.address).await;
    let mut reports = Vec::new();
    client
        .download_file("big.bin", &local.path().join("big.bin"), RESUME, |p| {
            reports.push(p)
        })
        .await
        .unwrap();
    assert_eq!(
        stages(&reports),
        (vec![Checking, Transferring, Verifying], 1 << 20)
    );
    assert_eq!(
        reports[0].kept,
        1 << 20,
        "the kept part is known while checked"
    );

    // A fresh upload: the server is asked what it kept (nothing), then the
    // bytes move, then it verifies.
    let mut reports = Vec::new();
    client
        .upload_file(&local.path().join("big.bin"), "copy.bin", RESUME, |p| {
            reports.push(p)
        })
        .await
        .unwrap();
    assert_eq!(
        stages(&reports),
        (vec![Checking, Transferring, Verifying], 0)
    );
    assert_eq!(server.read("copy.bin"), contents);
}

#[tokio::test]
async fn a_durable_download_past_several_write_backs_is_whole_and_identical() {
    let server = TestServer::start().await;
    // Past two requests to start write-back (every 8 MiB), ending off a
    // boundary.
    let data = pseudo_random_bytes((20 << 20) + 7, 15);
    server.write("big.bin", &data);
    let config = ClientConfig {
        timeout: Duration::from_secs(10),
        durable_downloads: true,
        ..ClientConfig::default()
    };
    let mut client = Client::connect(&server.address.to_string(), config)
        .await
        .expect("connect");
    let local = TempDir::new().unwrap();
    let target = local.path().join("big.bin");
    let got = client
        .download_file("big.bin", &target, PLAIN, |_| {})
        .await
        .unwrap();
    assert_eq!(got, data.len() as u64);
    assert!(std::fs::read(&target).unwrap() == data, "identical");
    assert_eq!(local_entries(local.path()), ["big.bin"]);
}
