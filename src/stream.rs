//! The byte stream under a connection: plain TCP or TLS over TCP, with an
//! optional bandwidth cap. One type, so that sessions and clients are
//! written once for both; plain TCP keeps its fast paths (`sendfile`, split
//! halves without a lock).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// The most one `sendfile` call is asked to move.
const SENDFILE_CHUNK: usize = 4 * 1024 * 1024;

/// A connection's stream.
pub struct Stream {
    inner: Inner,
    /// Present when the connection's bandwidth is capped.
    limits: Option<Box<Limits>>,
}

enum Inner {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

/// One bucket per direction.
struct Limits {
    read: TokenBucket,
    write: TokenBucket,
}

impl Stream {
    /// A plain TCP stream.
    pub fn plain(tcp: TcpStream) -> Stream {
        Stream {
            inner: Inner::Plain(tcp),
            limits: None,
        }
    }

    /// A TLS stream (either end).
    pub fn tls(tls: impl Into<tokio_rustls::TlsStream<TcpStream>>) -> Stream {
        Stream {
            inner: Inner::Tls(Box::new(tls.into())),
            limits: None,
        }
    }

    /// Caps what this stream reads, and what it writes, at `bytes_per_second`
    /// each (a token bucket holding a tenth of a second's worth, at least 16 KiB).
    pub fn with_rate_limit(mut self, bytes_per_second: u64) -> Stream {
        self.limits = Some(Box::new(Limits {
            read: TokenBucket::new(bytes_per_second),
            write: TokenBucket::new(bytes_per_second),
        }));
        self
    }

    /// The TCP socket underneath (for its addresses, options and the kernel's
    /// view of its queues).
    pub fn tcp(&self) -> &TcpStream {
        match &self.inner {
            Inner::Plain(tcp) => tcp,
            Inner::Tls(tls) => tls.get_ref().0,
        }
    }

    /// Whether the stream is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self.inner, Inner::Tls(_))
    }

    /// The socket to hand to `sendfile(2)` and friends: only a plain,
    /// uncapped stream may be written behind our back.
    pub fn raw_socket(&self) -> Option<&TcpStream> {
        match (&self.inner, &self.limits) {
            (Inner::Plain(tcp), None) => Some(tcp),
            _ => None,
        }
    }

    /// Sends `length` bytes of `file` from `offset` by `sendfile(2)`:
    /// straight from the page cache to the socket, through no buffer of
    /// ours. Only a plain, uncapped stream can (see [`Stream::raw_socket`]);
    /// any other answers [`io::ErrorKind::Unsupported`] having sent nothing.
    /// Each wait for the socket to take more is bounded by `wait` (a peer
    /// that stops reading); `sent` counts the bytes as they go: fewer than
    /// `length` if the file shrank meanwhile, and how far a failed sending
    /// got.
    pub async fn send_file(
        &self,
        file: &std::fs::File,
        offset: u64,
        length: u64,
        sent: &mut u64,
        wait: Option<Duration>,
    ) -> io::Result<()> {
        let Some(socket) = self.raw_socket() else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "sendfile needs a plain, uncapped stream",
            ));
        };
        let mut position = offset;
        let end = offset.saturating_add(length);
        while position < end {
            let chunk = usize::try_from(end - position)
                .unwrap_or(usize::MAX)
                .min(SENDFILE_CHUNK);
            match wait {
                None => socket.writable().await?,
                Some(limit) => tokio::time::timeout(limit, socket.writable())
                    .await
                    .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))?,
            }
            let written = socket.try_io(tokio::io::Interest::WRITABLE, || {
                rustix::fs::sendfile(socket, file, Some(&mut position), chunk)
                    .map_err(io::Error::from)
            });
            match written {
                Ok(0) => break,
                Ok(_) => *sent = position - offset,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Splits the stream into halves that can be used from two tasks.
    pub fn into_split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Stream {
                inner: Inner::Plain(tcp),
                limits: None,
            } => {
                let (read, write) = tcp.into_split();
                (ReadHalf::Plain(read), WriteHalf::Plain(write))
            }
            stream => {
                let (read, write) = tokio::io::split(stream);
                (ReadHalf::Shared(read), WriteHalf::Shared(write))
            }
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(limits) = this.limits.as_mut() else {
            return this.inner.poll_read(context, buffer);
        };
        let allowed = std::task::ready!(limits.read.poll_grant(context, buffer.remaining()));
        // A view of at most `allowed` bytes; zeroing it first keeps this safe
        // code (the cost is nothing beside the wait for tokens).
        let mut limited = ReadBuf::new(buffer.initialize_unfilled_to(allowed));
        std::task::ready!(this.inner.poll_read(context, &mut limited))?;
        let read = limited.filled().len();
        buffer.advance(read);
        limits.read.spend(read);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let Some(limits) = this.limits.as_mut() else {
            return this.inner.poll_write(context, data);
        };
        let allowed = std::task::ready!(limits.write.poll_grant(context, data.len()));
        let written = std::task::ready!(this.inner.poll_write(context, &data[..allowed]))?;
        limits.write.spend(written);
        Poll::Ready(Ok(written))
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Plain(tcp) => Pin::new(tcp).poll_flush(context),
            Inner::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(context),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Plain(tcp) => Pin::new(tcp).poll_shutdown(context),
            Inner::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(context),
        }
    }
}

