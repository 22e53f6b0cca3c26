//! The only code that touches a connection's bytes.
//!
//! A [`Connection`] owns the stream and a bounded read buffer, and turns
//! bytes into classic messages and back. It is generic over the stream, so
//! that TLS or an in-memory duplex in a test slots in. Message bodies that may
//! be large (uploads, downloads) are streamed, never held whole.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::protocol::extended::{FrameError, HEADER_LEN, Header};
use crate::protocol::frame::{TokenDetector, TokenScanner};
use crate::protocol::{TOKEN_LEN, Token};

mod recycling;
mod wait_limit;
pub use recycling::{ChunkRecycler, ChunkReturn};
use wait_limit::WaitLimit;

/// How much is read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;

/// How much is read at a time while file data streams in, unless the
/// reader asks for slices of another size ([`Connection::read_data_chunk`]).
/// Bounded because every connection may be streaming at once (1,000
/// uploads hold 256 MiB).
pub const DATA_CHUNK: usize = 256 * 1024;

/// How much of a file is read at a time when sending it (1,000 downloads at
/// once hold 64 MiB of these).
const SEND_CHUNK: usize = 64 * 1024;

/// Why a connection could not produce or send a message.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The peer closed the connection in the middle of a message.
    #[error("connection closed in the middle of a message")]
    ClosedMidMessage,
    /// A message grew past its limit without a token.
    #[error("message longer than {limit} bytes")]
    TooLong {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// An extended-protocol frame is malformed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The peer's first bytes are not a token.
    #[error("the server did not send a valid token")]
    BadToken,
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Why an upload payload was received but not kept.
#[derive(Debug)]
pub enum PayloadFailure {
    /// It grew past the configured limit; the rest was discarded.
    TooLarge,
    /// The sink failed (e.g. a full disk); the rest was discarded.
    Sink(io::Error),
}

/// What became of a streamed payload message.
#[derive(Debug)]
pub struct PayloadReceipt {
    /// Bytes of payload read from the peer (kept or not).
    pub received: u64,
    /// Why the payload was not fully written to the sink, if it was not.
    pub failure: Option<PayloadFailure>,
}

/// A classic-protocol connection: a stream, its token, and a read buffer.
pub struct Connection<S> {
    stream: S,
    token: Token,
    buffer: BytesMut,
    scanner: TokenScanner,
    /// The longest wait for the next bytes before a read fails with
    /// `TimedOut`; `None` waits forever.
    read_timeout: Option<Duration>,
    /// The one timer behind every bounded wait.
    waits: WaitLimit,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Wraps a stream whose token is already known (the server drew it).
    pub fn new(stream: S, token: Token) -> Connection<S> {
        Connection {
            stream,
            scanner: TokenScanner::new(&token),
            token,
            buffer: BytesMut::with_capacity(READ_CHUNK),
            read_timeout: None,
            waits: WaitLimit::default(),
        }
    }

    /// Bounds every wait for the peer: for its next bytes, and for it to
    /// take what we send (an idle timeout).
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.read_timeout = timeout;
    }

    /// Reads the token a server sends first and wraps the stream (client side).
    pub async fn accept_token(mut stream: S) -> Result<Connection<S>, ConnectionError> {
        let mut buffer = BytesMut::with_capacity(READ_CHUNK);
        while buffer.len() < TOKEN_LEN {
            if stream.read_buf(&mut buffer).await? == 0 {
                return Err(ConnectionError::BadToken);
            }
        }
        let token = Token::parse(&buffer[..TOKEN_LEN]).ok_or(ConnectionError::BadToken)?;
        buffer.advance(TOKEN_LEN);
        let mut connection = Connection::new(stream, token);
        connection.buffer = buffer;
        Ok(connection)
    }

    /// This connection's token.
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// The underlying stream.
    pub fn stream(&self) -> &S {
        &self.stream
    }

    /// Gives the stream back with the bytes read from it but not consumed
    /// (e.g. to split it into halves after switching protocols).
    pub fn into_parts(self) -> (S, BytesMut) {
        (self.stream, self.buffer)
    }

    /// Whether bytes of a further message have already arrived.
    pub fn has_buffered_input(&self) -> bool {
        !self.buffer.is_empty()
    }

    /// Reads one whole message of at most `limit` bytes (token excluded).
    /// Returns `None` when the peer closed cleanly between messages.
    pub async fn read_message(&mut self, limit: usize) -> Result<Option<Bytes>, ConnectionError> {
        loop {
            if let Some(end) = self.scanner.find(&self.buffer) {
                if end > limit {
                    return Err(ConnectionError::TooLong { limit });
                }
                let message = self.buffer.split_to(end).freeze();
                self.buffer.advance(TOKEN_LEN);
                self.scanner.consumed(end + TOKEN_LEN);
                return Ok(Some(message));
            }
            if TokenScanner::safe_prefix(self.buffer.len()) > limit {
                return Err(ConnectionError::TooLong { limit });
            }
            if self.fill().await? == 0 {
                return match self.buffer.is_empty() {
                    true => Ok(None),
                    false => Err(ConnectionError::ClosedMidMessage),
                };
            }
        }
    }

    /// Streams one message into `sink` without holding it whole. Past
    /// `limit` bytes, or once the sink fails, the rest is read and
    /// discarded, so that the stream stays in step.
    pub async fn read_payload<W: AsyncWrite + Unpin>(
        &mut self,
        sink: &mut W,
        limit: Option<u64>,
    ) -> Result<PayloadReceipt, ConnectionError> {
        let mut receipt = PayloadReceipt {
            received: 0,
            failure: None,
        };
        loop {
            let found = self.scanner.find(&self.buffer);
            let take = found.unwrap_or_else(|| TokenScanner::safe_prefix(self.buffer.len()));
            if take > 0 {
                let chunk = self.buffer.split_to(take);
                self.scanner.consumed(take);
                receipt.received += take as u64;
                if receipt.failure.is_none() {
                    if limit.is_some_and(|limit| receipt.received > limit) {
                        receipt.failure = Some(PayloadFailure::TooLarge);
                    } else if let Err(error) = sink.write_all(&chunk).await {
                        receipt.failure = Some(PayloadFailure::Sink(error));
                    }
                }
            }
            if found.is_some() {
                self.buffer.advance(TOKEN_LEN);
                self.scanner.consumed(TOKEN_LEN);
                if receipt.failure.is_none()
                    && let Err(error) = sink.flush().await
                {
                    receipt.failure = Some(PayloadFailure::Sink(error));
                }
                return Ok(receipt);
            }
            if self.fill().await? == 0 {
                return Err(ConnectionError::ClosedMidMessage);
            }
        }
    }

    /// Writes a whole message (body and token) in one write.
    pub async fn write_message(&mut self, body: &[u8]) -> io::Result<()> {
        let mut message = Vec::with_capacity(body.len() + TOKEN_LEN);
        message.extend_from_slice(body);
        message.extend_from_slice(self.token.as_bytes());
        self.write_raw(&message).await
    }

    /// Writes raw bytes: part of a message whose token comes later.
    pub async fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        let stream = &mut self.stream;
        self.waits
            .bound(self.read_timeout, async {
                stream.write_all(bytes).await?;
                stream.flush().await
            })
            .await
    }

    /// Writes the token alone, ending the message in progress.
    pub async fn write_token(&mut self) -> io::Result<()> {
        let token = *self.token.as_bytes();
        self.write_raw(&token).await
    }

    /// Streams `reader` to the peer as (part of) a message body.
    /// A peer that reads nothing for the idle timeout ends the copy with
    /// `TimedOut`: a stalled reader cannot hold the connection forever.
    /// `sent` counts the bytes as they go, so that a copy that fails says
    /// how far it got.
    pub async fn write_from<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
        sent: &mut u64,
    ) -> io::Result<()> {
        let mut chunk = vec![0u8; SEND_CHUNK];
        loop {
            let read = reader.read(&mut chunk).await?;
            if read == 0 {
                return Ok(());
            }
            self.write_raw(&chunk[..read]).await?;
            *sent += read as u64;
        }
    }

    /// Closes gracefully: shuts down the sending side so the peer reads
    /// everything sent and then EOF, and discards its input for up to
    /// `linger`, so that unread input does not turn the close into a reset
    /// that would destroy what the peer has not read yet.
    pub async fn close_gracefully(&mut self, linger: Duration) {
        // Over TLS shutting down writes a last record: a peer that reads
        // nothing must not hold it up for longer than the linger either.
        if !matches!(
            tokio::time::timeout(linger, self.stream.shutdown()).await,
            Ok(Ok(()))
        ) {
            return;
        }
        let drain = async {
            loop {
                self.buffer.clear();
                self.buffer.reserve(READ_CHUNK);
                match self.stream.read_buf(&mut self.buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        };
        let _ = tokio::time::timeout(linger, drain).await;
    }

    /// Reads the next extended-protocol frame header. Returns `None` when
    /// the peer closed cleanly between frames; an unknown kind or an
    /// oversized message body is refused here, before any allocation.
    pub async fn read_header(&mut self) -> Result<Option<Header>, ConnectionError> {
        while self.buffer.len() < HEADER_LEN {
            if self.fill().await? == 0 {
                return match self.buffer.is_empty() {
                    true => Ok(None),
                    false => Err(ConnectionError::ClosedMidMessage),
                };
            }
        }
        let bytes: [u8; HEADER_LEN] = self.buffer[..HEADER_LEN].try_into().expect("header length");
        let header = Header::decode(&bytes)?;
        self.buffer.advance(HEADER_LEN);
        Ok(Some(header))
    }

    /// Reads a message body whose length a header announced (and bounded).
    pub async fn read_body(&mut self, length: u64) -> Result<Bytes, ConnectionError> {
        let length =
            usize::try_from(length).map_err(|_| ConnectionError::TooLong { limit: usize::MAX })?;
        while self.buffer.len() < length {
            if self.fill().await? == 0 {
                return Err(ConnectionError::ClosedMidMessage);
            }
        }
        Ok(self.buffer.split_to(length).freeze())
    }

    /// Streams `length` bytes of a data frame into `sink`, showing each chunk
    /// to `inspect` first (to hash it). If the sink fails, the rest is read
    /// and dropped so the stream stays in step; the sink's error is returned
    /// inside.
    pub async fn read_data<W: AsyncWrite + Unpin>(
        &mut self,
        length: u64,
        sink: &mut W,
        mut inspect: impl FnMut(&[u8]),
    ) -> Result<io::Result<()>, ConnectionError> {
        let mut remaining = length;
        let mut outcome = Ok(());
        while remaining > 0 {
            if self.buffer.is_empty() && self.fill_up_to(remaining, DATA_CHUNK).await? == 0 {
                return Err(ConnectionError::ClosedMidMessage);
            }
            let take = self
                .buffer
                .len()
                .min(usize::try_from(remaining).unwrap_or(usize::MAX));
            let chunk = self.buffer.split_to(take);
            remaining -= take as u64;
            inspect(&chunk);
            if outcome.is_ok() {
                outcome = sink.write_all(&chunk).await;
            }
        }
        Ok(outcome)
    }

    /// The next chunk of a data frame of which `remaining` bytes are still
    /// to come, as owned [`Bytes`] (no copy: a chunk can go to another
    /// thread). At most `remaining` bytes; at least one. When the buffer is
    /// empty it is filled with one read of at most `slice` bytes (at least
    /// 64 KiB): the size of the chunks, for a reader that hands each to a
    /// thread.
    pub async fn read_data_chunk(
        &mut self,
        remaining: u64,
        slice: usize,
    ) -> Result<Bytes, ConnectionError> {
        if self.buffer.is_empty() && self.fill_up_to(remaining, slice).await? == 0 {
            return Err(ConnectionError::ClosedMidMessage);
        }
        let take = self
            .buffer
            .len()
            .min(usize::try_from(remaining).unwrap_or(usize::MAX));
        Ok(self.buffer.split_to(take).freeze())
    }

    /// [`Connection::read_data_chunk`], read into the memory of a chunk
    /// given back to `recycler` when this connection's buffer is spent: a
    /// chunk that goes to another thread is not allocated afresh.
    pub async fn read_data_chunk_recycled(
        &mut self,
        remaining: u64,
        recycler: &ChunkRecycler,
    ) -> Result<Bytes, ConnectionError> {
        if self.buffer.is_empty()
            && let Some(spare) = recycler.spare()
        {
            self.buffer = spare;
        }
        self.read_data_chunk(remaining, DATA_CHUNK).await
    }

    /// Reads with a larger buffer, of at most `most` bytes, when much data
    /// is expected.
    async fn fill_up_to(&mut self, expected: u64, most: usize) -> io::Result<usize> {
        let want = usize::try_from(expected)
            .unwrap_or(usize::MAX)
            .clamp(READ_CHUNK, most.max(READ_CHUNK));
        self.buffer.reserve(want);
        self.fill().await
    }

    async fn fill(&mut self) -> io::Result<usize> {
        self.buffer.reserve(READ_CHUNK);
        self.waits
            .bound(self.read_timeout, self.stream.read_buf(&mut self.buffer))
            .await
    }
}

impl Connection<crate::stream::Stream> {
    /// Sends `length` bytes of `file` from `offset`. On plain TCP this is
    /// `sendfile(2)`: straight from the page cache to the socket, through no
    /// buffer of ours; over TLS or a capped stream the bytes go through a
    /// bounded buffer. `sent` counts the bytes as they go: fewer than
    /// `length` if the file shrank meanwhile, and how far a failed sending
    /// got.
    pub async fn send_file(
        &mut self,
        file: &std::fs::File,
        offset: u64,
        length: u64,
        sent: &mut u64,
    ) -> io::Result<()> {
        if self.stream.raw_socket().is_none() {
            return self.copy_file(file, offset, length, sent).await;
        }
        self.stream
            .send_file(file, offset, length, sent, self.read_timeout)
            .await
    }

    /// [`Connection::send_file`] through two buffers that take turns: one is
    /// filled on the blocking pool while the other is written.
    async fn copy_file(
        &mut self,
        file: &std::fs::File,
        offset: u64,
        length: u64,
        sent: &mut u64,
    ) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let file = Arc::new(file.try_clone()?);
        let end = offset.saturating_add(length);
        let read_ahead = |mut chunk: Vec<u8>, position: u64| {
            let file = Arc::clone(&file);
            let wanted = usize::try_from(end - position)
                .unwrap_or(usize::MAX)
                .min(DATA_CHUNK);
            chunk.resize(wanted, 0);
            tokio::task::spawn_blocking(move || {
                let read = file.read_at(&mut chunk, position)?;
                chunk.truncate(read);
                Ok::<_, io::Error>(chunk)
            })
        };
        let mut position = offset;
        let mut spare = Vec::with_capacity(DATA_CHUNK);
        let mut next =
            (position < end).then(|| read_ahead(Vec::with_capacity(DATA_CHUNK), position));
        while let Some(reading) = next.take() {
            let chunk = reading.await.map_err(io::Error::other)??;
            if chunk.is_empty() {
                break;
            }
            let after = position + chunk.len() as u64;
            if after < end {
                next = Some(read_ahead(std::mem::take(&mut spare), after));
            }
            self.write_raw(&chunk).await?;
            spare = chunk;
            position = after;
            *sent = position - offset;
        }
        Ok(())
    }
}

