//! What an operator reads in the server's log: one JSON line per operation,
//! whichever protocol came in, naming the operation, its path(s), the bytes
//! of a transfer, how long it took and its outcome; a transfer cut short
//! says how far it got; the line that closes a connection counts what it
//! did. A test binary of its own: it installs a global logger.

use std::sync::{Arc, Mutex};

use miniftp::client::{Client, ClientConfig, Protocol, TransferOptions};
use miniftp::{ServerConfig, Storage};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// Everything logged.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// The log's lines, as JSON objects, and forgets them.
    fn take(&self) -> Vec<Value> {
        let bytes = std::mem::take(&mut *self.0.lock().unwrap());
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
            .collect()
    }
}

/// The fields of the operation lines, as (operation, path, to, bytes, outcome).
fn operations(lines: &[Value]) -> Vec<(String, String, String, Option<u64>, String)> {
    lines
        .iter()
        .filter_map(|line| {
            let fields = &line["fields"];
            let text = |name: &str| fields[name].as_str().unwrap_or_default().to_owned();
            fields.get("operation").map(|_| {
                (
                    text("operation"),
                    text("path"),
                    text("to"),
                    fields["bytes"].as_u64(),
                    text("outcome"),
                )
            })
        })
        .collect()
}

fn config(protocol: Protocol) -> ClientConfig {
    ClientConfig {
        protocol,
        ..ClientConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_logs_one_line_with_its_path_in_both_protocols() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .init();
    let root = tempfile::TempDir::new().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(miniftp::server::run(
        listener,
        Storage::open(root.path()).unwrap(),
        ServerConfig::default(),
        shutdown.clone(),
    ));
    let local = tempfile::TempDir::new().unwrap();
    let file = local.path().join("local.bin");
    std::fs::write(&file, vec![7u8; 10_000]).unwrap();

    for protocol in [Protocol::Auto, Protocol::Classic] {
        let mut client = Client::connect(&address, config(protocol)).await.unwrap();
        let extended = client.is_extended();
        client.make_directory("dir").await.unwrap();
        client.change_directory("dir").await.unwrap();
        let options = TransferOptions::default();
        client
            .upload_file(&file, "a.bin", options, |_| {})
            .await
            .unwrap();
        assert_eq!(client.size("a.bin").await.unwrap(), 10_000);
        let mut sink = Vec::new();
        client.download("a.bin", &mut sink, |_| {}).await.unwrap();
        client.rename("a.bin", "b.bin").await.unwrap();
        assert!(client.remove("missing").await.is_err());
        client.remove("b.bin").await.unwrap();
        client.change_directory("/").await.unwrap();
        if extended {
            client.stat("dir").await.unwrap();
            client.list("/").await.unwrap();
            client.make_directories("deep/er").await.unwrap();
            client.remove_tree("deep").await.unwrap();
        }
        client.remove("dir").await.unwrap();
        client.close().await;
        shutdown_wait(&captured).await;

        let lines = captured.take();
        let logged = operations(&lines);
        let ok = |operation: &str, path: &str| {
            logged
                .iter()
                .any(|(op, p, _, _, outcome)| op == operation && p == path && outcome == "ok")
        };
        for (operation, path) in [
            ("make-directory", "dir"),
            ("change-directory", "dir"),
            ("upload", "a.bin"),
            // Our extended client asks a stat for a size.
            (if extended { "stat" } else { "size" }, "a.bin"),
            ("download", "a.bin"),
            ("remove", "b.bin"),
            ("change-directory", "/"),
            ("remove", "dir"),
        ] {
            assert!(
                ok(operation, path),
                "{protocol:?}: no {operation} {path} in {logged:#?}"
            );
        }
        assert!(
            logged.iter().any(|(op, from, to, _, outcome)| {
                op == "rename" && from == "a.bin" && to == "b.bin" && outcome == "ok"
            }),
            "{protocol:?}: rename {logged:#?}"
        );
        let transfers: Vec<_> = logged
            .iter()
            .filter(|(op, ..)| op == "upload" || op == "download")
            .map(|(_, _, _, bytes, _)| *bytes)
            .collect();
        assert!(
            transfers.iter().all(|bytes| *bytes == Some(10_000)),
            "{transfers:?}"
        );
        assert!(logged.iter().any(|(op, path, _, _, outcome)| {
            op == "remove" && path == "missing" && outcome.starts_with("no such file or directory")
        }));
        if extended {
            for (operation, path) in [
                ("stat", "dir"),
                ("list", "/"),
                ("make-directory", "deep/er"),
                ("remove", "deep"),
            ] {
                assert!(ok(operation, path), "no {operation} {path} in {logged:#?}");
            }
        }
        // The connection's closing line counts what it did.
        let closed = lines
            .iter()
            .find(|line| line["fields"]["message"] == "connection closed")
            .expect("a closing line");
        assert!(closed["fields"]["succeeded"].as_u64().unwrap() >= 10);
        assert_eq!(closed["fields"]["failed"].as_u64(), Some(1));
        assert_eq!(closed["fields"]["bytes_sent"].as_u64(), Some(10_000));
        assert_eq!(closed["fields"]["bytes_received"].as_u64(), Some(10_000));
    }

    // A download the client abandons: the line says how far it got.
    std::fs::write(root.path().join("big.bin"), vec![1u8; 64 << 20]).unwrap();
    let mut client = Client::connect(&address, config(Protocol::Auto))
        .await
        .unwrap();
    let received = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = Arc::clone(&received);
    let mut sink = tokio::io::sink();
    let cut = client.download("big.bin", &mut sink, move |progress| {
        counted.store(progress.done, std::sync::atomic::Ordering::Relaxed)
    });
    // Stop after the first megabyte arrived: the future is dropped.
    let mut cut = Box::pin(cut);
    while received.load(std::sync::atomic::Ordering::Relaxed) < 1 << 20 {
        tokio::select! {
            _ = &mut cut => panic!("the whole file came before it was cut"),
            () = tokio::task::yield_now() => {}
        }
    }
    drop(cut);
    drop(client);
    shutdown_wait(&captured).await;
    let logged = operations(&captured.take());
    let download = logged
        .iter()
        .find(|(op, path, ..)| op == "download" && path == "big.bin")
        .unwrap_or_else(|| panic!("no line for the cut download in {logged:#?}"));
    assert_ne!(download.4, "ok");
    assert!(
        download
            .3
            .is_some_and(|bytes| bytes > 0 && bytes < 64 << 20),
        "{download:?}"
    );

    shutdown.cancel();
    server.await.unwrap();
}

/// Waits until the server has logged that a connection closed (its last
/// line for it).
async fn shutdown_wait(captured: &Captured) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let seen =
            String::from_utf8_lossy(&captured.0.lock().unwrap()).contains("connection closed");
        if seen {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server never logged the close"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}
