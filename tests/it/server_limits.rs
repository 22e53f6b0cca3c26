//! Bounded input and resources: over-long commands, the idle timeout, the
//! connection limit, the upload size limit, many clients at once.

use std::time::Duration;

use miniftp::ServerConfig;
use miniftp::connection::Connection;
use tokio::net::TcpStream;

use crate::support::{HANG_GUARD, RawClient, TestServer, pseudo_random_bytes, sha256};

const TOO_LONG: &str = "error: command too long";

#[tokio::test]
async fn an_over_long_command_gets_an_error_then_the_connection_closes() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(server.address).await;
    // 64 KiB + 1 without a token, and more behind it: the server must not
    // wait for a token that may never come, nor reset the connection before
    // the client has read the error.
    client.write_raw(&vec![b'x'; 64 * 1024 + 1]).await;
    client.write_raw(&vec![b'y'; 256 * 1024]).await;
    assert_eq!(client.read_until_closed().await, [TOO_LONG]);
}

#[tokio::test]
async fn an_over_long_command_with_its_token_is_refused_too() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(server.address).await;
    client.send(&"x".repeat(64 * 1024 + 1)).await;
    assert_eq!(client.read_until_closed().await, [TOO_LONG]);
}

#[tokio::test]
async fn a_command_of_exactly_the_limit_is_accepted() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(server.address).await;
    let command = format!("cd {}", "a/".repeat((64 * 1024 - 3) / 2));
    let command = format!("{command}{}", "b".repeat(64 * 1024 - command.len()));
    assert_eq!(command.len(), 64 * 1024);
    let status = client.command(&command).await;
    assert!(status.starts_with("error: name too long"), "{status:.40}");
    assert_eq!(client.command("cd /").await, "/");
}

#[tokio::test]
async fn the_limit_is_configurable() {
    let config = ServerConfig {
        max_command_len: 16,
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(config).await;
    let mut client = RawClient::connect(server.address).await;
    assert_eq!(client.command("mkdir sixteen_ch").await, "/");
    client.send("mkdir seventeen_c").await;
    assert_eq!(client.read_until_closed().await, [TOO_LONG]);
    assert_eq!(server.visible_entries("/"), ["sixteen_ch"]);
}

// The default timeout is tested with paused time; the others use a short
// real timeout and wait for the connection to close, never a sleep.

/// A server whose idle timeout is `timeout`.
async fn server_with_idle_timeout(timeout: Duration) -> TestServer {
    let config = ServerConfig {
        idle_timeout: timeout,
        ..ServerConfig::default()
    };
    TestServer::start_with(config).await
}

const IDLE: &str = "error: idle timeout, closing the connection";

#[tokio::test(start_paused = true)]
async fn the_default_idle_timeout_is_five_minutes() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(server.address).await;
    assert_eq!(client.command("mkdir alive").await, "/");
    let silent_since = tokio::time::Instant::now();
    let guard = Duration::from_secs(400);
    assert_eq!(client.read_until_closed_within(guard).await, [IDLE]);
    let waited = silent_since.elapsed();
    assert!(waited >= Duration::from_secs(300), "{waited:?}");
    assert!(waited < Duration::from_secs(301), "{waited:?}");
}

#[tokio::test]
async fn an_idle_connection_times_out() {
    let timeout = Duration::from_millis(300);
    let server = server_with_idle_timeout(timeout).await;
    let mut client = RawClient::connect(server.address).await;
    let last_command = tokio::time::Instant::now();
    assert_eq!(client.command("mkdir alive").await, "/");
    assert_eq!(client.read_until_closed().await, [IDLE]);
    // The clock started again after the last command: it cannot have fired sooner.
    assert!(
        last_command.elapsed() >= timeout,
        "{:?}",
        last_command.elapsed()
    );
}

