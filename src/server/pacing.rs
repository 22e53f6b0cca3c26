//! Pacing of classic messages: waits until the peer application has (very probably) read
//! everything written so far.
//!
//! An original client needs each message to end exactly where one of its `recv(1024)` calls
//! ends; pacing makes sure that it never gets two messages in one read, and never a token cut in
//! two.
//!
//! This module owns only the *waiting*. The classic writer decides where to wait: before every
//! message but the first (the token), and between a body and its token when the whole message is
//! longer than [`Pacer::whole_message_limit`]. Nothing here may run once a client has switched to
//! the extended protocol.
//!
//! # Two ways to know
//!
//! A client on this host has its socket here: `super::peer_queue` reads its receive queue, and
//! the wait ends when that socket has received all we wrote and its queue is empty, plus
//! [`LOCAL_SETTLE`] for the `recv` that took the bytes to return. That is exact, whatever the
//! load: 2,320 sessions, 1,360 of them with four to six busy processes on two CPUs and clients
//! calling `recv` up to 10 ms late, had no merged or split message, and a README session takes
//! 0.03 s.
//!
//! For a client elsewhere, only our own socket speaks, and the rest of this documentation is
//! about that case.
//!
//! # What our socket tells us
//!
//! Measured on loopback (Linux 6.18, 2 CPUs) against Python clients that read with `recv(1024)`.
//!
//! - `SIOCOUTQ` reaching 0 means every byte is in the peer's kernel. The ACK comes at once in
//!   quick-ack mode (0.1 ms on loopback), but a client that sends its next command within 40 ms
//!   of a reply is in delayed-ACK "ping-pong" mode, and the ACK of a small message then takes
//!   40 ms (or rides on the next command). A message written as two segments (body, then token,
//!   with `TCP_NODELAY`) makes a Linux reader ACK as soon as it has read both: the wait between an
//!   `info` reply and its status drops from 44 ms to 6 ms.
//! - `tcpi_snd_wnd`, the peer's advertised window, does **not** drop for small unread messages:
//!   with 10, 100, 1000 or 5000 bytes unread it stayed at or above its fresh 65536 (it grew, to
//!   70656 and 107520). It drops only when much of the peer's buffer is full (100 KB unread:
//!   28672; 1 MiB behind a slow reader: 0 to 4096), and the update that reopens it is sent only
//!   when a read at least doubles it. After a fast reader drained 100 KB the window stayed at 60416
//!   until its next command, so "back to the fresh window" cannot be the test; and when all of a
//!   234 KB body had been acknowledged, a slow reader still had 45 KB to read, behind a window of
//!   56320.
//! - What is left is time. A Python reader blocked in `recv` returned 24 µs after our write
//!   (median; p99 77 µs and max 3.2 ms on an idle machine; p99 1.1 ms and max 7.6 ms with two
//!   busy processes on the two CPUs, p99 6.7 ms and max 12 ms with eight). A reader that lags
//!   behind a large body drains it at its own rate, which shows while its window is what limits
//!   us: 360 MB/s for a plain loop, about 1 MB/s at the end of a 1 MiB `data += chunk` loop.
//!
//! # The algorithm, from our side
//!
//! 1. Poll `SIOCOUTQ` until 0 (give up after [`STALL_LIMIT`] without progress), noting how long
//!    the last window's worth of bytes took to be acknowledged.
//! 2. If the window is below half its fresh size, the reader is far behind: poll until it reopens
//!    (at most [`WINDOW_LIMIT`]).
//! 3. Pause [`WAKE_UP_PAUSE`] ([`FIRST_WAKE_UP_PAUSE`] after the token) plus the time to drain
//!    what may still be unread: the bytes delivered since the previous wait, at most the largest
//!    window, at [`DRAIN_PER_BYTE`] each, or 1.5 times the time the last window took when the
//!    peer's window was what held us back. The pause counts from the last data sent (or from the
//!    reopening), so a wait called long after the last write returns at once. At most
//!    [`MAX_PAUSE`].
//!
//! Polls back off from [`FIRST_POLL`] to [`MAX_POLL`]; tokio's timer rounds up to 1 ms.
//!
//! # Measured results, from our side
//!
//! A README session by an original-style client (welcome, `mkdir`, `cd`, a 100 KB `ul`, `info`, a
//! 100 KB `dl`, `cd ..`, `rm`, no think time) takes 0.18 s; 0.14 s when small messages are
//! written as body then token. In 1,600 sessions (random downloads up to 300 KB, readers that
//! write each chunk, loop, or do `data += chunk`, some calling `recv` up to 4 ms late, over
//! loopback and over a veth pair with a 1500-byte MTU, with and without a 20 Mbit/s limit) no
//! message merged or split; nor in 400 more with two or four busy processes on the two CPUs and
//! readers that write each chunk. Downloads of 0.3 to 2 MiB whose token falls across a 1024-byte
//! boundary passed with a `data += chunk` reader.
//!
//! What stays probabilistic: a reader that does not call `recv` within the pause while a small
//! message waits for it, or that slows down sharply after the bytes were acknowledged. Both
//! happen on an overloaded machine: `data += chunk` readers with two busy processes failed 2
//! sessions in 200.

