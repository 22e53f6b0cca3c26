//! A client that reads exactly like the original Python client, against our
//! server: the token is whatever ONE `recv(1024)` returns, and a message is
//! complete only when ONE `recv(1024)` result ends with the token. It hangs
//! whenever two messages reach it in one read, so these tests check the
//! server's pacing. Blocking std sockets in a blocking thread, with read
//! timeouts so that a hang fails the test instead of blocking the suite.

use miniftp::protocol::text::excerpt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use tempfile::TempDir;

use crate::support::{TestServer, pseudo_random_bytes};

/// How long one read may wait before the client calls it a hang.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The original client's reading pattern, in Rust.
struct OriginalClient {
    socket: TcpStream,
    token: Vec<u8>,
    welcome: Vec<u8>,
}

impl OriginalClient {
    fn connect(address: SocketAddr) -> OriginalClient {
        let mut socket = TcpStream::connect(address).expect("connect");
        socket.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let mut buffer = [0u8; 1024];
        let read = socket.read(&mut buffer).expect("the token");
        // The whole result of one read is taken as the token.
        let token = buffer[..read].to_vec();
        assert_eq!(
            token.len(),
            10,
            "the token must arrive alone: {:?}",
            String::from_utf8_lossy(&token)
        );
        let mut client = OriginalClient {
            socket,
            token,
            welcome: Vec::new(),
        };
        client.welcome = client.receive();
        client
    }

    /// `sendall(data + token)`.
    fn send(&mut self, data: &[u8]) {
        let mut message = data.to_vec();
        message.extend_from_slice(&self.token);
        self.socket.write_all(&message).expect("send");
    }

    /// Reads until one read's result ends with the token.
    fn receive(&mut self) -> Vec<u8> {
        let mut message = Vec::new();
        let mut buffer = [0u8; 1024];
        loop {
            let read = match self.socket.read(&mut buffer) {
                Ok(0) => panic!("connection closed mid-message"),
                Ok(read) => read,
                Err(error) => panic!(
                    "no read ended with the token ({error}); {} bytes so far, ending {:?}",
                    message.len(),
                    String::from_utf8_lossy(&message[message.len().saturating_sub(40)..])
                ),
            };
            message.extend_from_slice(&buffer[..read]);
            if buffer[..read].ends_with(&self.token) {
                message.truncate(message.len() - self.token.len());
                return message;
            }
        }
    }

    fn command(&mut self, line: &str) -> String {
        self.send(line.as_bytes());
        String::from_utf8(self.receive()).unwrap()
    }
}

/// The README session: mkdir test_dir, cd test_dir, ul jellyfish.jpg, info
/// jellyfish.jpg, dl jellyfish.jpg, cd .., rm test_dir (an error: it is not
/// empty), then the cleanup that lets the session run again.
fn readme_session(address: SocketAddr, local: &Path, downloads: &Path) {
    let content = std::fs::read(local.join("jellyfish.jpg")).unwrap();
    let mut client = OriginalClient::connect(address);
    assert!(client.welcome.starts_with(b"Current Directory: /:\n|"));
    assert_eq!(client.command("mkdir test_dir"), "/");
    assert_eq!(client.command("cd test_dir"), "/test_dir");
    client.send(b"ul jellyfish.jpg");
    client.send(&content);
    assert_eq!(String::from_utf8(client.receive()).unwrap(), "/test_dir");
    client.send(b"info jellyfish.jpg");
    assert_eq!(client.receive(), content.len().to_string().as_bytes());
    assert_eq!(client.receive(), b"/test_dir");
    client.send(b"dl jellyfish.jpg");
    let downloaded = client.receive();
    std::fs::write(downloads.join("jellyfish.jpg"), &downloaded).unwrap();
    assert_eq!(client.receive(), b"/test_dir");
    assert_eq!(client.command("cd .."), "/");
    assert_eq!(
        client.command("rm test_dir"),
        "error: directory not empty: test_dir"
    );
    assert_eq!(client.command("rm test_dir/jellyfish.jpg"), "/");
    assert_eq!(client.command("rm test_dir"), "/");
    // The original client never says exit: it just closes.
    drop(client);
    let saved = std::fs::read(downloads.join("jellyfish.jpg")).unwrap();
    assert!(saved == content, "the downloaded file differs");
}

/// Runs the README session `rounds` times with a `len`-byte jellyfish.jpg.
async fn readme_sessions(len: usize, rounds: usize) {
    let server = TestServer::start().await;
    let address = server.address;
    tokio::task::spawn_blocking(move || {
        let local = TempDir::new().unwrap();
        let downloads = TempDir::new().unwrap();
        std::fs::write(
            local.path().join("jellyfish.jpg"),
            pseudo_random_bytes(len, len as u64),
        )
        .unwrap();
        for _ in 0..rounds {
            readme_session(address, local.path(), downloads.path());
        }
    })
    .await
    .expect("the original client completes every session");
    assert_eq!(server.visible_entries("/"), Vec::<String>::new());
    assert_eq!(server.pending_uploads(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_session_runs_twenty_times() {
    readme_sessions(100 * 1024, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_whose_token_straddles_a_read_boundary() {
    // 1,019 bytes past a multiple of 1,024: a token sent right after the
    // data would be split between two of the client's reads.
    readme_sessions(100 * 1024 - 5, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_welcomes_and_statuses_arrive_alone() {
    let server = TestServer::start().await;
    // A welcome of a little over 3 KiB whose token straddles 1,024 bytes.
    let header = "Current Directory: /:\n|".len();
    let mut names: Vec<String> = (0..133)
        .map(|i| format!("f{i:03}_{}", "x".repeat(20)))
        .collect();
    let listed: usize = names.iter().map(|name| name.len() + 4).sum();
    let pad = 1024 * 4 - 5 - header - listed - 4;
    assert!((1..=255).contains(&pad));
    names.push("p".repeat(pad));
    names.sort();
    for name in &names {
        server.write(name, b"x");
    }
    let address = server.address;
    tokio::task::spawn_blocking(move || {
        for _ in 0..3 {
            let mut client = OriginalClient::connect(address);
            assert_eq!(client.welcome.len(), 1024 * 4 - 5);
            // A long error status: it echoes (the start and end of) a long
            // name, more than one read of the client's.
            let long = "n".repeat(2000);
            let status = format!("error: name too long: {}", excerpt(&long));
            assert!(status.len() > 1024);
            assert_eq!(client.command(&format!("cd {long}")), status);
            client.send(b"info nothing");
            assert_eq!(client.receive(), b"");
            assert_eq!(
                client.receive(),
                b"error: no such file or directory: nothing"
            );
            client.send(b"dl nothing");
            assert_eq!(client.receive(), b"");
            assert_eq!(
                client.receive(),
                b"error: no such file or directory: nothing"
            );
        }
    })
    .await
    .expect("the original client reads every message");
}