#[tokio::test]
async fn an_upload_that_stalls_times_out_and_leaves_the_old_file() {
    let server = server_with_idle_timeout(Duration::from_millis(300)).await;
    server.write("old.bin", b"old");
    let mut client = RawClient::connect(server.address).await;
    client.send("ul old.bin").await;
    client.write_raw(b"partial payload").await;
    assert_eq!(client.read_until_closed().await, [IDLE]);
    drop(client);
    let root = server.stop().await;
    assert_eq!(std::fs::read(root.path().join("old.bin")).unwrap(), b"old");
    let uploads = std::fs::read_dir(root.path().join(".miniftp/uploads")).unwrap();
    assert_eq!(uploads.count(), 0);
}

#[tokio::test]
async fn a_silent_client_times_out_before_any_command() {
    let server = server_with_idle_timeout(Duration::from_millis(200)).await;
    let mut client = RawClient::connect(server.address).await;
    assert_eq!(client.read_until_closed().await, [IDLE]);
}

#[tokio::test]
async fn a_client_beyond_the_limit_is_told_the_server_is_busy() {
    let config = ServerConfig {
        max_connections: 2,
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(config).await;
    let mut first = RawClient::connect(server.address).await;
    let mut second = RawClient::connect(server.address).await;
    let stream = TcpStream::connect(server.address).await.unwrap();
    let mut third = Connection::accept_token(stream)
        .await
        .expect("a token first");
    let busy = third.read_message(1024).await.unwrap().unwrap();
    assert_eq!(&busy[..], b"error: server busy, try again later");
    assert!(matches!(third.read_message(1024).await, Ok(None) | Err(_)));
    // The clients being served are not disturbed.
    assert_eq!(first.command("mkdir one").await, "/");
    assert_eq!(second.command("mkdir two").await, "/");
}

#[tokio::test]
async fn an_upload_over_the_size_limit_is_refused_and_discarded() {
    let config = ServerConfig {
        max_upload_size: Some(1000),
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(config).await;
    server.write("existing", b"existing");
    let mut client = RawClient::connect(server.address).await;
    assert_eq!(client.upload("fits", &[1; 1000]).await, "/");
    assert_eq!(server.read("fits"), [1; 1000]);
    assert_eq!(
        client.upload("existing", &[2; 1001]).await,
        "error: file too large: existing (the server takes at most 1000 bytes)"
    );
    assert_eq!(
        client
            .upload("huge", &pseudo_random_bytes(3 << 20, 1))
            .await,
        "error: file too large: huge (the server takes at most 1000 bytes)"
    );
    assert_eq!(server.read("existing"), b"existing");
    assert_eq!(server.visible_entries("/"), ["existing", "fits"]);
    assert_eq!(server.pending_uploads(), 0);
    assert_eq!(client.command("mkdir in_step").await, "/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_clients_at_once_keep_their_data_apart() {
    const CLIENTS: usize = 500;
    let server = TestServer::start().await;
    let shared = pseudo_random_bytes(64 * 1024, 99);
    server.write("shared.bin", &shared);
    let shared_hash = sha256(&shared);
    let address = server.address;
    // Every client connects before any of them starts working, so that all
    // 500 sessions are open at once.
    let connected = std::sync::Arc::new(tokio::sync::Barrier::new(CLIENTS));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..CLIENTS {
        let connected = connected.clone();
        let shared_hash = shared_hash.clone();
        tasks.spawn(async move {
            let mut client = RawClient::connect(address).await;
            connected.wait().await;
            let data = pseudo_random_bytes(4096 + i * 7, i as u64 + 1000);
            let name = format!("client_{i}.bin");
            assert_eq!(client.command(&format!("mkdir dir_{i}")).await, "/");
            assert_eq!(
                client.command(&format!("cd dir_{i}")).await,
                format!("/dir_{i}")
            );
            assert_eq!(client.upload(&name, &data).await, format!("/dir_{i}"));
            assert_eq!(
                client.info(&name).await,
                (data.len().to_string(), format!("/dir_{i}"))
            );
            let (payload, status) = client.download(&name).await;
            assert_eq!(status, format!("/dir_{i}"));
            assert_eq!(sha256(&payload), sha256(&data), "client {i}");
            let (payload, _) = client.download("/shared.bin").await;
            assert_eq!(sha256(&payload), shared_hash, "client {i}");
            client.send("exit").await;
            (i, sha256(&data))
        });
    }
    let mut hashes = vec![String::new(); CLIENTS];
    let all_done = async {
        while let Some(result) = tasks.join_next().await {
            let (i, hash) = result.expect("a client failed");
            hashes[i] = hash;
        }
    };
    // A burst of connections once overflowed the listen backlog and left
    // clients waiting forever for a token: make a hang a failure.
    tokio::time::timeout(2 * HANG_GUARD, all_done)
        .await
        .expect("every client finishes");
    for (i, hash) in hashes.iter().enumerate() {
        let stored = server.read(&format!("dir_{i}/client_{i}.bin"));
        assert_eq!(&sha256(&stored), hash, "client {i} on disk");
    }
    assert_eq!(server.visible_entries("/").len(), CLIENTS + 1);
    assert_eq!(server.pending_uploads(), 0);
}

#[tokio::test]
async fn an_extended_upload_over_the_size_limit_is_refused_before_its_data() {
    use miniftp::client::{Client, ClientConfig, ErrorCode, TransferOptions};
    let config = ServerConfig {
        max_upload_size: Some(1000),
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(config).await;
    server.write("existing", b"existing");
    let mut client = Client::connect(&server.address.to_string(), ClientConfig::default())
        .await
        .unwrap();
    assert!(client.is_extended());
    let big = pseudo_random_bytes(3 << 20, 2);
    let error = client
        .upload(&big[..], big.len() as u64, "existing", |_| {})
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::TooLarge), "{error}");
    let local = tempfile::TempDir::new().unwrap();
    let file = local.path().join("big");
    std::fs::write(&file, &big).unwrap();
    let resumable = TransferOptions { resume: true };
    let error = client
        .upload_file(&file, "huge", resumable, |_| {})
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::TooLarge), "{error}");
    assert_eq!(server.read("existing"), b"existing");
    assert_eq!(server.visible_entries("/"), ["existing"]);
    assert_eq!(server.pending_uploads(), 0);
    // Still in step.
    client
        .upload(&[1u8; 1000][..], 1000, "fits", |_| {})
        .await
        .unwrap();
    assert_eq!(server.read("fits"), [1; 1000]);
}

