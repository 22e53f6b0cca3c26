//! Uploads and downloads: binary data of awkward sizes checked by hash,
//! commands and payloads in one write, pipelining, interrupted and
//! concurrent uploads, and files that contain the connection's token.

use crate::support::{RawClient, TestServer, pseudo_random_bytes, sha256, sha256_file};

const MIB: usize = 1024 * 1024;

/// Uploads `len` pseudo-random bytes, checks them on disk by hash, then
/// downloads them back and checks again.
async fn round_trip(client: &mut RawClient, server: &TestServer, len: usize, seed: u64) {
    let data = pseudo_random_bytes(len, seed);
    let name = format!("file_{len}.bin");
    let expected = sha256(&data);
    assert_eq!(client.upload(&name, &data).await, "/", "ul of {len} bytes");
    assert_eq!(
        sha256_file(&server.path(&name)),
        expected,
        "stored {len} bytes"
    );
    assert_eq!(client.info(&name).await, (len.to_string(), "/".into()));
    let (payload, status) = client.download(&name).await;
    assert_eq!(status, "/");
    assert_eq!(payload.len(), len);
    assert_eq!(sha256(&payload), expected, "downloaded {len} bytes");
}

#[tokio::test]
async fn binary_files_of_awkward_sizes_round_trip() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(server.address).await;
    for (seed, len) in [0, 1, 9, 10, 11, 1023, 1024, 1025, MIB + 3]
        .into_iter()
        .enumerate()
    {
        round_trip(&mut client, &server, len, seed as u64 + 1).await;
    }
    assert_eq!(server.pending_uploads(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifty_mebibyte_file_round_trips() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(server.address).await;
    round_trip(&mut client, &server, 50 * MIB, 42).await;
    assert_eq!(server.pending_uploads(), 0);
}

#[tokio::test]
async fn payloads_that_look_like_protocol_text_are_data() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(server.address).await;
    // Everything a payload could be confused with, short of the token itself.
    let mut tricky = b"rm x\nexit\n<AAAAAAAA>".to_vec();
    let token = client.token();
    tricky.extend_from_slice(&token.as_bytes()[..9]);
    tricky.push(b'!');
    tricky.extend_from_slice(&token.as_bytes()[1..]);
    assert_eq!(client.upload("tricky", &tricky).await, "/");
    assert_eq!(server.read("tricky"), tricky);
    let (payload, status) = client.download("tricky").await;
    assert_eq!((&payload[..], status.as_str()), (&tricky[..], "/"));
}

#[tokio::test]
async fn a_command_and_its_payload_in_one_write() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(server.address).await;
    let data = pseudo_random_bytes(100_000, 7);
    let mut wire = client.framed(b"ul together.bin");
    wire.extend_from_slice(&client.framed(&data));
    client.write_raw(&wire).await;
    assert_eq!(client.receive().await, "/");
    assert_eq!(server.read("together.bin"), data);
}

#[tokio::test]
async fn pipelined_commands_in_one_write_are_answered_in_order() {
    let server = TestServer::start().await;
    server.write("existing.txt", b"existing");
    let mut client = RawClient::connect(server.address).await;
    let data = pseudo_random_bytes(5000, 3);
    let mut wire = Vec::new();
    for message in [
        &b"mkdir a"[..],
        b"cd a",
        b"ul f.bin",
        &data,
        b"info f.bin",
        b"dl f.bin",
        b"dl ../existing.txt",
        b"bogus",
        b"dl missing",
        b"ul",
        b"ignored payload",
        b"cd ..",
        b"mv a b",
        b"info b/f.bin",
    ] {
        wire.extend_from_slice(&client.framed(message));
    }
    client.write_raw(&wire).await;
    assert_eq!(client.receive().await, "/");
    assert_eq!(client.receive().await, "/a");
    assert_eq!(client.receive().await, "/a");
    assert_eq!(client.receive().await, "5000");
    assert_eq!(client.receive().await, "/a");
    assert_eq!(client.receive_bytes().await, data);
    assert_eq!(client.receive().await, "/a");
    assert_eq!(client.receive().await, "existing");
    assert_eq!(client.receive().await, "/a");
    assert_eq!(client.receive().await, "error: unknown command: bogus");
    assert_eq!(client.receive().await, "");
    assert_eq!(
        client.receive().await,
        "error: no such file or directory: missing"
    );
    assert_eq!(client.receive().await, "error: usage: ul PATH");
    assert_eq!(client.receive().await, "/");
    assert_eq!(client.receive().await, "/");
    assert_eq!(client.receive().await, "5000");
    assert_eq!(client.receive().await, "/");
    assert_eq!(server.read("b/f.bin"), data);
}

#[tokio::test]
async fn a_message_split_into_single_bytes_is_reassembled() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(server.address).await;
    let mut wire = client.framed(b"ul slow.bin");
    wire.extend_from_slice(&client.framed(b"0123456789abc"));
    for byte in wire {
        client.write_raw(&[byte]).await;
    }
    assert_eq!(client.receive().await, "/");
    assert_eq!(server.read("slow.bin"), b"0123456789abc");
}

