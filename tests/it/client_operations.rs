//! The `Client` library against the in-process server: every operation,
//! every error family, and what a failed or interrupted transfer leaves;
//! the common operations in both protocols (the extended-only ones are in
//! `client_extended`).

use std::path::Path;
use std::time::Duration;

use miniftp::ServerConfig;
use miniftp::client::{Client, ClientConfig, ClientError, Progress, Protocol, TransferOptions};
use tempfile::TempDir;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::support::{TestServer, pseudo_random_bytes, sha256, sha256_file};

/// Both protocols, for the operations they share.
const BOTH: [Protocol; 2] = [Protocol::Auto, Protocol::Classic];

async fn connect(server: &TestServer) -> Client {
    connect_with(server, Protocol::Auto).await
}

async fn connect_with(server: &TestServer, protocol: Protocol) -> Client {
    let config = ClientConfig {
        protocol,
        ..ClientConfig::default()
    };
    let client = Client::connect(&server.address.to_string(), config)
        .await
        .expect("connect");
    assert_eq!(client.is_extended(), protocol == Protocol::Auto);
    client
}

fn quick() -> ClientConfig {
    ClientConfig {
        timeout: Duration::from_millis(300),
        ..ClientConfig::default()
    }
}

const PLAIN: TransferOptions = TransferOptions { resume: false };