impl Inner {
    fn poll_read(
        &mut self,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self {
            Inner::Plain(tcp) => Pin::new(tcp).poll_read(context, buffer),
            Inner::Tls(tls) => Pin::new(tls.as_mut()).poll_read(context, buffer),
        }
    }

    fn poll_write(&mut self, context: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        match self {
            Inner::Plain(tcp) => Pin::new(tcp).poll_write(context, data),
            Inner::Tls(tls) => Pin::new(tls.as_mut()).poll_write(context, data),
        }
    }
}

/// The reading half of a split [`Stream`].
pub enum ReadHalf {
    /// Plain TCP, split without a lock.
    Plain(tokio::net::tcp::OwnedReadHalf),
    /// Anything else, split through tokio's shared halves.
    Shared(tokio::io::ReadHalf<Stream>),
}

/// The writing half of a split [`Stream`].
pub enum WriteHalf {
    /// Plain TCP, split without a lock.
    Plain(tokio::net::tcp::OwnedWriteHalf),
    /// Anything else, split through tokio's shared halves.
    Shared(tokio::io::WriteHalf<Stream>),
}

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ReadHalf::Plain(half) => Pin::new(half).poll_read(context, buffer),
            ReadHalf::Shared(half) => Pin::new(half).poll_read(context, buffer),
        }
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Plain(half) => Pin::new(half).poll_write(context, data),
            WriteHalf::Shared(half) => Pin::new(half).poll_write(context, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Plain(half) => Pin::new(half).poll_flush(context),
            WriteHalf::Shared(half) => Pin::new(half).poll_flush(context),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Plain(half) => Pin::new(half).poll_shutdown(context),
            WriteHalf::Shared(half) => Pin::new(half).poll_shutdown(context),
        }
    }
}

/// A token bucket: `rate` bytes per second, bursts of at most `capacity`.
/// Time is tokio's, so a test with paused time measures it exactly.
struct TokenBucket {
    rate: u64,
    capacity: u64,
    tokens: u64,
    refilled: Instant,
    /// While empty: when the next grant is worth waking up for.
    sleep: Option<Pin<Box<Sleep>>>,
}

/// The smallest burst: smaller grants would cost a wake-up per few bytes.
const MIN_BURST: u64 = 16 * 1024;

impl TokenBucket {
    fn new(rate: u64) -> TokenBucket {
        let rate = rate.max(1);
        let capacity = (rate / 10).max(MIN_BURST.min(rate));
        TokenBucket {
            rate,
            capacity,
            tokens: capacity,
            refilled: Instant::now(),
            sleep: None,
        }
    }

