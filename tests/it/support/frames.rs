//! A client that speaks raw extended-protocol frames, written from
//! `docs/PROTOCOL.md`, for exercising the server precisely.

use bytes::BytesMut;
use miniftp::connection::Connection;
use miniftp::operation::Operation;
use miniftp::protocol::extended::{
    DIGEST_LEN, ErrorCode, Header, Kind, Message, upgrade_accepted, upgrade_request,
};
use tokio::net::TcpStream;

use super::{RawClient, TestServer};

/// A client that speaks raw frames, for exercising the server precisely.
pub struct FrameClient {
    pub connection: Connection<TcpStream>,
    next_id: u32,
}

impl FrameClient {
    pub async fn connect(server: &TestServer) -> FrameClient {
        let mut classic = RawClient::connect(server.address).await;
        assert_eq!(
            classic.command(&upgrade_request()).await,
            upgrade_accepted()
        );
        FrameClient::from_upgraded(classic.connection)
    }

    /// Wraps a connection that has just switched to frames.
    pub fn from_upgraded(connection: Connection<TcpStream>) -> FrameClient {
        FrameClient {
            connection,
            next_id: 1,
        }
    }

    pub fn id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    pub async fn send(&mut self, id: u32, message: Message) {
        let mut out = BytesMut::new();
        message.encode(id, &mut out);
        self.connection.write_raw(&out).await.unwrap();
    }

    pub async fn send_data(&mut self, id: u32, data: &[u8]) {
        let header = Header {
            kind: Kind::Data,
            id,
            length: data.len() as u64,
        };
        self.connection.write_raw(&header.encode()).await.unwrap();
        self.connection.write_raw(data).await.unwrap();
    }

    /// Reads one non-data frame.
    pub async fn receive(&mut self) -> (u32, Message) {
        let header = self
            .connection
            .read_header()
            .await
            .unwrap()
            .expect("a frame");
        assert_ne!(header.kind, Kind::Data, "unexpected data frame");
        let body = self.connection.read_body(header.length).await.unwrap();
        (header.id, Message::decode(header.kind, &body).unwrap())
    }

    pub async fn request(&mut self, message: Message) -> Message {
        let id = self.id();
        self.send(id, message).await;
        let (reply_id, reply) = self.receive().await;
        assert_eq!(reply_id, id);
        reply
    }

    pub async fn upload(&mut self, path: &str, data: &[u8]) -> Message {
        let id = self.id();
        self.send(
            id,
            Message::Request(Operation::Upload {
                path: path.into(),
                size: Some(data.len() as u64),
                resume: false,
            }),
        )
        .await;
        self.send_data(id, data).await;
        self.send(
            id,
            Message::End {
                digest: *blake3::hash(data).as_bytes(),
            },
        )
        .await;
        self.receive().await.1
    }

    /// Downloads from `offset`; returns the bytes and the digest sent.
    pub async fn download(
        &mut self,
        path: &str,
        offset: u64,
    ) -> Result<(Vec<u8>, [u8; DIGEST_LEN]), Message> {
        let id = self.id();
        self.send(
            id,
            Message::Request(Operation::Download {
                path: path.into(),
                offset,
            }),
        )
        .await;
        match self.receive().await.1 {
            Message::Sending { size, offset: from } => assert_eq!(from, offset, "size {size}"),
            other => return Err(other),
        }
        let header = self.connection.read_header().await.unwrap().unwrap();
        assert_eq!((header.kind, header.id), (Kind::Data, id));
        let mut data = Vec::new();
        self.connection
            .read_data(header.length, &mut data, |_| {})
            .await
            .unwrap()
            .unwrap();
        match self.receive().await {
            (reply_id, Message::End { digest }) if reply_id == id => Ok((data, digest)),
            other => panic!("expected the end frame, got {other:?}"),
        }
    }
}

pub fn done(directory: &str) -> Message {
    Message::Done {
        directory: directory.into(),
    }
}

pub fn failure_code(message: &Message) -> ErrorCode {
    match message {
        Message::Failed { code, .. } => *code,
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// Appends an upload's three frames (request, data, end) to `batch`.
pub fn encode_upload(batch: &mut BytesMut, id: u32, path: &str, data: &[u8]) {
    Message::Request(Operation::Upload {
        path: path.into(),
        size: Some(data.len() as u64),
        resume: false,
    })
    .encode(id, batch);
    let header = Header {
        kind: Kind::Data,
        id,
        length: data.len() as u64,
    };
    batch.extend_from_slice(&header.encode());
    batch.extend_from_slice(data);
    Message::End {
        digest: *blake3::hash(data).as_bytes(),
    }
    .encode(id, batch);
}
