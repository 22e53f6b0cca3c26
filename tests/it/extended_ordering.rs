//! Requests pipelined behind an upload see its effect: the server handles
//! frames in the order they arrive, and `Done` for an upload means the file
//! is in place, whether or not the upload waits in a group commit.

use bytes::BytesMut;
use miniftp::operation::Operation;
use miniftp::protocol::extended::{ErrorCode, Message};

use crate::support::TestServer;
use crate::support::frames::{FrameClient, done, encode_upload, failure_code};

/// Writes `batch` in one write, or `trickle` bytes at a time.
async fn write(client: &mut FrameClient, batch: &[u8], trickle: Option<usize>) {
    match trickle {
        None => client.connection.write_raw(batch).await.unwrap(),
        Some(size) => {
            for piece in batch.chunks(size) {
                client.connection.write_raw(piece).await.unwrap();
            }
        }
    }
}

async fn rename_after_upload(trickle: Option<usize>) {
    let server = TestServer::start().await;
    server.write("a.txt", b"OLD");
    let mut client = FrameClient::connect(&server).await;
    let mut batch = BytesMut::new();
    encode_upload(&mut batch, 1, "a.txt", b"NEW");
    Message::Request(Operation::Rename {
        from: "a.txt".into(),
        to: "b.txt".into(),
    })
    .encode(2, &mut batch);
    write(&mut client, &batch, trickle).await;
    assert_eq!(client.receive().await, (1, done("/")));
    assert_eq!(client.receive().await, (2, done("/")));
    assert_eq!(
        server.read("b.txt"),
        b"NEW",
        "the rename moved the new file"
    );
    assert!(!server.exists("a.txt"));
    assert_eq!(server.pending_uploads(), 0);
}

#[tokio::test]
async fn a_rename_written_with_an_upload_moves_the_uploaded_file() {
    rename_after_upload(None).await;
}

#[tokio::test]
async fn a_rename_behind_a_trickled_upload_moves_the_uploaded_file() {
    rename_after_upload(Some(3)).await;
}

#[tokio::test]
async fn a_remove_written_with_an_upload_removes_it() {
    let server = TestServer::start().await;
    let mut client = FrameClient::connect(&server).await;
    let mut batch = BytesMut::new();
    encode_upload(&mut batch, 1, "x.txt", b"data");
    Message::Request(Operation::Remove {
        path: "x.txt".into(),
        recursive: false,
    })
    .encode(2, &mut batch);
    client.connection.write_raw(&batch).await.unwrap();
    assert_eq!(client.receive().await, (1, done("/")));
    assert_eq!(client.receive().await, (2, done("/")));
    assert!(!server.exists("x.txt"));
}

#[tokio::test]
async fn stat_download_and_list_written_with_an_upload_see_it() {
    let server = TestServer::start().await;
    server.write("seen.txt", b"OLD");
    let mut client = FrameClient::connect(&server).await;
    let mut batch = BytesMut::new();
    encode_upload(&mut batch, 1, "seen.txt", b"NEWER");
    encode_upload(&mut batch, 2, "fresh.txt", b"fresh");
    Message::Request(Operation::Stat {
        path: "fresh.txt".into(),
    })
    .encode(3, &mut batch);
    Message::Request(Operation::List { path: "/".into() }).encode(4, &mut batch);
    Message::Request(Operation::Download {
        path: "seen.txt".into(),
        offset: 0,
    })
    .encode(5, &mut batch);
    client.connection.write_raw(&batch).await.unwrap();
    assert_eq!(client.receive().await, (1, done("/")));
    assert_eq!(client.receive().await, (2, done("/")));
    match client.receive().await {
        (3, Message::Entry(entry)) => assert_eq!((entry.is_directory(), entry.size), (false, 5)),
        other => panic!("expected the entry of fresh.txt, got {other:?}"),
    }
    let mut names = Vec::new();
    loop {
        match client.receive().await {
            (4, Message::Listing(entries)) => {
                names.extend(entries.into_iter().map(|entry| entry.name));
            }
            (4, Message::Done { .. }) => break,
            other => panic!("expected the listing, got {other:?}"),
        }
    }
    names.sort();
    assert_eq!(names, ["fresh.txt", "seen.txt"]);
    match client.receive().await {
        (5, Message::Sending { size: 5, offset: 0 }) => {}
        other => panic!("expected the new file's size, got {other:?}"),
    }
}

#[tokio::test]
async fn an_upload_below_an_uploaded_file_fails_as_it_would_one_by_one() {
    let server = TestServer::start().await;
    let mut client = FrameClient::connect(&server).await;
    let mut batch = BytesMut::new();
    encode_upload(&mut batch, 1, "a", b"a file");
    encode_upload(&mut batch, 2, "a/b", b"below a file");
    client.connection.write_raw(&batch).await.unwrap();
    assert_eq!(client.receive().await, (1, done("/")));
    let (id, reply) = client.receive().await;
    assert_eq!((id, failure_code(&reply)), (2, ErrorCode::NotADirectory));
    assert_eq!(server.read("a"), b"a file");
    assert_eq!(server.pending_uploads(), 0);
}

#[tokio::test]
async fn a_mkdir_written_with_an_upload_of_that_name_finds_the_file() {
    let server = TestServer::start().await;
    let mut client = FrameClient::connect(&server).await;
    let mut batch = BytesMut::new();
    encode_upload(&mut batch, 1, "x", b"data");
    Message::Request(Operation::MakeDirectory {
        path: "x".into(),
        parents: false,
    })
    .encode(2, &mut batch);
    client.connection.write_raw(&batch).await.unwrap();
    assert_eq!(client.receive().await, (1, done("/")));
    let (id, reply) = client.receive().await;
    assert_eq!((id, failure_code(&reply)), (2, ErrorCode::AlreadyExists));
    assert_eq!(server.read("x"), b"data");
}