/// Whether a body read to its end contains `token`, in which case it cannot
/// travel as a classic message (the receiver would cut it short there).
/// Server and client both check before sending a file classically.
pub async fn contains_token<R: AsyncRead + Unpin>(
    reader: &mut R,
    token: &Token,
) -> io::Result<bool> {
    let mut detector = TokenDetector::new(token);
    let mut buffer = vec![0u8; SEND_CHUNK];
    loop {
        let read = reader.read(&mut buffer).await?;
        if read == 0 {
            return Ok(false);
        }
        if detector.feed(&buffer[..read]) {
            return Ok(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    fn token() -> Token {
        Token::parse(b"<Ab3X9kQw>").unwrap()
    }

    #[tokio::test]
    async fn reads_several_messages_from_one_write_and_split_writes() {
        let (client, server) = duplex(64);
        let mut connection = Connection::new(server, token());
        let writer = tokio::spawn(async move {
            let mut client = client;
            client
                .write_all(b"cd a<Ab3X9kQw>mkdir b<Ab3")
                .await
                .unwrap();
            client.write_all(b"X9kQw>").await.unwrap();
        });
        assert_eq!(connection.read_message(100).await.unwrap().unwrap(), "cd a");
        assert_eq!(
            connection.read_message(100).await.unwrap().unwrap(),
            "mkdir b"
        );
        writer.await.unwrap();
        assert!(connection.read_message(100).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn an_over_long_message_is_an_error_without_growth() {
        let (mut client, server) = duplex(1 << 16);
        let mut connection = Connection::new(server, token());
        client.write_all(&[b'x'; 5000]).await.unwrap();
        let error = connection.read_message(1000).await.unwrap_err();
        assert!(matches!(error, ConnectionError::TooLong { limit: 1000 }));
        assert!(connection.buffer.len() < 1000 + READ_CHUNK);
    }

    #[tokio::test]
    async fn a_message_of_exactly_the_limit_is_accepted() {
        let (mut client, server) = duplex(1 << 16);
        let mut connection = Connection::new(server, token());
        let mut message = vec![b'x'; 1000];
        message.extend_from_slice(token().as_bytes());
        client.write_all(&message).await.unwrap();
        assert_eq!(
            connection.read_message(1000).await.unwrap().unwrap().len(),
            1000
        );
    }

    #[tokio::test]
    async fn file_data_comes_in_slices_of_the_size_the_reader_asks() {
        let data: Vec<u8> = (0..(2 << 20) as u32).map(|i| (i % 253) as u8).collect();
        for slice in [DATA_CHUNK, 2 * DATA_CHUNK] {
            let (mut client, server) = duplex(4 << 20);
            let mut connection = Connection::new(server, token());
            client.write_all(&data).await.unwrap();
            let mut received = Vec::new();
            let mut largest = 0;
            while received.len() < data.len() {
                let remaining = (data.len() - received.len()) as u64;
                let chunk = connection.read_data_chunk(remaining, slice).await.unwrap();
                largest = largest.max(chunk.len());
                received.extend_from_slice(&chunk);
            }
            assert!(received == data, "slices of {slice}: the bytes differ");
            // Everything was there to read: each read took a whole slice.
            assert_eq!(largest, slice);
        }
    }

    #[tokio::test]
    async fn eof_mid_message_is_an_error() {
        let (mut client, server) = duplex(64);
        let mut connection = Connection::new(server, token());
        client.write_all(b"cd a<Ab3").await.unwrap();
        drop(client);
        assert!(matches!(
            connection.read_message(100).await,
            Err(ConnectionError::ClosedMidMessage)
        ));
    }

    #[tokio::test]
    async fn streams_a_payload_split_at_every_offset() {
        let body: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
        let mut wire = body.clone();
        wire.extend_from_slice(token().as_bytes());
        wire.extend_from_slice(b"next<Ab3X9kQw>");
        for split in [1, 2, 9, 10, 11, 64, 299, 305] {
            let (mut client, server) = duplex(16);
            let mut connection = Connection::new(server, token());
            let wire = wire.clone();
            let writer = tokio::spawn(async move {
                for chunk in wire.chunks(split) {
                    client.write_all(chunk).await.unwrap();
                }
            });
            let mut sink = Vec::new();
            let receipt = connection.read_payload(&mut sink, None).await.unwrap();
            assert!(receipt.failure.is_none());
            assert_eq!(receipt.received, 300);
            assert_eq!(sink, body, "split {split}");
            assert_eq!(connection.read_message(100).await.unwrap().unwrap(), "next");
            writer.await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_payload_over_the_limit_is_discarded_but_consumed() {
        let (mut client, server) = duplex(1 << 16);
        let mut connection = Connection::new(server, token());
        client.write_all(&[7u8; 100]).await.unwrap();
        client.write_all(b"<Ab3X9kQw>exit<Ab3X9kQw>").await.unwrap();
        let mut sink = Vec::new();
        let receipt = connection.read_payload(&mut sink, Some(50)).await.unwrap();
        assert!(matches!(receipt.failure, Some(PayloadFailure::TooLarge)));
        assert_eq!(receipt.received, 100);
        assert_eq!(connection.read_message(100).await.unwrap().unwrap(), "exit");
    }

    #[tokio::test]
    async fn client_side_reads_the_token_then_messages() {
        let (mut server, client) = duplex(64);
        server
            .write_all(b"<Ab3X9kQw>welcome<Ab3X9kQw>")
            .await
            .unwrap();
        let mut connection = Connection::accept_token(client).await.unwrap();
        assert_eq!(connection.token(), &token());
        assert_eq!(
            connection.read_message(100).await.unwrap().unwrap(),
            "welcome"
        );
    }

    #[tokio::test]
    async fn a_bad_token_is_refused() {
        let (mut server, client) = duplex(64);
        server.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
        assert!(matches!(
            Connection::accept_token(client).await,
            Err(ConnectionError::BadToken)
        ));
    }
}
