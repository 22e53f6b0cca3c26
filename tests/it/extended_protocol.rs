//! The extended protocol at the frame level, against the in-process server:
//! negotiation, every request, verified and resumed transfers, pipelining.

use bytes::BytesMut;
use miniftp::operation::Operation;
use miniftp::protocol::extended::{
    ErrorCode, HEADER_LEN, Header, Kind, Message, upgrade_accepted, upgrade_request,
};
use std::time::Duration;

use crate::support::frames::{FrameClient, done, encode_upload, failure_code};
use crate::support::{RawClient, TestServer, pseudo_random_bytes, wait_until};

#[tokio::test]
async fn an_unknown_upgrade_version_is_an_ordinary_error_and_classic_goes_on() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(server.address).await;
    let status = client.command("x-miniftp-extended 99").await;
    assert!(status.starts_with("error: unknown command"), "{status}");
    assert_eq!(client.command("mkdir still-classic").await, "/");
}

#[tokio::test]
async fn directories_listing_and_stat() {
    let server = TestServer::start().await;
    server.write("b.txt", b"hello");
    let mut client = FrameClient::connect(&server).await;
    let made = client
        .request(Message::Request(Operation::MakeDirectory {
            path: "x/y/z".into(),
            parents: true,
        }))
        .await;
    assert_eq!(made, done("/"));
    // An existing directory is fine with parents, an error without.
    let again = Message::Request(Operation::MakeDirectory {
        path: "x/y/z".into(),
        parents: true,
    });
    assert_eq!(client.request(again).await, done("/"));
    let strict = Message::Request(Operation::MakeDirectory {
        path: "x".into(),
        parents: false,
    });
    assert_eq!(
        failure_code(&client.request(strict).await),
        ErrorCode::AlreadyExists
    );
    let moved = client
        .request(Message::Request(Operation::ChangeDirectory {
            path: "x/y".into(),
        }))
        .await;
    assert_eq!(moved, done("/x/y"));

    let listing = client
        .request(Message::Request(Operation::List { path: "/".into() }))
        .await;
    let Message::Listing(entries) = listing else {
        panic!("expected a listing, got {listing:?}");
    };
    let mut names: Vec<_> = entries
        .iter()
        .map(|entry| (entry.name.as_str(), entry.is_directory(), entry.size))
        .collect();
    // In the order the server reads the directory.
    names.sort();
    assert_eq!(names, [("b.txt", false, 5), ("x", true, 0)]);
    assert!(entries.iter().all(|entry| entry.modified.is_some()));
    assert_eq!(
        client.receive().await.1,
        done("/x/y"),
        "a listing ends with done"
    );

    let stat = client
        .request(Message::Request(Operation::Stat {
            path: "/b.txt".into(),
        }))
        .await;
    let Message::Entry(entry) = stat else {
        panic!("expected an entry, got {stat:?}");
    };
    assert_eq!(
        (entry.name.as_str(), entry.size, entry.is_directory()),
        ("b.txt", 5, false)
    );
    let missing = client
        .request(Message::Request(Operation::Stat {
            path: "nope".into(),
        }))
        .await;
    assert_eq!(failure_code(&missing), ErrorCode::NotFound);
}

#[tokio::test]
async fn recursive_remove_takes_the_tree_and_keeps_the_root() {
    let server = TestServer::start().await;
    server.write("tree/a/b/c.txt", b"c");
    server.write("tree/d.txt", b"d");
    let mut client = FrameClient::connect(&server).await;
    let plain = Message::Request(Operation::Remove {
        path: "tree".into(),
        recursive: false,
    });
    assert_eq!(
        failure_code(&client.request(plain).await),
        ErrorCode::NotEmpty
    );
    let recursive = Message::Request(Operation::Remove {
        path: "tree".into(),
        recursive: true,
    });
    assert_eq!(client.request(recursive).await, done("/"));
    assert!(!server.exists("tree"));
    let root = Message::Request(Operation::Remove {
        path: "/".into(),
        recursive: true,
    });
    assert_eq!(
        failure_code(&client.request(root).await),
        ErrorCode::PermissionDenied
    );
    let escape = Message::Request(Operation::Remove {
        path: ".miniftp".into(),
        recursive: true,
    });
    assert_eq!(
        failure_code(&client.request(escape).await),
        ErrorCode::InvalidPath
    );
    assert!(server.path(".miniftp").exists());
}

