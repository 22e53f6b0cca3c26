//! Turns at the store: how many requests this server has open to it at
//! once, whatever the number of clients.
//!
//! Every request to the store may open a connection: the parts' always do,
//! the others when no kept-alive one is free. Opened by the thousand at
//! once (a thousand clients uploading at the same moment), they overflow
//! the store's queue of connections not yet accepted (Garage's holds
//! 1,024), and the kernel resets those it drops (`TcpExtListenOverflows`
//! in `nstat`). A request with its body in memory is sent again; a part,
//! streamed as its bytes arrive, cannot be. So the requests wait for a turn
//! instead, as S3 clients commonly bound their connections:
//!
//! - [`Turns::request`]: a request whose body is in memory (OpenDAL's, and
//!   the multipart requests other than parts), held until the store's
//!   answer begins;
//! - [`Turns::part`]: a part, held until its answer; a streamed one, so for
//!   as long as its client takes to send it. Parts have turns of their own:
//!   a part waiting for its client's bytes must never stand in the way of
//!   the requests that upload's worker makes meanwhile (its saved state).
//!
//! 1,000 clients uploading 2 MiB at once to Garage lost 59 uploads to
//! resets without turns, none with them.

use opendal::{Buffer, HttpBody, HttpTransport};
use tokio::sync::{Semaphore, SemaphorePermit};

/// Requests with their bodies in memory open at once, per server.
pub const REQUESTS_AT_ONCE: usize = 256;

/// Parts open at once, per server.
pub const PARTS_AT_ONCE: usize = 256;

/// The turns of one server's requests to one bucket.
pub struct Turns {
    requests: Semaphore,
    parts: Semaphore,
}

impl Default for Turns {
    /// [`REQUESTS_AT_ONCE`] requests and [`PARTS_AT_ONCE`] parts at once.
    fn default() -> Turns {
        Turns {
            requests: Semaphore::new(REQUESTS_AT_ONCE),
            parts: Semaphore::new(PARTS_AT_ONCE),
        }
    }
}

impl Turns {
    /// Waits for a request's turn; it ends when the permit is dropped.
    pub async fn request(&self) -> SemaphorePermit<'_> {
        self.requests.acquire().await.expect("never closed")
    }

    /// Waits for a part's turn; it ends when the permit is dropped.
    pub async fn part(&self) -> SemaphorePermit<'_> {
        self.parts.acquire().await.expect("never closed")
    }
}

/// An HTTP transport whose requests take [`Turns::request`] turns, until
/// the store's answer begins (a download's body then streams without one).
pub struct TurnTaking<T> {
    /// The transport that sends the requests.
    pub inner: T,
    /// Whose turns they take.
    pub turns: std::sync::Arc<Turns>,
}

impl<T: HttpTransport> HttpTransport for TurnTaking<T> {
    async fn fetch(
        &self,
        request: http::Request<Buffer>,
    ) -> opendal::Result<http::Response<HttpBody>> {
        let _turn = self.turns.request().await;
        self.inner.fetch(request).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A transport whose requests stay open until the gate lets them go,
    /// counting how many are open at once.
    struct Gated {
        gate: Arc<Semaphore>,
        open: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
    }

    impl HttpTransport for Gated {
        async fn fetch(
            &self,
            _request: http::Request<Buffer>,
        ) -> opendal::Result<http::Response<HttpBody>> {
            let open = self.open.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(open, Ordering::SeqCst);
            let _let_go = self.gate.acquire().await.expect("open gate");
            self.open.fetch_sub(1, Ordering::SeqCst);
            Err(opendal::Error::new(opendal::ErrorKind::Unexpected, "gated"))
        }
    }

    fn request() -> http::Request<Buffer> {
        http::Request::get("http://store/key")
            .body(Buffer::new())
            .expect("a request")
    }

    #[tokio::test]
    async fn requests_beyond_the_turns_wait_until_one_is_answered() {
        let gate = Arc::new(Semaphore::new(0));
        let (open, most) = (Arc::default(), Arc::default());
        let transport = Arc::new(TurnTaking {
            inner: Gated {
                gate: Arc::clone(&gate),
                open: Arc::clone(&open),
                most: Arc::clone(&most),
            },
            turns: Arc::new(Turns::default()),
        });
        let count = REQUESTS_AT_ONCE + 100;
        let requests: Vec<_> = (0..count)
            .map(|_| {
                let transport = Arc::clone(&transport);
                tokio::spawn(async move { transport.fetch(request()).await })
            })
            .collect();
        while open.load(Ordering::SeqCst) < REQUESTS_AT_ONCE {
            tokio::task::yield_now().await;
        }
        // Every task has run by now, and all but the turns wait.
        for _ in 0..count {
            tokio::task::yield_now().await;
        }
        assert_eq!(open.load(Ordering::SeqCst), REQUESTS_AT_ONCE);
        gate.add_permits(count);
        for request in requests {
            assert!(request.await.expect("the task").is_err());
        }
        assert_eq!(most.load(Ordering::SeqCst), REQUESTS_AT_ONCE);
        assert_eq!(open.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn parts_waiting_for_their_bytes_leave_the_requests_their_turns() {
        let turns = Turns::default();
        let mut parts = Vec::new();
        for _ in 0..PARTS_AT_ONCE {
            parts.push(turns.part().await);
        }
        let more = futures::FutureExt::now_or_never(turns.part());
        assert!(more.is_none(), "a part beyond the turns went at once");
        // The uploads' other requests (their saved states) still go.
        let _request = turns.request().await;
        drop(parts.pop());
        let _part = turns.part().await;
    }
}