#[tokio::test]
async fn a_client_that_disconnects_mid_upload_leaves_nothing_behind() {
    let server = TestServer::start().await;
    server.write("old.bin", b"old content");
    let mut observer = RawClient::connect(server.address).await;
    for target in ["old.bin", "new.bin"] {
        let mut client = RawClient::connect(server.address).await;
        client.send(&format!("ul {target}")).await;
        client.write_raw(&pseudo_random_bytes(3 * MIB, 5)).await;
        // Nothing is visible while the payload is incomplete.
        assert_eq!(
            observer.info("new.bin").await,
            (
                String::new(),
                "error: no such file or directory: new.bin".into()
            )
        );
        assert_eq!(observer.info("old.bin").await, ("11".into(), "/".into()));
        drop(client);
    }
    // Stopping the server waits for every session, so the interrupted
    // uploads have been dealt with when it returns.
    assert_eq!(observer.command("cd /").await, "/");
    drop(observer);
    let root = server.stop().await;
    assert_eq!(
        std::fs::read(root.path().join("old.bin")).unwrap(),
        b"old content"
    );
    assert!(!root.path().join("new.bin").exists());
    let uploads = std::fs::read_dir(root.path().join(".miniftp/uploads"))
        .unwrap()
        .count();
    assert_eq!(uploads, 0, "no temporary file is left behind");
    let mut visible: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    visible.sort();
    assert_eq!(visible, [".miniftp", "old.bin"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_uploading_one_name_leave_exactly_one_payload() {
    let server = TestServer::start().await;
    let a = pseudo_random_bytes(2 * MIB, 11);
    let b = pseudo_random_bytes(2 * MIB + 1, 12);
    for round in 0..4 {
        let mut first = RawClient::connect(server.address).await;
        let mut second = RawClient::connect(server.address).await;
        first.send("ul same.bin").await;
        second.send("ul same.bin").await;
        // Interleave the two payloads so that both uploads are in progress
        // at once; in odd rounds the second finishes first.
        let chunks_a: Vec<&[u8]> = a.chunks(256 * 1024).collect();
        let chunks_b: Vec<&[u8]> = b.chunks(256 * 1024).collect();
        for (chunk_a, chunk_b) in chunks_a.iter().zip(&chunks_b) {
            first.write_raw(chunk_a).await;
            second.write_raw(chunk_b).await;
        }
        second.write_raw(&b[a.len()..]).await;
        let (winner, loser) = match round % 2 {
            0 => (&mut second, &mut first),
            _ => (&mut first, &mut second),
        };
        loser.write_raw(loser.token().as_bytes()).await;
        assert_eq!(loser.receive().await, "/");
        winner.write_raw(winner.token().as_bytes()).await;
        assert_eq!(winner.receive().await, "/");
        let stored = server.read("same.bin");
        let expected = if round % 2 == 0 { &b } else { &a };
        assert_eq!(
            sha256(&stored),
            sha256(expected),
            "round {round}: the last to complete wins"
        );
    }
    assert_eq!(server.visible_entries("/"), ["same.bin"]);
    assert_eq!(server.pending_uploads(), 0);
}

#[tokio::test]
async fn a_file_that_contains_the_token_is_refused_cleanly() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(server.address).await;
    let token = client.token();
    let refused = "error: the file contains this connection's token; use the extended protocol";
    let mut in_the_middle = pseudo_random_bytes(1000, 1);
    in_the_middle.extend_from_slice(token.as_bytes());
    in_the_middle.extend_from_slice(&pseudo_random_bytes(1000, 2));
    // The scan reads in large chunks: a token straddling two of them.
    let mut straddling = pseudo_random_bytes(256 * 1024 - 4, 3);
    straddling.extend_from_slice(token.as_bytes());
    straddling.extend_from_slice(b"tail");
    let files = [
        ("middle.bin", in_the_middle),
        ("exact.bin", token.as_bytes().to_vec()),
        ("start.bin", [&token.as_bytes()[..], b"rest"].concat()),
        ("end.bin", [&b"head"[..], &token.as_bytes()[..]].concat()),
        ("straddle.bin", straddling),
    ];
    for (name, contents) in &files {
        server.write(name, contents);
        let (payload, status) = client.download(name).await;
        assert_eq!(
            (&payload[..], status.as_str()),
            (&b""[..], refused),
            "dl {name}"
        );
        assert_eq!(
            client.info(name).await,
            (contents.len().to_string(), "/".into()),
            "info {name}"
        );
    }
    // Another connection has another token: the same file travels fine.
    let mut other = RawClient::connect(server.address).await;
    assert_ne!(other.token(), token);
    let (payload, status) = other.download("middle.bin").await;
    assert_eq!((&payload[..], status.as_str()), (&files[0].1[..], "/"));
    // And the refused connection is still in step.
    assert_eq!(client.command("mkdir after").await, "/");
}