#[tokio::test]
async fn a_file_containing_the_token_travels_intact() {
    let server = TestServer::start().await;
    let mut classic = RawClient::connect(server.address).await;
    let token = *classic.connection.token().as_bytes();
    assert_eq!(
        classic.command(&upgrade_request()).await,
        upgrade_accepted()
    );
    let mut client = FrameClient::from_upgraded(classic.connection);
    let mut data = pseudo_random_bytes(100_000, 3);
    data[50_000..50_010].copy_from_slice(&token);
    assert_eq!(client.upload("tokened.bin", &data).await, done("/"));
    assert_eq!(server.read("tokened.bin"), data);
    let (downloaded, digest) = client.download("tokened.bin", 0).await.unwrap();
    assert_eq!(downloaded, data);
    assert_eq!(&digest, blake3::hash(&data).as_bytes());
}

#[tokio::test]
async fn transfers_of_many_sizes_round_trip() {
    let server = TestServer::start().await;
    let mut client = FrameClient::connect(&server).await;
    for (index, size) in [0usize, 1, 13, 65_536, 1_048_579, 5_000_000]
        .into_iter()
        .enumerate()
    {
        let data = pseudo_random_bytes(size, index as u64);
        let name = format!("file{index}");
        assert_eq!(client.upload(&name, &data).await, done("/"));
        assert_eq!(server.read(&name), data, "stored {size}");
        let (downloaded, _) = client.download(&name, 0).await.unwrap();
        assert_eq!(downloaded.len(), size);
        assert!(downloaded == data, "downloaded {size}");
    }
}

#[tokio::test]
async fn a_digest_mismatch_stores_nothing() {
    let server = TestServer::start().await;
    server.write("keep.txt", b"old content");
    let mut client = FrameClient::connect(&server).await;
    let data = pseudo_random_bytes(10_000, 9);
    let id = client.id();
    client
        .send(
            id,
            Message::Request(Operation::Upload {
                path: "keep.txt".into(),
                size: Some(data.len() as u64),
                resume: false,
            }),
        )
        .await;
    let mut corrupted = data.clone();
    corrupted[1234] ^= 0x40;
    client.send_data(id, &corrupted).await;
    let digest = *blake3::hash(&data).as_bytes();
    client.send(id, Message::End { digest }).await;
    let (_, reply) = client.receive().await;
    assert_eq!(failure_code(&reply), ErrorCode::DigestMismatch);
    assert_eq!(server.read("keep.txt"), b"old content");
    assert_eq!(server.pending_uploads(), 0);
    // The connection is still in step.
    assert_eq!(client.upload("keep.txt", &data).await, done("/"));
    assert_eq!(server.read("keep.txt"), data);
}

#[tokio::test]
async fn a_refused_upload_skips_its_data_and_the_stream_stays_in_step() {
    let server = TestServer::start().await;
    server.write("dir/inside.txt", b"x");
    let mut client = FrameClient::connect(&server).await;
    let reply = client.upload("dir", b"cannot replace a directory").await;
    assert_eq!(failure_code(&reply), ErrorCode::IsADirectory);
    assert_eq!(client.upload("ok.txt", b"fine").await, done("/"));
}

#[tokio::test]
async fn an_interrupted_upload_resumes_where_it_stopped() {
    let server = TestServer::start().await;
    let data = pseudo_random_bytes(3_000_000, 21);
    let digest = *blake3::hash(&data).as_bytes();
    for cut in [0usize, 1, 777_777, 2_999_999] {
        let name = format!("big{cut}.bin");
        {
            let mut client = FrameClient::connect(&server).await;
            let id = client.id();
            let upload = Message::Request(Operation::Upload {
                path: name.clone(),
                size: Some(data.len() as u64),
                resume: true,
            });
            client.send(id, upload).await;
            assert_eq!(client.receive().await.1, Message::UploadFrom { offset: 0 });
            // A data frame announcing everything, cut off after `cut` bytes
            // (mid-frame), then the connection drops.
            let header = Header {
                kind: Kind::Data,
                id,
                length: data.len() as u64,
            };
            client.connection.write_raw(&header.encode()).await.unwrap();
            client.connection.write_raw(&data[..cut]).await.unwrap();
            // Half-close: to the server this looks like a killed client.
            client.connection.close_gracefully(Duration::ZERO).await;
            // Wait until the server has seen the end of this connection.
            assert!(
                client
                    .connection
                    .read_header()
                    .await
                    .map(|h| h.is_none())
                    .unwrap_or(true)
            );
        }
        assert!(
            !server.exists(&name),
            "nothing visible after the cut at {cut}"
        );
        let mut client = FrameClient::connect(&server).await;
        let id = client.id();
        let upload = Message::Request(Operation::Upload {
            path: name.clone(),
            size: Some(data.len() as u64),
            resume: true,
        });
        client.send(id, upload).await;
        let (_, reply) = client.receive().await;
        let Message::UploadFrom { offset } = reply else {
            panic!("expected an offset, got {reply:?}");
        };
        assert_eq!(offset as usize, cut, "resumes from what arrived");
        client.send_data(id, &data[offset as usize..]).await;
        client.send(id, Message::End { digest }).await;
        assert_eq!(client.receive().await.1, done("/"));
        assert!(
            server.read(&name) == data,
            "identical after resume at {cut}"
        );
    }
}

