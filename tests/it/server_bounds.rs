//! What a client sends bounds what the server answers and holds: errors
//! echo a bounded excerpt of a path, over-long requests are refused unread
//! (the connection goes on), and before a login only frames of a login's
//! size are taken.

use std::sync::Arc;

use bytes::BytesMut;
use miniftp::accounts::Accounts;
use miniftp::operation::Operation;
use miniftp::protocol::extended::{
    ErrorCode, Header, Kind, Message, upgrade_accepted, upgrade_request,
};
use miniftp::protocol::text::MAX_EXCERPT;
use miniftp::{Access, ServerConfig};

use crate::support::frames::{FrameClient, done, failure_code};
use crate::support::{RawClient, TestServer};

/// Reads one frame; returns it with its body's length.
async fn receive_sized(client: &mut FrameClient) -> (u32, Message, u64) {
    let header = client
        .connection
        .read_header()
        .await
        .unwrap()
        .expect("a frame");
    let body = client.connection.read_body(header.length).await.unwrap();
    let message = Message::decode(header.kind, &body).unwrap();
    (header.id, message, header.length)
}

/// The most a failure echoing a path may take: the reason, an excerpt.
const SHORT_FAILURE: u64 = 2 * 1024;

#[tokio::test]
async fn errors_echo_a_bounded_excerpt_of_a_long_odd_path() {
    let server = TestServer::start().await;
    let mut client = FrameClient::connect(&server).await;
    // Every byte escapes to four or six: unbounded, each failure would be
    // five times its request.
    let control = "\u{1}".repeat(60_000);
    client
        .send(
            1,
            Message::Request(Operation::Stat {
                path: control.clone(),
            }),
        )
        .await;
    let (id, reply, length) = receive_sized(&mut client).await;
    assert_eq!((id, failure_code(&reply)), (1, ErrorCode::InvalidPath));
    assert!(length <= SHORT_FAILURE, "a {length}-byte failure");

    let delete = "\u{7f}".repeat(30_000);
    let rename = Message::Request(Operation::Rename {
        from: delete.clone(),
        to: delete,
    });
    client.send(2, rename).await;
    let (id, reply, length) = receive_sized(&mut client).await;
    assert_eq!((id, failure_code(&reply)), (2, ErrorCode::InvalidPath));
    assert!(length <= SHORT_FAILURE, "a {length}-byte failure");

    let mut classic = RawClient::connect(server.address).await;
    let status = classic.command(&format!("cd {control}")).await;
    assert!(status.starts_with("error: "), "{status:.80}");
    assert!(
        status.len() <= MAX_EXCERPT + 100,
        "a {}-byte status",
        status.len()
    );
}

#[tokio::test]
async fn a_request_over_the_limit_is_refused_unread_and_the_connection_goes_on() {
    let server = TestServer::start().await;
    let mut client = FrameClient::connect(&server).await;
    // As long as a message may be (1 MiB with its length field).
    let huge = "\u{1}".repeat((1 << 20) - 4);
    client
        .send(1, Message::Request(Operation::Stat { path: huge.clone() }))
        .await;
    let (id, reply, length) = receive_sized(&mut client).await;
    assert_eq!((id, failure_code(&reply)), (1, ErrorCode::BadRequest));
    assert!(length <= SHORT_FAILURE);
    let Message::Failed { message, .. } = reply else {
        unreachable!()
    };
    assert!(message.starts_with("request too long"), "{message}");

    // An upload whose request is refused unread: its data and end frames
    // are dropped, with no second answer.
    let mut batch = BytesMut::new();
    Message::Request(Operation::Upload {
        path: huge[..huge.len() - 13].to_owned(),
        size: Some(4),
        resume: false,
    })
    .encode(2, &mut batch);
    let data = Header {
        kind: Kind::Data,
        id: 2,
        length: 4,
    };
    batch.extend_from_slice(&data.encode());
    batch.extend_from_slice(b"data");
    Message::End {
        digest: *blake3::hash(b"data").as_bytes(),
    }
    .encode(2, &mut batch);
    Message::Request(Operation::ChangeDirectory { path: "/".into() }).encode(3, &mut batch);
    client.connection.write_raw(&batch).await.unwrap();
    let (id, reply, _) = receive_sized(&mut client).await;
    assert_eq!((id, failure_code(&reply)), (2, ErrorCode::BadRequest));
    assert_eq!(client.receive().await, (3, done("/")));
    assert_eq!(server.visible_entries("/"), Vec::<String>::new());
}

fn accounts() -> Arc<Accounts> {
    let mut accounts = Accounts::new();
    accounts
        .add("alice", "alice's secret", None, Access::ReadWrite)
        .unwrap();
    Arc::new(accounts)
}

#[tokio::test]
async fn before_a_login_a_frame_longer_than_a_login_is_refused_and_closed() {
    let server = TestServer::start_with(ServerConfig {
        accounts: Some(accounts()),
        ..ServerConfig::default()
    })
    .await;
    let mut raw = RawClient::connect(server.address).await;
    assert_eq!(raw.command(&upgrade_request()).await, upgrade_accepted());
    let mut client = FrameClient::from_upgraded(raw.connection);
    // Half of a megabyte's login, kept half sent.
    let header = Header {
        kind: Kind::Login,
        id: 7,
        length: 1 << 20,
    };
    client.connection.write_raw(&header.encode()).await.unwrap();
    client.connection.write_raw(&[b'a'; 1000]).await.unwrap();
    let (id, reply, _) = receive_sized(&mut client).await;
    assert_eq!((id, failure_code(&reply)), (0, ErrorCode::BadRequest));
    let Message::Failed { message, .. } = reply else {
        unreachable!()
    };
    assert!(message.contains("4096 bytes"), "{message}");
    assert!(
        client.connection.read_header().await.unwrap().is_none(),
        "then the server closes"
    );

    // A login of a login's size is fine.
    let mut raw = RawClient::connect(server.address).await;
    assert_eq!(raw.command(&upgrade_request()).await, upgrade_accepted());
    let mut client = FrameClient::from_upgraded(raw.connection);
    let login = Message::Request(Operation::Login {
        user: "alice".into(),
        password: miniftp::client::Password::new("alice's secret"),
    });
    assert_eq!(client.request(login).await, done("/"));
}