// `unsafe_code` is denied crate-wide; this module needs `ioctl(SIOCOUTQ)` and
// `getsockopt(TCP_INFO)`, which neither std, tokio nor rustix wrap. Each call is one small
// `unsafe` block on a borrowed, open file descriptor and a buffer we own.
#![allow(unsafe_code)]

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

// Tokio's clock, so that tests can pause it.
use tokio::time::Instant;

use super::peer_queue::PeerQueue;
use crate::protocol::CLASSIC_READ_SIZE;

/// The first pause between two polls.
const FIRST_POLL: Duration = Duration::from_micros(50);
/// The longest pause between two polls.
const MAX_POLL: Duration = Duration::from_millis(2);
/// How long the peer may make no progress (acknowledge or read nothing)
/// before we stop waiting for it. A reader like the original client reads
/// within milliseconds; a client that pipelines commands before reading any
/// reply would otherwise hold every message this long.
const STALL_LIMIT: Duration = Duration::from_secs(2);
/// How long we wait for a shrunken window to reopen.
const WINDOW_LIMIT: Duration = Duration::from_secs(1);
/// Time for a reader blocked in `recv` to wake up and take what arrived.
const WAKE_UP_PAUSE: Duration = Duration::from_millis(5);
/// The same for the first wait, after the token: the client may still be between `connect` and
/// its first `recv`, and one longer pause per connection goes unnoticed.
const FIRST_WAKE_UP_PAUSE: Duration = Duration::from_millis(20);
/// The least time allowed per byte that the reader may still have to drain (5 MB/s).
const DRAIN_PER_BYTE: Duration = Duration::from_nanos(200);
/// The longest pause after delivery.
const MAX_PAUSE: Duration = Duration::from_millis(500);
/// The pause after a local client's socket showed everything read: the reader has taken the
/// bytes but may not have returned from `recv` yet (new bytes landing then would join them).
const LOCAL_SETTLE: Duration = Duration::from_millis(1);
/// The pause used when the socket cannot be queried (not TCP, or not Linux 5.4 or later).
const FALLBACK_PAUSE: Duration = Duration::from_millis(20);
/// `tcpi_last_data_sent` counts whole jiffies (4 ms at HZ=250, 10 ms at HZ=100).
const JIFFY: Duration = Duration::from_millis(10);

/// Paces one classic connection; see the module documentation.
pub struct Pacer {
    /// The client's own socket, when it runs on this host.
    local_peer: Option<LocalPeer>,
    /// The peer's window when the stream was fresh, nothing of ours in its buffer.
    fresh_window: u32,
    /// The largest window the peer advertised.
    max_window: u32,
    /// `tcpi_bytes_acked` at the end of the previous wait.
    acked: u64,
    /// The segment size we send with (0: unknown).
    mss: u32,
    /// Whether a wait has completed; the first one follows the token.
    started: bool,
    /// How many times waits have looked at a socket again (their cost).
    polls: u64,
}

impl Pacer {
    /// Creates a pacer for a freshly accepted stream (reads the baseline window).
    ///
    /// Takes any descriptor (a `tokio::net::TcpStream`, or `OwnedWriteHalf::as_ref()`); when it
    /// is not a TCP socket, every wait degrades to a fixed pause of 20 ms.
    pub fn new(socket: &impl AsFd) -> Self {
        let info = TcpInfo::read(socket.as_fd()).unwrap_or_default();
        Self {
            local_peer: LocalPeer::find(socket.as_fd(), info),
            fresh_window: info.snd_wnd,
            max_window: info.snd_wnd,
            acked: info.bytes_acked,
            mss: info.snd_mss,
            started: false,
            polls: 0,
        }
    }

