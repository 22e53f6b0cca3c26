//! One connection of the web front, and the only code of it that touches
//! the connection's bytes.
//!
//! On plain TCP (no TLS, no rate limit) the connection reads each request
//! head itself, parsed by `httparse` (hyper's own parser), bounded and
//! timed as hyper bounds and times it. A `GET` or `HEAD` is answered by
//! [`Web::handle`], as hyper's service would answer it: the same rules,
//! headers and log lines. When that answer is a file on the local disk,
//! the connection writes its head and sends the bytes by `sendfile(2)`,
//! from the page cache to the socket without a copy through our memory
//! (hyper takes bodies only as buffers). Any other answer, and any other
//! request whose end its length tells, is given to a hyper connection for
//! that one request: hyper reads exactly the request's bytes (those read
//! already, then the rest from the socket), writes the answer, and the
//! connection takes the socket back for the next request once hyper holds
//! nothing more of it. A request only hyper can delimit (chunks, an
//! upgrade, HTTP/1.0, a malformed head) hands hyper the rest of the
//! connection, with the bytes read. Over TLS or a capped stream hyper
//! serves the connection from the start.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::Request;
use axum::response::Response;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::head::{self, Head, HeadScanner};
use super::{Answer, MAX_HEAD, Web, download};
use crate::executor::Peer;
use crate::stream::Stream;

/// How much is read from the socket at a time while a head is awaited.
const READ_CHUNK: usize = 8 * 1024;

/// Serves HTTP/1.1 on one connection until it closes, or until shutdown
/// asks it to finish the request under way.
pub(super) async fn serve(web: Arc<Web>, stream: Stream, peer: Peer, shutdown: CancellationToken) {
    if stream.raw_socket().is_none() {
        return hyper(web, stream, peer, shutdown).await;
    }
    let config = &web.service.config;
    let (head_timeout, wait) = (head_timeout(config), config.idle_timeout);
    let mut connection = Plain {
        stream,
        buffer: BytesMut::with_capacity(READ_CHUNK),
        scanner: HeadScanner::default(),
    };
    loop {
        let (request, length) = match connection.read_head(head_timeout, &shutdown).await {
            Read::Head { request, length } => (request, length),
            Read::HandOver => break,
            Read::Closed => return,
        };
        let close = head::wants_close(request.headers());
        let goes_on = if head::may_answer(&request) {
            match web.handle(peer, request.map(|()| Body::empty())).await {
                Answer::File(file) if sendable(&file) => {
                    connection.buffer.advance(length);
                    let close = close || shutdown.is_cancelled();
                    connection.send(*file, close, wait).await
                }
                answer => {
                    let answer = Some(answer.into_response());
                    connection.by_hyper(&web, peer, length, 0, answer).await
                }
            }
        } else if let Some(body) = head::body_length(&request) {
            connection.by_hyper(&web, peer, length, body, None).await
        } else {
            break;
        };
        if !goes_on || close || shutdown.is_cancelled() {
            let _ = connection.stream.shutdown().await;
            return;
        }
    }
    tracing::debug!("the rest of the connection is hyper's");
    hyper(web, connection.rewound(), peer, shutdown).await
}

/// Whether the connection can send a file answer itself: its bytes (if
/// any) are in a local file.
fn sendable(file: &download::FileAnswer) -> bool {
    file.body
        .as_ref()
        .is_none_or(|transfer| transfer.local_file().is_some())
}

/// How long a request head may take to arrive, counted from when the
/// connection starts waiting for it (hyper's header read timeout).
fn head_timeout(config: &crate::ServerConfig) -> Duration {
    config.idle_timeout.min(Duration::from_secs(60))
}

/// A plain TCP connection before hyper has it: the stream, and what was
/// read of it and not yet answered.
struct Plain {
    stream: Stream,
    buffer: BytesMut,
    scanner: HeadScanner,
}

/// What waiting for a request head gave.
enum Read {
    /// A whole head of `length` bytes at the buffer's start.
    Head { request: Request<()>, length: usize },
    /// Something for hyper to answer (a malformed or over-long head).
    HandOver,
    /// The client left, took too long, or the server is shutting down.
    Closed,
}