/// Names in a local directory, sorted.
fn local_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn server_reason(error: ClientError) -> String {
    match error {
        ClientError::Server { reason, .. } => reason,
        other => panic!("expected a server refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn connect_reads_the_welcome() {
    let server = TestServer::start().await;
    server.write("b.txt", b"b");
    server.write("photos/x", b"x");
    let client = connect(&server).await;
    assert_eq!(client.directory(), "/");
    assert_eq!(client.welcome().directory, "/");
    assert_eq!(client.welcome().entries, ["photos", "b.txt"]);
    assert!(client.is_connected());
}

#[tokio::test]
async fn every_operation_round_trips() {
    for protocol in BOTH {
        every_operation_round_trips_in(protocol).await;
    }
}

async fn every_operation_round_trips_in(protocol: Protocol) {
    let server = TestServer::start().await;
    let mut client = connect_with(&server, protocol).await;

    client.make_directory("my dir").await.unwrap();
    client.change_directory("my dir").await.unwrap();
    assert_eq!(client.directory(), "/my dir");

    let data = pseudo_random_bytes(100_000, 1);
    let sent = client
        .upload(&data[..], 100_000, "a 📷.bin", |_| {})
        .await
        .unwrap();
    assert_eq!(sent, 100_000);
    assert_eq!(server.read("my dir/a 📷.bin"), data);
    assert_eq!(client.size("a 📷.bin").await.unwrap(), 100_000);

    let mut received = Vec::new();
    let count = client
        .download("a 📷.bin", &mut received, |_| {})
        .await
        .unwrap();
    assert_eq!((count, sha256(&received)), (100_000, sha256(&data)));

    client.rename("a 📷.bin", "/b.bin").await.unwrap();
    assert!(server.exists("b.bin") && !server.exists("my dir/a 📷.bin"));
    client.change_directory("..").await.unwrap();
    assert_eq!(client.directory(), "/");
    client.rename("b.bin", "my dir").await.unwrap();
    assert!(server.exists("my dir/b.bin"));

    client.remove("my dir/b.bin").await.unwrap();
    client.remove("my dir").await.unwrap();
    assert_eq!(server.visible_entries("/"), Vec::<String>::new());
    client.close().await;
}

#[tokio::test]
async fn files_round_trip_with_progress() {
    for protocol in BOTH {
        files_round_trip_with_progress_in(protocol).await;
    }
}

async fn files_round_trip_with_progress_in(protocol: Protocol) {
    let server = TestServer::start().await;
    let local = TempDir::new().unwrap();
    let data = pseudo_random_bytes(3 << 20, 2);
    let source = local.path().join("with space.bin");
    std::fs::write(&source, &data).unwrap();
    let mut client = connect_with(&server, protocol).await;

    let mut reports: Vec<Progress> = Vec::new();
    let sent = client
        .upload_file(&source, "remote name.bin", PLAIN, |p| reports.push(p))
        .await
        .unwrap();
    assert_eq!(sent, data.len() as u64);
    assert_eq!(sha256(&server.read("remote name.bin")), sha256(&data));
    assert!(reports.iter().all(|p| p.total == Some(data.len() as u64)));
    assert!(reports.windows(2).all(|w| w[0].done <= w[1].done));
    assert_eq!(reports.last().unwrap().done, data.len() as u64);

    let target = local.path().join("back ünï.bin");
    let mut reports: Vec<Progress> = Vec::new();
    let received = client
        .download_file("remote name.bin", &target, PLAIN, |p| reports.push(p))
        .await
        .unwrap();
    assert_eq!(received, data.len() as u64);
    assert_eq!(sha256_file(&target), sha256(&data));
    assert_eq!(reports.first().unwrap().done, 0);
    assert_eq!(reports.last().unwrap().done, data.len() as u64);
    assert!(reports.iter().all(|p| p.total == Some(data.len() as u64)));
    assert_eq!(
        local_entries(local.path()),
        ["back ünï.bin", "with space.bin"]
    );
}

#[tokio::test]
async fn server_refusals_are_typed_and_the_connection_goes_on() {
    for protocol in BOTH {
        server_refusals_are_typed_and_the_connection_goes_on_in(protocol).await;
    }
}

async fn server_refusals_are_typed_and_the_connection_goes_on_in(protocol: Protocol) {
    let server = TestServer::start().await;
    server.write("full/x", b"x");
    let mut client = connect_with(&server, protocol).await;

    let reason = server_reason(client.change_directory("nowhere").await.unwrap_err());
    assert!(reason.contains("nowhere"), "{reason}");
    assert_eq!(client.directory(), "/");
    let reason = server_reason(client.remove("full").await.unwrap_err());
    assert!(reason.contains("not empty"), "{reason}");
    server_reason(client.make_directory("full").await.unwrap_err());
    server_reason(client.rename("full/x", "full").await.unwrap_err());
    server_reason(client.size("full").await.unwrap_err());
    server_reason(client.size("missing").await.unwrap_err());
    server_reason(
        client
            .upload(&b"data"[..], 4, "no/such/dir", |_| {})
            .await
            .unwrap_err(),
    );
    let mut sink = Vec::new();
    server_reason(
        client
            .download("missing", &mut sink, |_| {})
            .await
            .unwrap_err(),
    );

    assert!(client.is_connected());
    client.change_directory("full").await.unwrap();
    assert_eq!(client.directory(), "/full");
}

#[tokio::test]
async fn a_local_file_that_is_missing_or_a_directory_fails_before_sending() {
    for protocol in BOTH {
        a_local_file_that_is_missing_or_a_directory_fails_before_sending_in(protocol).await;
    }
}

async fn a_local_file_that_is_missing_or_a_directory_fails_before_sending_in(protocol: Protocol) {
    let server = TestServer::start().await;
    let local = TempDir::new().unwrap();
    let mut client = connect_with(&server, protocol).await;

    let missing = client
        .upload_file(&local.path().join("missing"), "missing", PLAIN, |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(&missing, ClientError::Local { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
        "{missing:?}"
    );
    let directory = client
        .upload_file(local.path(), "dir", PLAIN, |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(directory, ClientError::NotAFile(_)),
        "{directory:?}"
    );
    assert!(client.is_connected());
    assert_eq!(server.visible_entries("/"), Vec::<String>::new());
}

#[tokio::test]
async fn a_file_holding_the_token_is_refused_before_sending() {
    let server = TestServer::start().await;
    let local = TempDir::new().unwrap();
    let mut client = connect_with(&server, Protocol::Classic).await;
    let token = client.forbidden_token().unwrap();
    let mut data = pseudo_random_bytes(1 << 20, 3);
    data.splice(500_000..500_000, token.as_bytes().iter().copied());
    let path = local.path().join("evil.bin");
    std::fs::write(&path, &data).unwrap();

    let error = client
        .upload_file(&path, "evil.bin", PLAIN, |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::TokenInFile {
                connection_dropped: false,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("token"), "{error}");
    assert!(client.is_connected());
    assert!(!server.exists("evil.bin"));
    client.make_directory("still here").await.unwrap();
}

#[tokio::test]
async fn a_stream_holding_the_token_drops_the_connection_and_stores_nothing() {
    let server = TestServer::start().await;
    let mut client = connect_with(&server, Protocol::Classic).await;
    client.make_directory("d").await.unwrap();
    client.change_directory("d").await.unwrap();
    let token = client.forbidden_token().unwrap();
    let mut data = pseudo_random_bytes(2 << 20, 4);
    data.splice(1_500_000..1_500_000, token.as_bytes().iter().copied());

    let error = client
        .upload(&data[..], data.len() as u64, "evil.bin", |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::TokenInFile {
                connection_dropped: true,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(!client.is_connected());
    assert!(matches!(
        client.make_directory("x").await,
        Err(ClientError::NotConnected)
    ));

    client.reconnect().await.unwrap();
    assert_eq!(client.directory(), "/d");
    client.make_directory("x").await.unwrap();
    assert_eq!(server.visible_entries("d"), ["x"]);
}

#[tokio::test]
async fn a_failed_download_leaves_nothing_locally() {
    let server = TestServer::start().await;
    let local = TempDir::new().unwrap();
    let mut client = connect_with(&server, Protocol::Classic).await;
    let token = client.forbidden_token().unwrap();
    let mut data = b"before ".to_vec();
    data.extend_from_slice(token.as_bytes());
    server.write("holds token", &data);

    let target = local.path().join("missing");
    server_reason(
        client
            .download_file("missing", &target, PLAIN, |_| {})
            .await
            .unwrap_err(),
    );
    let target = local.path().join("holds token");
    let reason = server_reason(
        client
            .download_file("holds token", &target, PLAIN, |_| {})
            .await
            .unwrap_err(),
    );
    assert!(reason.contains("token"), "{reason}");
    assert_eq!(local_entries(local.path()), Vec::<String>::new());
    assert!(client.is_connected());
}

#[tokio::test]
async fn a_download_does_not_replace_a_local_file_until_complete() {
    for protocol in BOTH {
        a_download_does_not_replace_a_local_file_until_complete_in(protocol).await;
    }
}

async fn a_download_does_not_replace_a_local_file_until_complete_in(protocol: Protocol) {
    let server = TestServer::start().await;
    let local = TempDir::new().unwrap();
    let target = local.path().join("f");
    std::fs::write(&target, b"old").unwrap();
    let mut client = connect_with(&server, protocol).await;
    server_reason(
        client
            .download_file("f", &target, PLAIN, |_| {})
            .await
            .unwrap_err(),
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"old");
    server.write("f", b"new");
    client
        .download_file("f", &target, PLAIN, |_| {})
        .await
        .unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"new");
    assert_eq!(local_entries(local.path()), ["f"]);
}

#[tokio::test]
async fn an_interrupted_download_leaves_nothing_and_reconnect_restores_the_directory() {
    for protocol in BOTH {
        an_interrupted_download_leaves_nothing_and_reconnect_restores_the_directory_in(protocol)
            .await;
    }
}

async fn an_interrupted_download_leaves_nothing_and_reconnect_restores_the_directory_in(
    protocol: Protocol,
) {
    let server = TestServer::start().await;
    server.write("sub/big.bin", &pseudo_random_bytes(16 << 20, 5));
    let local = TempDir::new().unwrap();
    let target = local.path().join("big.bin");
    let mut client = connect_with(&server, protocol).await;
    client.change_directory("sub").await.unwrap();

    let (started, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::select! {
        result = client.download_file("big.bin", &target, PLAIN, |p| {
            if p.done > 0 {
                let _ = started.send(());
            }
        }) => panic!("the download should have been interrupted: {result:?}"),
        _ = started_rx.recv() => {}
    }
    assert_eq!(local_entries(local.path()), Vec::<String>::new());
    assert!(!client.is_connected());

    client.reconnect().await.unwrap();
    assert_eq!(client.directory(), "/sub");
    assert_eq!(client.size("big.bin").await.unwrap(), 16 << 20);
}

#[tokio::test]
async fn reconnect_reports_a_directory_that_is_gone() {
    for protocol in BOTH {
        reconnect_reports_a_directory_that_is_gone_in(protocol).await;
    }
}

async fn reconnect_reports_a_directory_that_is_gone_in(protocol: Protocol) {
    let server = TestServer::start().await;
    let mut client = connect_with(&server, protocol).await;
    client.make_directory("gone").await.unwrap();
    client.change_directory("gone").await.unwrap();
    std::fs::remove_dir(server.path("gone")).unwrap();
    server_reason(client.reconnect().await.unwrap_err());
    assert!(client.is_connected());
    assert_eq!(client.directory(), "/");
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    drop(listener);
    let error = Client::connect(&address, quick()).await.err().unwrap();
    assert!(matches!(error, ClientError::Connect { .. }), "{error:?}");
    assert!(error.is_connection_lost());
    assert!(error.to_string().contains(&address), "{error}");
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        for greeting in [&b""[..], b"<Ab3X9kQw>"] {
            let (mut stream, _) = listener.accept().await.unwrap();
            stream.write_all(greeting).await.unwrap();
            held.push(stream);
        }
        held
    });
    // Silent from the start: no miniftp server (within the timeout, the
    // shorter); silent after the token: a server that stopped answering.
    let error = Client::connect(&address, quick()).await.err().unwrap();
    assert!(matches!(error, ClientError::NotMiniftp { .. }), "{error:?}");
    assert!(
        error.to_string().contains("nothing within 0.3 s"),
        "{error}"
    );
    let error = Client::connect(&address, quick()).await.err().unwrap();
    assert!(matches!(error, ClientError::TimedOut(_)), "{error:?}");
    assert!(error.to_string().contains("0.3 s"), "{error}");
    drop(silent.await.unwrap());
}

#[tokio::test]
async fn a_busy_server_is_a_server_refusal() {
    let server = TestServer::start_with(ServerConfig {
        max_connections: 0,
        ..ServerConfig::default()
    })
    .await;
    let error = Client::connect(&server.address.to_string(), quick())
        .await
        .err()
        .unwrap();
    assert!(server_reason(error).contains("busy"));
}