    /// The longest message (body and token) that may be written in one piece right after
    /// [`Pacer::wait_until_read`]: it fits one read of the original client, and one TCP segment,
    /// so it cannot arrive in two parts split inside the token.
    #[must_use]
    pub fn whole_message_limit(&self) -> usize {
        match usize::try_from(self.mss) {
            Ok(mss) if mss > 0 => mss.min(CLASSIC_READ_SIZE),
            _ => CLASSIC_READ_SIZE,
        }
    }

    /// Waits until the peer application has (very probably) read everything written so far.
    ///
    /// Call it once the bytes were handed to the kernel (`write_all` and any flush returned). It
    /// never fails: when the socket cannot be queried it sleeps a fixed 20 ms.
    pub async fn wait_until_read(&mut self, socket: &(impl AsFd + Sync)) {
        if self.wait(socket.as_fd()).await.is_err() {
            tokio::time::sleep(FALLBACK_PAUSE).await;
        }
    }

    async fn wait(&mut self, fd: BorrowedFd<'_>) -> io::Result<()> {
        if let Some(peer) = &self.local_peer {
            match peer.wait_until_read(fd, &mut self.polls).await {
                Ok(()) => return Ok(()),
                // The query failed: from now on, judge from our side alone.
                Err(_) => self.local_peer = None,
            }
        }
        let (info, last_window_took) = self.until_delivered(fd).await?;
        let (info, reopened_at) = self.until_caught_up(fd, info).await?;

        // Step 3, read: time for the reader to wake up and drain what may be left, which is at most
        // what we delivered since the previous wait and at most what its window let in.
        let delivered = info.bytes_acked.saturating_sub(self.acked);
        self.acked = info.bytes_acked;
        let unread = u32::try_from(delivered)
            .unwrap_or(u32::MAX)
            .min(self.max_window);
        let mut drain = DRAIN_PER_BYTE.saturating_mul(unread);
        if let Some(took) = last_window_took {
            drain = drain.max(took);
        }
        let wake_up = if self.started {
            WAKE_UP_PAUSE
        } else {
            FIRST_WAKE_UP_PAUSE
        };
        self.started = true;
        let pause = (wake_up + drain).min(MAX_PAUSE);
        let elapsed = reopened_at.map(|at| at.elapsed());
        let rest = rest_of_pause(pause, elapsed, &info);
        tracing::trace!(
            delivered,
            window = info.snd_wnd,
            max_window = self.max_window,
            reopened = reopened_at.is_some(),
            ?pause,
            ?elapsed,
            "paced"
        );
        if let Some(rest) = rest {
            tokio::time::sleep(rest).await;
        }
        Ok(())
    }

    /// Step 1, delivered: polls until the peer's kernel has acknowledged everything. Returns the
    /// last `TCP_INFO` and, if the peer's window was what held us, how long one more window's
    /// worth would take it (1.5 times the pace of its last window).
    async fn until_delivered(
        &mut self,
        fd: BorrowedFd<'_>,
    ) -> io::Result<(TcpInfo, Option<Duration>)> {
        let mut poll = Backoff::new();
        let mut info = self.observe(fd)?;
        let mut unacked = unacknowledged_bytes(fd)?;
        let started = (Instant::now(), info);
        let mut window_start = started;
        let mut previous_window_start = started;
        let mut progress_at = started.0;
        while unacked > 0 && progress_at.elapsed() < STALL_LIMIT {
            poll.sleep().await;
            let now = unacknowledged_bytes(fd)?;
            info = self.observe(fd)?;
            if now < unacked {
                progress_at = Instant::now();
            }
            unacked = now;
            let window = u64::from(self.max_window);
            if info.bytes_acked.saturating_sub(window_start.1.bytes_acked) >= window {
                previous_window_start = window_start;
                window_start = (Instant::now(), info);
            }
        }
        self.polls += u64::from(poll.polls);

        let delivered_at = Instant::now();
        let phase = delivered_at - started.0;
        let window_limited = info
            .rwnd_limited_us
            .saturating_sub(started.1.rwnd_limited_us)
            >= u64::try_from(phase.as_micros() / 2).unwrap_or(u64::MAX);
        let (since, from) = previous_window_start;
        let measured = info.bytes_acked.saturating_sub(from.bytes_acked);
        let enough = measured > 0 && measured >= u64::from(self.max_window / 2);
        let one_more_window = (window_limited && enough).then(|| {
            let nanos = (delivered_at - since).as_nanos() * 3 * u128::from(self.max_window)
                / (2 * u128::from(measured));
            Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
        });
        Ok((info, one_more_window))
    }