impl Plain {
    /// Reads until the buffer starts with a whole request head, at most
    /// [`MAX_HEAD`] bytes of it, within `timeout`.
    async fn read_head(&mut self, timeout: Duration, shutdown: &CancellationToken) -> Read {
        let deadline = Instant::now() + timeout;
        loop {
            match self.scanner.scan(&self.buffer) {
                Head::Complete { request, length } => return Read::Head { request, length },
                Head::Refused => return Read::HandOver,
                Head::Partial if self.buffer.len() >= MAX_HEAD => return Read::HandOver,
                Head::Partial => {}
            }
            let room = (MAX_HEAD - self.buffer.len()).min(READ_CHUNK);
            self.buffer.reserve(room);
            let mut limited = (&mut self.buffer).limit(room);
            let read = tokio::select! {
                _ = shutdown.cancelled() => return Read::Closed,
                read = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut limited)) => read,
            };
            match read {
                Ok(Ok(0)) => return Read::Closed,
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    tracing::debug!(%error, "HTTP connection ended");
                    return Read::Closed;
                }
                Err(_) => {
                    tracing::debug!(
                        bytes = self.buffer.len(),
                        "no whole request head in time; closing"
                    );
                    return Read::Closed;
                }
            }
        }
    }

    /// Sends a file's answer: its head, then its bytes by `sendfile`, each
    /// wait for the client to take more bounded by `wait`. Whether all went
    /// (else the connection cannot go on: its head promised more).
    async fn send(&mut self, file: download::FileAnswer, close: bool, wait: Duration) -> bool {
        let head = head::encode(&file.head, close, &download::http_date(SystemTime::now()));
        let written = match tokio::time::timeout(wait, self.stream.write_all(&head)).await {
            Ok(written) => written,
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        };
        let Some(transfer) = file.body else {
            return written.is_ok();
        };
        if let Err(error) = written {
            transfer.finish(0, Some(&error));
            return false;
        }
        let (source, start) = transfer.local_file().expect("checked before");
        let length = transfer.length();
        let mut sent = 0;
        let sending = self
            .stream
            .send_file(source, start, length, &mut sent, Some(wait))
            .await;
        match &sending {
            Ok(()) => tracing::debug!(sent, length, "file sent by sendfile"),
            Err(error) => tracing::debug!(sent, length, %error, "sendfile stopped"),
        }
        transfer.finish(sent, sending.as_ref().err());
        sending.is_ok() && sent == length
    }

    /// Hyper serves one request: the head of `length` bytes at the start of
    /// the buffer and the `body` bytes after it (from the buffer, then the
    /// socket), answered `made` when the answer was made already. Whether
    /// the connection goes on (hyper may have closed it).
    async fn by_hyper(
        &mut self,
        web: &Arc<Web>,
        peer: Peer,
        length: usize,
        body: u64,
        made: Option<Response>,
    ) -> bool {
        let whole = (length as u64).saturating_add(body);
        let buffered = self
            .buffer
            .len()
            .min(usize::try_from(whole).unwrap_or(usize::MAX));
        let progress = Arc::new(Progress::default());
        let io = OneRequest {
            given: self.buffer.split_to(buffered).freeze(),
            unread: whole - buffered as u64,
            stream: &mut self.stream,
            progress: Arc::clone(&progress),
        };
        let made = Mutex::new(made);
        let service = {
            let (web, progress) = (Arc::clone(web), Arc::clone(&progress));
            hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                let (web, progress) = (Arc::clone(&web), Arc::clone(&progress));
                let made = made.lock().unwrap_or_else(PoisonError::into_inner).take();
                async move {
                    let response = match made {
                        Some(response) => response,
                        None => web
                            .handle(peer, request.map(Body::new))
                            .await
                            .into_response(),
                    };
                    Ok::<_, Infallible>(response.map(|body| Tracked { body, progress }))
                }
            })
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        // The head is read already: no timer for it.
        builder.header_read_timeout(None).max_buf_size(MAX_HEAD);
        let connection = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(connection);
        let ended = |result: hyper::Result<()>| {
            if let Err(error) = result {
                tracing::debug!(%error, "HTTP connection ended");
            }
            false
        };
        tokio::select! {
            biased;
            _ = progress.finished.notified() => {}
            result = connection.as_mut() => return ended(result),
        }
        // Hyper closes, when it does (a `Connection: close`, a body it did
        // not drain), right after its last flush: let it.
        match futures_util::poll!(connection.as_mut()) {
            Poll::Ready(result) => ended(result),
            Poll::Pending => true,
        }
    }

    /// The stream for hyper, with what was read put back in front.
    fn rewound(self) -> Rewound {
        Rewound {
            read: self.buffer.freeze(),
            stream: self.stream,
        }
    }
}

