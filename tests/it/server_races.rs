//! Names changed under the server while it serves them, as any user of a
//! shared directory can: no request waits forever, whatever a name turns
//! into between the server's look and its open.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use miniftp::protocol::extended::{ErrorCode, Message};
use rustix::fs::{CWD, FileType, Mode, OFlags, RenameFlags};

use crate::support::frames::FrameClient;
use crate::support::{HANG_GUARD, RawClient, TestServer};

/// Swaps two names (`renameat2(RENAME_EXCHANGE)`) over and over until told
/// to stop; then opens both for writing, so that any reader still stuck in
/// opening a FIFO is let go.
fn keep_swapping(first: std::path::PathBuf, second: std::path::PathBuf, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        rustix::fs::renameat_with(CWD, &first, CWD, &second, RenameFlags::EXCHANGE).unwrap();
    }
    for name in [&first, &second] {
        let _ = rustix::fs::open(name, OFlags::WRONLY | OFlags::NONBLOCK, Mode::empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_swapped_for_a_fifo_never_holds_a_download() {
    let server = TestServer::start().await;
    server.write("file", b"contents");
    let fifo = server.path("fifo");
    rustix::fs::mknodat(CWD, &fifo, FileType::Fifo, Mode::from_raw_mode(0o644), 0).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = std::thread::spawn({
        let (file, stop) = (server.path("file"), Arc::clone(&stop));
        move || keep_swapping(file, fifo, stop)
    });

    let mut extended = FrameClient::connect(&server).await;
    let mut classic = RawClient::connect(server.address).await;
    let (mut sent, mut refused) = (0, 0);
    for _ in 0..300 {
        let downloaded = tokio::time::timeout(HANG_GUARD, extended.download("file", 0))
            .await
            .expect("a download of a name swapped for a FIFO is answered");
        match downloaded {
            Ok((data, _)) => {
                assert_eq!(data, b"contents");
                sent += 1;
            }
            Err(Message::Failed { code, message }) => {
                assert_eq!(code, ErrorCode::IsADirectory, "{message}");
                assert!(message.starts_with("not a regular file"), "{message}");
                refused += 1;
            }
            Err(other) => panic!("unexpected answer {other:?}"),
        }
        let (payload, status) = tokio::time::timeout(HANG_GUARD, classic.download("file"))
            .await
            .expect("a classic download of it is answered too");
        match status.as_str() {
            "/" => assert_eq!(payload, &b"contents"[..]),
            status => assert_eq!(status, "error: not a regular file: file"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    eprintln!("{sent} downloads sent the file, {refused} found the FIFO");
}

#[tokio::test]
async fn the_private_directory_removed_while_serving_is_made_again() {
    let server = TestServer::start().await;
    let mut classic = RawClient::connect(server.address).await;
    let mut extended = FrameClient::connect(&server).await;
    // A cleanup job removes the server's private directory.
    std::fs::remove_dir_all(server.path(".miniftp")).unwrap();
    assert_eq!(classic.upload("a.txt", b"classic").await, "/");
    assert_eq!(
        extended.upload("b.txt", b"extended").await,
        crate::support::frames::done("/")
    );
    assert_eq!(server.read("a.txt"), b"classic");
    assert_eq!(server.read("b.txt"), b"extended");
    assert!(server.path(".miniftp/uploads").is_dir());
    assert_eq!(server.visible_entries("/"), ["a.txt", "b.txt"]);
}

#[tokio::test]
async fn an_upload_whose_private_file_is_removed_says_so_in_words() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(server.address).await;
    client.send("ul c.txt").await;
    client.write_raw(b"half of it").await;
    crate::support::wait_until("the upload has begun", || server.pending_uploads() == 1).await;
    std::fs::remove_dir_all(server.path(".miniftp")).unwrap();
    client.write_raw(&client.framed(b", then the rest")).await;
    assert_eq!(
        client.receive().await,
        "error: the server's private directory was removed during the upload; send it again: c.txt"
    );
    assert!(!server.exists("c.txt"));
    // And the next one goes through.
    assert_eq!(client.upload("c.txt", b"again").await, "/");
    assert_eq!(server.read("c.txt"), b"again");
}