/// With paused time the clock jumps from one timer to the next whenever
/// every task waits, so the elapsed time measured here is the time the
/// rate limit imposes, not how fast this machine happens to be.
#[tokio::test(start_paused = true)]
async fn a_rate_limit_paces_each_connection_in_virtual_time() {
    use miniftp::client::{Client, ClientConfig};
    const RATE: u64 = 64 * 1024;
    let config = ServerConfig {
        rate_limit: Some(RATE),
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(config).await;
    let data = pseudo_random_bytes(640 * 1024, 5);
    server.write("file.bin", &data);
    let mut client = Client::connect(&server.address.to_string(), ClientConfig::default())
        .await
        .unwrap();

    let started = tokio::time::Instant::now();
    let mut back = Vec::new();
    client
        .download("file.bin", &mut back, |_| {})
        .await
        .unwrap();
    let download = started.elapsed().as_secs_f64();
    assert_eq!(sha256(&back), sha256(&data));

    let started = tokio::time::Instant::now();
    client
        .upload(&data[..], data.len() as u64, "copy.bin", |_| {})
        .await
        .unwrap();
    let upload = started.elapsed().as_secs_f64();
    assert_eq!(sha256(&server.read("copy.bin")), sha256(&data));

    // 640 KiB at 64 KiB/s is 10 s, less the first burst the bucket holds.
    for (what, seconds) in [("download", download), ("upload", upload)] {
        assert!(
            (9.5..=10.5).contains(&seconds),
            "{what} took {seconds:.2} s of virtual time"
        );
    }
}