    /// Ready with how many of `wanted` bytes may move now (at least one,
    /// unless `wanted` is zero); pending until some may.
    fn poll_grant(&mut self, context: &mut Context<'_>, wanted: usize) -> Poll<usize> {
        if wanted == 0 {
            return Poll::Ready(0);
        }
        loop {
            self.refill();
            if self.tokens > 0 {
                self.sleep = None;
                let granted = self.tokens.min(wanted as u64);
                return Poll::Ready(usize::try_from(granted).unwrap_or(wanted));
            }
            // Wait until a worthwhile grant has accrued: a burst, or what was asked.
            let worth = self.capacity.min(wanted as u64).max(1);
            let wait = Duration::from_nanos(
                u64::try_from(u128::from(worth) * 1_000_000_000 / u128::from(self.rate))
                    .unwrap_or(u64::MAX),
            );
            let deadline = self.refilled + wait;
            match self.sleep.as_mut() {
                Some(sleep) if sleep.deadline() == deadline => {}
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            let sleep = self.sleep.as_mut().expect("set just above");
            std::task::ready!(sleep.as_mut().poll(context));
        }
    }

    /// Counts `bytes` as moved.
    fn spend(&mut self, bytes: usize) {
        self.tokens = self.tokens.saturating_sub(bytes as u64);
    }

    /// Adds what accrued since the last refill, up to the capacity. Whole
    /// bytes only; the remainder of time is kept for the next refill.
    fn refill(&mut self) {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.refilled);
        let earned = elapsed.as_nanos() * u128::from(self.rate) / 1_000_000_000;
        if earned == 0 {
            return;
        }
        let earned = u64::try_from(earned).unwrap_or(u64::MAX);
        if self.tokens.saturating_add(earned) >= self.capacity {
            self.tokens = self.capacity;
            self.refilled = now;
        } else {
            self.tokens += earned;
            // Advance by exactly the time those bytes took, keeping the rest.
            let used = Duration::from_nanos(
                u64::try_from(u128::from(earned) * 1_000_000_000 / u128::from(self.rate))
                    .unwrap_or(u64::MAX),
            );
            self.refilled += used;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(address), listener.accept());
        (client.unwrap(), accepted.unwrap().0)
    }

    #[tokio::test(start_paused = true)]
    async fn a_capped_writer_takes_as_long_as_its_rate_says() {
        let (ours, theirs) = pair().await;
        let rate = 100 * 1024;
        let mut capped = Stream::plain(ours).with_rate_limit(rate);
        let reader = tokio::spawn(async move {
            let mut theirs = theirs;
            let mut all = Vec::new();
            theirs.read_to_end(&mut all).await.unwrap();
            all.len()
        });
        let start = Instant::now();
        let total = 1024 * 1024;
        capped.write_all(&vec![7u8; total]).await.unwrap();
        capped.shutdown().await.unwrap();
        let elapsed = start.elapsed();
        assert_eq!(reader.await.unwrap(), total);
        // The first burst (a tenth of a second's worth) is free; the rest
        // goes at the rate: (1 MiB - 10 KiB) / 100 KiB/s = 10.14 s.
        let expected = (total as f64 - (rate / 10) as f64) / rate as f64;
        let seconds = elapsed.as_secs_f64();
        assert!(
            (seconds - expected).abs() < 0.2,
            "took {seconds:.3} s of virtual time, expected {expected:.3} s"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_capped_reader_takes_as_long_as_its_rate_says() {
        let (ours, theirs) = pair().await;
        let rate = 64 * 1024;
        let mut capped = Stream::plain(ours).with_rate_limit(rate);
        let total = 640 * 1024;
        let writer = tokio::spawn(async move {
            let mut theirs = theirs;
            theirs.write_all(&vec![1u8; total]).await.unwrap();
            theirs.shutdown().await.unwrap();
        });
        let start = Instant::now();
        let mut all = Vec::new();
        capped.read_to_end(&mut all).await.unwrap();
        let seconds = start.elapsed().as_secs_f64();
        writer.await.unwrap();
        assert_eq!(all.len(), total);
        // A burst of 16 KiB (the minimum) is free and the rest goes at
        // 64 KiB/s, but the end of the stream is seen only on the read after
        // the last byte, which waits for the next grant: 640 KiB / 64 KiB/s.
        let expected = total as f64 / rate as f64;
        assert!(
            (seconds - expected).abs() < 0.2,
            "took {seconds:.3} s of virtual time, expected {expected:.3} s"
        );
    }

    #[tokio::test]
    async fn only_a_plain_uncapped_stream_offers_its_raw_socket() {
        let (ours, _theirs) = pair().await;
        let plain = Stream::plain(ours);
        assert!(plain.raw_socket().is_some());
        assert!(!plain.is_tls());
        let capped = plain.with_rate_limit(1000);
        assert!(capped.raw_socket().is_none());
    }
}