    /// Step 2, caught up: a window below half its fresh size says the reader is far behind; polls
    /// until it reopens. Returns the last `TCP_INFO` and when it reopened, if it had to.
    async fn until_caught_up(
        &mut self,
        fd: BorrowedFd<'_>,
        mut info: TcpInfo,
    ) -> io::Result<(TcpInfo, Option<Instant>)> {
        let behind = self.fresh_window / 2;
        if info.snd_wnd >= behind {
            return Ok((info, None));
        }
        let mut poll = Backoff::new();
        let since = Instant::now();
        while info.snd_wnd < behind && since.elapsed() < WINDOW_LIMIT {
            poll.sleep().await;
            info = self.observe(fd)?;
        }
        self.polls += u64::from(poll.polls);
        Ok((info, Some(Instant::now())))
    }

    /// Reads `TCP_INFO` and keeps what it teaches about the peer.
    fn observe(&mut self, fd: BorrowedFd<'_>) -> io::Result<TcpInfo> {
        let info = TcpInfo::read(fd)?;
        self.max_window = self.max_window.max(info.snd_wnd);
        self.mss = info.snd_mss;
        Ok(info)
    }
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer")
            .field("local_peer", &self.local_peer.is_some())
            .field("fresh_window", &self.fresh_window)
            .field("max_window", &self.max_window)
            .field("mss", &self.mss)
            .finish_non_exhaustive()
    }
}

/// The client's socket on this host, whose receive queue answers the question exactly.
struct LocalPeer {
    query: PeerQueue,
    /// Our bytes written (acknowledged or not) when the pacer was made.
    written_before: u64,
    /// The bytes its socket had received by then.
    received_before: u64,
}

impl LocalPeer {
    /// The client's socket, if it lives on this host (and in this network namespace).
    fn find(fd: BorrowedFd<'_>, info: TcpInfo) -> Option<Self> {
        let local = SocketAddr::try_from(rustix::net::getsockname(fd).ok()?).ok()?;
        let peer = SocketAddr::try_from(rustix::net::getpeername(fd).ok()??).ok()?;
        // A dual-stack listener sees an IPv4 client as `::ffff:a.b.c.d`; its socket is IPv4.
        let canonical = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
        let (query, state) = [(canonical(local), canonical(peer)), (local, peer)]
            .into_iter()
            .filter_map(|(local, peer)| PeerQueue::new(local, peer))
            .find_map(|query| {
                let state = query.state().ok()??;
                Some((query, state))
            })?;
        let written_before = info
            .bytes_acked
            .saturating_add(u64::try_from(unacknowledged_bytes(fd).ok()?).ok()?);
        Some(Self {
            query,
            written_before,
            received_before: state.received,
        })
    }

    /// Polls until the client's socket has received all we wrote and its application has read
    /// it, then lets the reader return from its `recv`. Gives up after [`STALL_LIMIT`] without
    /// progress, or at once when the client's socket is gone.
    async fn wait_until_read(&self, fd: BorrowedFd<'_>, polls: &mut u64) -> io::Result<()> {
        let info = TcpInfo::read(fd)?;
        let unacked = u64::try_from(unacknowledged_bytes(fd)?).unwrap_or(u64::MAX);
        let written = info
            .bytes_acked
            .saturating_add(unacked)
            .saturating_sub(self.written_before);
        let mut poll = Backoff::new();
        let mut last = None;
        let mut progress_at = Instant::now();
        let waited = async {
            while let Some(state) = self.query.state()? {
                let received = state.received.saturating_sub(self.received_before);
                if received >= written && state.unread == 0 {
                    // The read has taken the bytes; let it return before anything new lands.
                    tokio::time::sleep(LOCAL_SETTLE).await;
                    return Ok(());
                }
                if last != Some(state) {
                    last = Some(state);
                    progress_at = Instant::now();
                } else if progress_at.elapsed() >= STALL_LIMIT {
                    break;
                }
                poll.sleep().await;
            }
            Ok(())
        }
        .await;
        *polls += u64::from(poll.polls);
        waited
    }
}

