//! The memory a client can make the server hold, measured on the real
//! binary with clients that send and never read: whatever they ask, each
//! connection costs at most the bound `docs/PROTOCOL.md` states (about
//! 1 MiB once in, a few KiB before a login), never what the request or
//! the directory would multiply.

use std::net::SocketAddr;

use bytes::BytesMut;
use miniftp::Access;
use miniftp::accounts::Accounts;
use miniftp::connection::Connection;
use miniftp::operation::Operation;
use miniftp::protocol::extended::{Header, Kind, Message, upgrade_accepted, upgrade_request};
use tempfile::TempDir;
use tokio::net::TcpStream;

use crate::support::RawClient;
use crate::support::process::ServerProcess;

/// What `docs/PROTOCOL.md` promises a connection may hold at most once in
/// (its read buffer, the replies it holds back, a file write in flight),
/// rounded down to what the connections measured here stay under when
/// they send no file data.
const PER_CONNECTION: u64 = 1024 * 1024;

/// What it promises at most, an upload to the disk under way included.
const PER_CONNECTION_UPLOADING: u64 = 1300 * 1024;

/// The same before a login.
const PER_CONNECTION_BEFORE_LOGIN: u64 = 72 * 1024;

/// A connection switched to frames, as its raw stream (nothing buffered).
async fn upgraded(address: SocketAddr) -> TcpStream {
    let mut classic = RawClient::connect(address).await;
    assert_eq!(
        classic.command(&upgrade_request()).await,
        upgrade_accepted()
    );
    stream_of(classic.connection)
}

fn stream_of(connection: Connection<TcpStream>) -> TcpStream {
    let (stream, unread) = connection.into_parts();
    assert!(unread.is_empty());
    stream
}

/// Waits until the server has sent `at_least` bytes to `stream`, without
/// reading them (they stay in the socket's queue, as a client's that never
/// reads).
async fn until_answered(stream: &TcpStream, at_least: usize) {
    let mut peeked = vec![0u8; at_least];
    loop {
        stream.readable().await.unwrap();
        match stream.peek(&mut peeked).await {
            Ok(count) if count >= at_least => return,
            Ok(0) => panic!("the server closed the connection"),
            // Fewer bytes than wanted so far: wait for the next to arrive.
            Ok(_) => tokio::task::yield_now().await,
            Err(error) => panic!("peek: {error}"),
        }
    }
}