#[tokio::test]
async fn a_download_resumes_from_an_offset_with_the_whole_files_digest() {
    let server = TestServer::start().await;
    let data = pseudo_random_bytes(500_000, 5);
    server.write("d.bin", &data);
    let mut client = FrameClient::connect(&server).await;
    let (tail, digest) = client.download("d.bin", 123_456).await.unwrap();
    assert_eq!(tail, &data[123_456..]);
    assert_eq!(&digest, blake3::hash(&data).as_bytes());
    let past = client.download("d.bin", 500_001).await.unwrap_err();
    assert_eq!(failure_code(&past), ErrorCode::BadRequest);
    let directory = client.download("/", 0).await.unwrap_err();
    assert_eq!(failure_code(&directory), ErrorCode::IsADirectory);
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let server = TestServer::start().await;
    server.write("f.txt", b"12345");
    let mut client = FrameClient::connect(&server).await;
    let mut batch = BytesMut::new();
    for id in 0..1000u32 {
        let path = if id % 10 == 0 { "missing" } else { "f.txt" };
        Message::Request(Operation::Stat { path: path.into() }).encode(id, &mut batch);
    }
    client.connection.write_raw(&batch).await.unwrap();
    for id in 0..1000u32 {
        let (reply_id, reply) = client.receive().await;
        assert_eq!(reply_id, id);
        match reply {
            Message::Entry(entry) => assert_eq!((id % 10 != 0, entry.size), (true, 5)),
            Message::Failed { code, .. } => assert_eq!((id % 10, code), (0, ErrorCode::NotFound)),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_malformed_frame_gets_an_error_before_the_close() {
    let server = TestServer::start().await;
    let mut client = FrameClient::connect(&server).await;
    client
        .connection
        .write_raw(&[0xee; HEADER_LEN])
        .await
        .unwrap();
    let (_, reply) = client.receive().await;
    assert_eq!(failure_code(&reply), ErrorCode::BadRequest);
    assert!(
        client.connection.read_header().await.unwrap().is_none(),
        "then the server closes"
    );
}

#[tokio::test]
async fn an_oversized_message_is_refused_without_allocating() {
    let server = TestServer::start().await;
    let mut client = FrameClient::connect(&server).await;
    let header = Header {
        kind: Kind::List,
        id: 1,
        length: u64::MAX,
    };
    client.connection.write_raw(&header.encode()).await.unwrap();
    let (_, reply) = client.receive().await;
    assert_eq!(failure_code(&reply), ErrorCode::BadRequest);
}

#[tokio::test]
async fn pipelined_uploads_are_committed_as_a_group_and_all_acknowledged() {
    let server = TestServer::start().await;
    let mut client = FrameClient::connect(&server).await;
    let mut batch = BytesMut::new();
    for id in 0..300u32 {
        encode_upload(
            &mut batch,
            id,
            &format!("f{id}"),
            &pseudo_random_bytes(4096, id.into()),
        );
    }
    client.connection.write_raw(&batch).await.unwrap();
    for id in 0..300u32 {
        assert_eq!(client.receive().await, (id, done("/")));
    }
    for id in 0..300u32 {
        assert!(
            server.read(&format!("f{id}")) == pseudo_random_bytes(4096, id.into()),
            "f{id}"
        );
    }
    assert_eq!(server.pending_uploads(), 0);
}

#[tokio::test]
async fn an_upload_whose_commit_fails_is_answered_with_the_failure() {
    let server = TestServer::start().await;
    server.write("d/keep.txt", b"");
    let mut client = FrameClient::connect(&server).await;
    client
        .send(
            1,
            Message::Request(Operation::Upload {
                path: "d/x".into(),
                size: Some(4),
                resume: false,
            }),
        )
        .await;
    client.send_data(1, b"data").await;
    // Its private file exists: the target was checked. Then the directory
    // it goes to disappears before the end frame (and a request behind it,
    // so that it waits for a group commit) arrives.
    wait_until("the upload has started", || server.pending_uploads() == 1).await;
    std::fs::remove_dir_all(server.path("d")).unwrap();
    let mut batch = BytesMut::new();
    Message::End {
        digest: *blake3::hash(b"data").as_bytes(),
    }
    .encode(1, &mut batch);
    Message::Request(Operation::Stat { path: "/".into() }).encode(2, &mut batch);
    client.connection.write_raw(&batch).await.unwrap();
    let (id, reply) = client.receive().await;
    assert_eq!((id, failure_code(&reply)), (1, ErrorCode::NotFound));
    assert!(matches!(client.receive().await, (2, Message::Entry(_))));
    assert!(!server.exists("d"));
    assert_eq!(server.pending_uploads(), 0);
}

#[tokio::test]
async fn data_beyond_the_declared_size_is_dropped_and_the_upload_fails() {
    let server = TestServer::start().await;
    let mut client = FrameClient::connect(&server).await;
    let id = client.id();
    let upload = Message::Request(Operation::Upload {
        path: "small.bin".into(),
        size: Some(10),
        resume: false,
    });
    client.send(id, upload).await;
    let flood = pseudo_random_bytes(1 << 20, 4);
    client.send_data(id, &flood[..10]).await;
    client.send_data(id, &flood).await;
    client
        .send(
            id,
            Message::End {
                digest: *blake3::hash(&flood[..10]).as_bytes(),
            },
        )
        .await;
    let (_, reply) = client.receive().await;
    assert_eq!(failure_code(&reply), ErrorCode::BadRequest);
    assert!(!server.exists("small.bin"));
    assert_eq!(server.pending_uploads(), 0);
    assert_eq!(client.upload("after.txt", b"in step").await, done("/"));
}

#[tokio::test]
async fn a_foreign_frame_inside_an_upload_is_refused_before_the_close() {
    let server = TestServer::start().await;
    server.write("keep.txt", b"old");
    let mut client = FrameClient::connect(&server).await;
    let mut batch = BytesMut::new();
    Message::Request(Operation::Upload {
        path: "keep.txt".into(),
        size: Some(5),
        resume: false,
    })
    .encode(1, &mut batch);
    Message::Request(Operation::Stat {
        path: "keep.txt".into(),
    })
    .encode(2, &mut batch);
    client.connection.write_raw(&batch).await.unwrap();
    let (id, reply) = client.receive().await;
    assert_eq!((id, failure_code(&reply)), (0, ErrorCode::BadRequest));
    assert!(
        client.connection.read_header().await.unwrap().is_none(),
        "then the server closes"
    );
    assert_eq!(server.read("keep.txt"), b"old");
}

#[tokio::test]
async fn names_with_control_characters_travel_in_frames_but_never_in_classic_lines() {
    let server = TestServer::start().await;
    let mut client = FrameClient::connect(&server).await;
    for name in ["new\nline.txt", "tab\there", "esc\u{1b}[31mred"] {
        assert_eq!(
            client.upload(name, name.as_bytes()).await,
            done("/"),
            "{name:?}"
        );
        assert_eq!(server.read(name), name.as_bytes());
        let (data, _) = client.download(name, 0).await.unwrap();
        assert_eq!(data, name.as_bytes());
    }
    let made = Message::Request(Operation::MakeDirectory {
        path: "dir\u{7f}".into(),
        parents: false,
    });
    assert_eq!(client.request(made).await, done("/"));
    let listing = client
        .request(Message::Request(Operation::List { path: "/".into() }))
        .await;
    let Message::Listing(entries) = listing else {
        panic!("expected a listing, got {listing:?}");
    };
    assert_eq!(entries.len(), 4);
    assert!(entries.iter().any(|entry| entry.name == "new\nline.txt"));
    assert_eq!(client.receive().await.1, done("/"), "the listing's end");
    // NUL is no name anywhere; the private directory stays private.
    let nul = client.upload("nul\0", b"x").await;
    assert_eq!(failure_code(&nul), ErrorCode::InvalidPath);
    // The classic protocol keeps refusing them (they would forge lines),
    // and its welcome shows them escaped.
    let mut classic = RawClient::connect(server.address).await;
    assert!(
        classic.welcome.contains("-- new\\nline.txt"),
        "{}",
        classic.welcome
    );
    let (_, status) = classic.download("tab\there").await;
    assert!(status.starts_with("error: invalid name"), "{status}");
}