/// Poll intervals, doubling from [`FIRST_POLL`] to [`MAX_POLL`], and past it to an eighth of
/// the wait so far: a reader that is quick is seen within microseconds, one that does not read
/// at all costs a few dozen polls over the [`STALL_LIMIT`] (a thousand idle connections cost
/// a timer each, not a core), and no wait runs more than an eighth longer than it had to.
struct Backoff {
    interval: Duration,
    started: Instant,
    polls: u32,
}

impl Backoff {
    fn new() -> Self {
        Self {
            interval: FIRST_POLL,
            started: Instant::now(),
            polls: 0,
        }
    }

    async fn sleep(&mut self) {
        tokio::time::sleep(self.interval).await;
        self.polls += 1;
        let ceiling = MAX_POLL.max(self.started.elapsed() / 8);
        self.interval = (self.interval * 2).min(ceiling);
    }
}

/// What is left of `pause` once the time already gone is counted: since the window reopened,
/// when it had to (`since_reopened`), else since our last data was sent, which the kernel counts
/// in whole jiffies (so one is taken off, to err on the side of waiting). A client that thought
/// for a while before its next command has long read the last reply: no pause at all.
fn rest_of_pause(
    pause: Duration,
    since_reopened: Option<Duration>,
    info: &TcpInfo,
) -> Option<Duration> {
    let elapsed = since_reopened.unwrap_or_else(|| {
        Duration::from_millis(info.last_data_sent_ms.into()).saturating_sub(JIFFY)
    });
    pause.checked_sub(elapsed).filter(|rest| !rest.is_zero())
}

/// Bytes written but not yet acknowledged by the peer (`SIOCOUTQ`, also named `TIOCOUTQ`).
fn unacknowledged_bytes(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let mut count: libc::c_int = 0;
    // SAFETY: `fd` stays open for the borrow; SIOCOUTQ writes one `int` through the pointer,
    // which points to a live, writable `c_int`.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &raw mut count) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    usize::try_from(count).map_err(|_| io::Error::other("negative SIOCOUTQ"))
}

/// The fields of Linux's `struct tcp_info` that pacing uses.
///
/// `libc::tcp_info` stops before `tcpi_snd_wnd` (Linux 5.4), so the struct is read into a buffer
/// and the fields taken at their offsets in `linux/tcp.h` (the struct only ever grows at the end).
#[derive(Debug, Clone, Copy, Default)]
struct TcpInfo {
    snd_mss: u32,
    last_data_sent_ms: u32,
    bytes_acked: u64,
    rwnd_limited_us: u64,
    snd_wnd: u32,
}

impl TcpInfo {
    const SND_MSS: usize = 16;
    const LAST_DATA_SENT: usize = 44;
    const BYTES_ACKED: usize = 120;
    const RWND_LIMITED: usize = 176;
    const SND_WND: usize = 228;