/// How much more the server holds now than `before`, in MiB, printed for
/// the record.
fn growth(server: &ServerProcess, before: u64, what: &str) -> u64 {
    let grown = server.peak_resident().saturating_sub(before);
    eprintln!(
        "{what}: server peak +{:.1} MiB",
        grown as f64 / (1024.0 * 1024.0)
    );
    grown
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_their_errors_hold_little() {
    let root = TempDir::new().unwrap();
    let server = ServerProcess::start(root.path());
    let clients = 40;
    let mut streams = Vec::new();
    for _ in 0..clients {
        streams.push(upgraded(server.address).await);
    }
    let before = server.peak_resident();
    let mut requests = BytesMut::new();
    // A request as long as a message may be, and ones the server parses:
    // each error would echo its path five times over.
    Message::Request(Operation::Stat {
        path: "\u{1}".repeat((1 << 20) - 4),
    })
    .encode(1, &mut requests);
    Message::Request(Operation::Stat {
        path: "\u{1}".repeat(60_000),
    })
    .encode(2, &mut requests);
    Message::Request(Operation::Rename {
        from: "\u{7f}".repeat(30_000),
        to: "\u{7f}".repeat(30_000),
    })
    .encode(3, &mut requests);
    for stream in &streams {
        write_all(stream, &requests).await;
    }
    for stream in &streams {
        until_answered(stream, 3 * 13).await;
    }
    let grown = growth(&server, before, "40 clients with long erring requests");
    assert!(grown < clients * PER_CONNECTION, "+{grown} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_a_long_listing_hold_little() {
    let root = TempDir::new().unwrap();
    let big = root.path().join("big");
    std::fs::create_dir(&big).unwrap();
    for index in 0..20_000 {
        std::fs::File::create(
            big.join(format!("a-file-with-a-name-of-some-length-{index:05}.txt")),
        )
        .unwrap();
    }
    let server = ServerProcess::start(root.path());
    let clients = 30;
    let mut streams = Vec::new();
    for _ in 0..clients {
        streams.push(upgraded(server.address).await);
    }
    let before = server.peak_resident();
    let mut request = BytesMut::new();
    Message::Request(Operation::List { path: "big".into() }).encode(1, &mut request);
    for stream in &streams {
        write_all(stream, &request).await;
    }
    // Well into the listing (about 1.2 MB in all) on every connection.
    for stream in &streams {
        until_answered(stream, 64 * 1024).await;
    }
    let grown = growth(&server, before, "30 clients listing 20,000 entries");
    assert!(grown < clients * PER_CONNECTION, "+{grown} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_finish_a_login_hold_little() {
    let root = TempDir::new().unwrap();
    let users = root.path().join("users.toml");
    let mut accounts = Accounts::new();
    accounts
        .add("alice", "alice's secret", None, Access::ReadWrite)
        .unwrap();
    accounts.save(&users).unwrap();
    let shared = root.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    let server = ServerProcess::start_with(&shared, &["--users", users.to_str().unwrap()]);
    let connections = 150;
    let mut streams = Vec::new();
    for _ in 0..connections {
        streams.push(upgraded(server.address).await);
    }
    let before = server.peak_resident();
    // Half of a megabyte's login, kept half sent.
    let header = Header {
        kind: Kind::Login,
        id: 1,
        length: 1 << 20,
    };
    let mut half = header.encode().to_vec();
    half.extend_from_slice(&vec![b'p'; 512 * 1024]);
    for stream in &streams {
        // The server may refuse and close before it has read all of it.
        let _ = write_some(stream, &half).await;
    }
    for stream in &streams {
        until_answered(stream, 13).await;
    }
    let grown = growth(&server, before, "150 half-sent logins");
    assert!(
        grown < connections * PER_CONNECTION_BEFORE_LOGIN,
        "+{grown} bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_left_half_sent_hold_little() {
    let root = TempDir::new().unwrap();
    let server = ServerProcess::start(root.path());
    let clients: u64 = 40;
    let mut streams = Vec::new();
    for _ in 0..clients {
        streams.push(upgraded(server.address).await);
    }
    let before = server.peak_resident();
    let (size, sent) = (16u64 << 20, 8usize << 20);
    let data: Vec<u8> = (0..sent as u32).map(|i| (i % 251) as u8).collect();
    for (index, stream) in streams.iter().enumerate() {
        let mut request = BytesMut::new();
        Message::Request(Operation::Upload {
            path: format!("half-{index}.bin"),
            size: Some(size),
            resume: false,
        })
        .encode(1, &mut request);
        let header = Header {
            kind: Kind::Data,
            id: 1,
            length: size,
        };
        request.extend_from_slice(&header.encode());
        write_all(stream, &request).await;
    }
    // Every client sends half of its file, at once, then nothing more.
    let mut sending = tokio::task::JoinSet::new();
    for stream in streams {
        let data = data.clone();
        sending.spawn(async move {
            write_all(&stream, &data).await;
            stream
        });
    }
    let streams = sending.join_all().await;
    // Until the server has written every byte it was sent.
    let uploads = root.path().join(".miniftp").join("uploads");
    loop {
        let written: Vec<u64> = std::fs::read_dir(&uploads)
            .map(|entries| {
                entries
                    .filter_map(|entry| Some(entry.ok()?.metadata().ok()?.len()))
                    .collect()
            })
            .unwrap_or_default();
        if written.len() as u64 == clients && written.iter().all(|&len| len == sent as u64) {
            break;
        }
        tokio::task::yield_now().await;
    }
    let grown = growth(&server, before, "40 uploads of 16 MiB half sent");
    assert!(grown < clients * PER_CONNECTION_UPLOADING, "+{grown} bytes");
    drop(streams);
}

async fn write_all(stream: &TcpStream, bytes: &[u8]) {
    assert_eq!(write_some(stream, bytes).await, bytes.len());
}

/// Writes what the connection takes of `bytes` (all of it unless the
/// server closes), without a mutable stream.
async fn write_some(stream: &TcpStream, bytes: &[u8]) -> usize {
    let mut written = 0;
    while written < bytes.len() {
        stream.writable().await.unwrap();
        match stream.try_write(&bytes[written..]) {
            Ok(count) => written += count,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
    }
    written
}