/// How far hyper is with its one request.
#[derive(Default)]
struct Progress {
    /// Hyper has let go of the answer's body: the whole answer is in its
    /// write buffer, or written.
    answered: AtomicBool,
    /// Told once hyper has read the whole request and flushed the whole
    /// answer: it holds nothing more of the connection.
    finished: Notify,
}

/// An answer's body, telling [`Progress`] when hyper drops it (after its
/// last byte, or unread for a `HEAD`).
struct Tracked {
    body: Body,
    progress: Arc<Progress>,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(context)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.progress.answered.store(true, Ordering::Release);
    }
}

/// The connection as hyper sees it for one request: the request's bytes
/// (those read already, then the rest from the socket, and no more), and
/// every write to the socket.
struct OneRequest<'a> {
    given: Bytes,
    /// The request's bytes still in the socket.
    unread: u64,
    stream: &'a mut Stream,
    progress: Arc<Progress>,
}

impl AsyncRead for OneRequest<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.given.is_empty() {
            let given = this.given.len().min(buffer.remaining());
            buffer.put_slice(&this.given[..given]);
            this.given.advance(given);
            return Poll::Ready(Ok(()));
        }
        if this.unread == 0 {
            // The next request is the connection's to read, not hyper's:
            // hyper waits here until it is dropped.
            return Poll::Pending;
        }
        let room = usize::try_from(this.unread)
            .unwrap_or(usize::MAX)
            .min(buffer.remaining());
        let mut limited = ReadBuf::new(buffer.initialize_unfilled_to(room));
        std::task::ready!(Pin::new(&mut *this.stream).poll_read(context, &mut limited))?;
        let read = limited.filled().len();
        buffer.advance(read);
        this.unread -= read as u64;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for OneRequest<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().stream).poll_write(context, data)
    }

    /// Hyper flushes after writing out all it buffered: once the answer is
    /// all in its buffer and the request all read, this flush ends it.
    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(Pin::new(&mut *this.stream).poll_flush(context))?;
        if this.progress.answered.load(Ordering::Acquire)
            && this.given.is_empty()
            && this.unread == 0
        {
            this.progress.finished.notify_one();
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().stream).poll_shutdown(context)
    }
}

/// A stream whose first bytes, already read, are given again.
struct Rewound {
    read: Bytes,
    stream: Stream,
}

impl AsyncRead for Rewound {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.read.is_empty() {
            return Pin::new(&mut this.stream).poll_read(context, buffer);
        }
        let given = this.read.len().min(buffer.remaining());
        buffer.put_slice(&this.read[..given]);
        this.read.advance(given);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Rewound {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(context, data)
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(context)
    }
}

/// Hyper serves the connection from here on.
async fn hyper<I>(web: Arc<Web>, io: I, peer: Peer, shutdown: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config = &web.service.config;
    let service = {
        let web = Arc::clone(&web);
        hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
            let web = Arc::clone(&web);
            async move {
                Ok::<_, Infallible>(
                    web.handle(peer, request.map(Body::new))
                        .await
                        .into_response(),
                )
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout(config))
        .max_buf_size(MAX_HEAD);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "HTTP connection ended");
            }
        }
        _ = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_rewound_stream_gives_its_bytes_again_then_the_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (client, accepted) =
            tokio::join!(tokio::net::TcpStream::connect(address), listener.accept());
        let mut client = client.unwrap();
        let mut rewound = Rewound {
            read: Bytes::from_static(b"read before, "),
            stream: Stream::plain(accepted.unwrap().0),
        };
        client.write_all(b"then the socket").await.unwrap();
        client.shutdown().await.unwrap();
        let mut all = Vec::new();
        rewound.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"read before, then the socket");
        rewound.write_all(b"back").await.unwrap();
        rewound.shutdown().await.unwrap();
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"back");
    }
}