    fn read(fd: BorrowedFd<'_>) -> io::Result<Self> {
        let mut buf = [0u8; 256];
        let mut len = libc::socklen_t::try_from(buf.len()).unwrap_or(0);
        // SAFETY: `fd` stays open for the borrow; the kernel writes at most `len` bytes into
        // `buf`, which is live and writable, and stores the length it wrote in `len`.
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                buf.as_mut_ptr().cast(),
                &raw mut len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let filled = buf
            .get(..usize::try_from(len).unwrap_or(0))
            .unwrap_or_default();
        let too_short = || io::Error::other("TCP_INFO too short (Linux before 5.4?)");
        let u32_at = |at: usize| {
            let bytes = filled.get(at..at + 4).and_then(|b| b.try_into().ok());
            bytes.map(u32::from_ne_bytes).ok_or_else(too_short)
        };
        let u64_at = |at: usize| {
            let bytes = filled.get(at..at + 8).and_then(|b| b.try_into().ok());
            bytes.map(u64::from_ne_bytes).ok_or_else(too_short)
        };
        Ok(Self {
            snd_mss: u32_at(Self::SND_MSS)?,
            last_data_sent_ms: u32_at(Self::LAST_DATA_SENT)?,
            bytes_acked: u64_at(Self::BYTES_ACKED)?,
            rwnd_limited_us: u64_at(Self::RWND_LIMITED)?,
            snd_wnd: u32_at(Self::SND_WND)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    const TOKEN: &[u8] = b"<Ab3X9kQw>";

    /// A server-side stream and a blocking client socket, over loopback.
    async fn connected() -> (TcpStream, std::net::TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (server, client)
    }

    fn contains_token(bytes: &[u8]) -> bool {
        bytes.windows(TOKEN.len()).any(|w| w == TOKEN)
    }

    /// Reads like the original client: `recv(1024)`, a message ends when one read ends with the
    /// token. Fails when a read holds the token anywhere else, or a token spans two reads.
    fn read_like_the_original(
        mut client: std::net::TcpStream,
        count: usize,
    ) -> Result<Vec<Vec<u8>>, String> {
        let mut messages = Vec::new();
        let mut message = Vec::new();
        let mut buf = [0u8; CLASSIC_READ_SIZE];
        while messages.len() < count {
            let n = client.read(&mut buf).map_err(|e| format!("read: {e}"))?;
            let read = &buf[..n];
            if n == 0 {
                return Err(format!("closed after {} messages", messages.len()));
            } else if read.ends_with(TOKEN) {
                let body = &read[..n - TOKEN.len()];
                if contains_token(body) {
                    return Err(format!("two messages in one read: {read:?}"));
                }
                message.extend_from_slice(body);
                messages.push(std::mem::take(&mut message));
            } else if contains_token(read) {
                return Err(format!("a message did not end a read: {read:?}"));
            } else {
                let seam = message.len().saturating_sub(TOKEN.len());
                message.extend_from_slice(read);
                if contains_token(&message[seam..]) {
                    return Err("a token split across two reads".into());
                }
            }
        }
        Ok(messages)
    }

    /// Writes one message the way a classic writer should.
    async fn send(server: &mut TcpStream, pacer: &mut Pacer, body: &[u8]) -> io::Result<()> {
        pacer.wait_until_read(server).await;
        if body.len() + TOKEN.len() <= pacer.whole_message_limit() {
            server.write_all(&[body, TOKEN].concat()).await
        } else {
            server.write_all(body).await?;
            pacer.wait_until_read(server).await;
            server.write_all(TOKEN).await
        }
    }

    /// A pacer that ignores the client's socket even when it is on this host, as for a remote
    /// client.
    fn judging_from_our_side(server: &TcpStream) -> Pacer {
        Pacer {
            local_peer: None,
            ..Pacer::new(server)
        }
    }

    /// A welcome, statuses, a body whose token would straddle a read, a payload: each reaches a
    /// reader like the original client in a read of its own. The pacer looks at the reader's
    /// own socket (it is on this host), which is exact whatever the machine's load.
    #[tokio::test]
    async fn every_message_arrives_in_a_read_of_its_own() {
        let (mut server, client) = connected().await;
        let large = vec![b'x'; 40 * 1024 + 1019];
        let mut expected: Vec<Vec<u8>> = vec![Vec::new(), b"Current Directory: /:\n|".to_vec()];
        for i in 0..10 {
            expected.push(format!("/photos/{i}").into_bytes());
        }
        expected.extend([large, b"/photos".to_vec(), b"1234".to_vec(), b"/".to_vec()]);
        let count = expected.len();
        let reader = std::thread::spawn(move || read_like_the_original(client, count));

        let mut pacer = Pacer::new(&server);
        assert!(pacer.local_peer.is_some(), "a client on loopback is local");
        server.write_all(TOKEN).await.unwrap();
        for body in &expected[1..] {
            send(&mut server, &mut pacer, body).await.unwrap();
        }
        assert_eq!(reader.join().unwrap(), Ok(expected));
    }

    #[tokio::test(start_paused = true)]
    async fn a_local_reader_that_has_not_read_holds_the_wait() {
        let (mut server, mut client) = connected().await;
        let mut pacer = Pacer::new(&server);
        assert!(pacer.local_peer.is_some(), "a client on loopback is local");
        server.write_all(TOKEN).await.unwrap();

        let waiting = pacer.wait_until_read(&server);
        tokio::pin!(waiting);
        // Far longer than any pause, in the paused clock: only the client's read (or the
        // stall limit) can end this wait.
        let early = tokio::time::timeout(STALL_LIMIT / 2, &mut waiting).await;
        assert!(early.is_err(), "the wait ended before the client read");
        client.read_exact(&mut [0u8; TOKEN.len()]).unwrap();
        let read_at = Instant::now();
        waiting.await;
        assert!(
            read_at.elapsed() < STALL_LIMIT / 2,
            "the read ended the wait"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_local_reader_that_never_reads_costs_a_few_polls() {
        let (mut server, _client) = connected().await;
        let mut pacer = Pacer::new(&server);
        server.write_all(TOKEN).await.unwrap();
        let started = Instant::now();
        pacer.wait_until_read(&server).await;
        assert!(
            started.elapsed() >= STALL_LIMIT,
            "it waited for the stall limit"
        );
        // Polling every 2 ms would be a thousand.
        assert!(pacer.polls <= 64, "{} polls", pacer.polls);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_judged_from_our_side_pauses_for_the_readers_wake_up() {
        let (mut server, client) = connected().await;
        let reader = std::thread::spawn(move || read_like_the_original(client, 1));
        let mut pacer = judging_from_our_side(&server);
        let started = Instant::now();

        server.write_all(TOKEN).await.unwrap();
        pacer.wait_until_read(&server).await;

        assert!(started.elapsed() >= FIRST_WAKE_UP_PAUSE);
        assert_eq!(reader.join().unwrap(), Ok(vec![Vec::new()]));
    }

    #[test]
    fn a_wait_long_after_the_last_write_does_not_pause() {
        let pause = FIRST_WAKE_UP_PAUSE;
        let sent_ms_ago = |ms| TcpInfo {
            last_data_sent_ms: ms,
            ..TcpInfo::default()
        };
        assert_eq!(rest_of_pause(pause, None, &sent_ms_ago(0)), Some(pause));
        // A jiffy is taken off what the kernel says, erring on the side of waiting.
        assert_eq!(
            rest_of_pause(pause, None, &sent_ms_ago(15)),
            Some(pause - Duration::from_millis(5))
        );
        assert_eq!(rest_of_pause(pause, None, &sent_ms_ago(60)), None);
        // After a window reopened, the time counts from the reopening.
        assert_eq!(
            rest_of_pause(pause, Some(Duration::from_millis(5)), &sent_ms_ago(60)),
            Some(pause - Duration::from_millis(5))
        );
    }

    #[tokio::test]
    async fn an_ipv4_client_of_a_dual_stack_listener_is_found_local() {
        let Ok(listener) = TcpListener::bind("[::]:0").await else {
            return; // No IPv6 here: nothing to test.
        };
        let port = listener.local_addr().unwrap().port();
        let _client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        assert!(peer.ip().to_canonical().is_ipv4(), "peer {peer}");

        assert!(Pacer::new(&server).local_peer.is_some());
    }

    #[tokio::test]
    async fn tcp_info_fields_are_where_linux_puts_them() {
        let (mut server, mut client) = connected().await;
        let fresh = TcpInfo::read(server.as_fd()).unwrap();
        server.write_all(&[7u8; 3000]).await.unwrap();
        let mut buf = vec![0u8; 3000];
        client.read_exact(&mut buf).unwrap();
        Pacer::new(&server).wait_until_read(&server).await;

        let info = TcpInfo::read(server.as_fd()).unwrap();
        assert_eq!(unacknowledged_bytes(server.as_fd()).unwrap(), 0);
        assert_eq!(info.bytes_acked - fresh.bytes_acked, 3000);
        assert!(fresh.snd_wnd >= 16 * 1024, "fresh window {}", fresh.snd_wnd);
        assert!(
            (536..=65535).contains(&info.snd_mss),
            "mss {}",
            info.snd_mss
        );
        assert_eq!(Pacer::new(&server).whole_message_limit(), CLASSIC_READ_SIZE);
    }

    #[tokio::test(start_paused = true)]
    async fn something_that_is_not_a_tcp_socket_gets_a_fixed_pause() {
        let file = std::fs::File::open("/dev/null").unwrap();
        let mut pacer = Pacer::new(&file);
        assert!(pacer.local_peer.is_none());

        let started = Instant::now();
        pacer.wait_until_read(&file).await;

        assert_eq!(started.elapsed(), FALLBACK_PAUSE);
        assert_eq!(pacer.whole_message_limit(), CLASSIC_READ_SIZE);
    }
}
