//! One timer for every wait of a connection.
//!
//! A connection waits for its peer thousands of times a second when
//! requests are small, and nearly every wait ends long before its limit. A
//! fresh `tokio::time::timeout` per wait registers a timer each time, and a
//! timer earlier than the runtime's next planned wake-up makes the runtime
//! wake itself (an `eventfd` write and an extra `epoll_wait`, a few
//! microseconds a request). Here one timer stays registered across waits
//! and is only moved when it fires: a wait that ends in time costs a clock
//! read and nothing else.

use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// Bounds a connection's waits, one at a time, with one shared timer.
#[derive(Default)]
pub(super) struct WaitLimit {
    /// Registered at the first bounded wait that had to wait, and kept. Its
    /// deadline may be stale (earlier than the current wait's): when it
    /// fires early, it is moved to the real deadline.
    timer: Option<Pin<Box<Sleep>>>,
}

impl WaitLimit {
    /// Runs `wait`, failing with `TimedOut` if it takes longer than `limit`
    /// (`None` waits forever).
    pub(super) async fn bound<T>(
        &mut self,
        limit: Option<Duration>,
        wait: impl Future<Output = io::Result<T>>,
    ) -> io::Result<T> {
        let Some(limit) = limit else {
            return wait.await;
        };
        let deadline = Instant::now() + limit;
        if let Some(timer) = self.timer.as_mut()
            && timer.deadline() > deadline
        {
            // The limit shrank since the timer was set: only an earlier
            // deadline has to move it now.
            timer.as_mut().reset(deadline);
        }
        let mut wait = pin!(wait);
        poll_fn(|context| {
            if let Poll::Ready(result) = wait.as_mut().poll(context) {
                return Poll::Ready(result);
            }
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            loop {
                std::task::ready!(timer.as_mut().poll(context));
                if Instant::now() >= deadline {
                    return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
                }
                // Set for an earlier wait: on to this one's deadline.
                timer.as_mut().reset(deadline);
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_wait_that_ends_in_time_gives_its_result() {
        let mut limit = WaitLimit::default();
        let result = limit
            .bound(Some(Duration::from_secs(5)), async {
                tokio::time::sleep(Duration::from_secs(4)).await;
                Ok(7)
            })
            .await;
        assert_eq!(result.unwrap(), 7);
    }

    #[tokio::test(start_paused = true)]
    async fn each_wait_gets_its_whole_limit_from_when_it_begins() {
        let mut limit = WaitLimit::default();
        // The first wait sets the timer for t = 5 s, and ends at t = 4 s.
        limit
            .bound(Some(Duration::from_secs(5)), async {
                tokio::time::sleep(Duration::from_secs(4)).await;
                Ok(())
            })
            .await
            .unwrap();
        // The second begins at t = 4 s: the stale timer fires at 5 s, and
        // the wait must go on until 9 s, not fail there.
        let began = Instant::now();
        let failed = limit
            .bound(
                Some(Duration::from_secs(5)),
                std::future::pending::<io::Result<()>>(),
            )
            .await
            .unwrap_err();
        assert_eq!(failed.kind(), io::ErrorKind::TimedOut);
        assert_eq!(Instant::now() - began, Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_shorter_limit_moves_the_timer_earlier() {
        let mut limit = WaitLimit::default();
        let pending = || std::future::pending::<io::Result<()>>();
        let long = limit.bound(Some(Duration::from_secs(60)), async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok(())
        });
        long.await.unwrap();
        let began = Instant::now();
        let failed = limit
            .bound(Some(Duration::from_secs(2)), pending())
            .await
            .unwrap_err();
        assert_eq!(failed.kind(), io::ErrorKind::TimedOut);
        assert_eq!(Instant::now() - began, Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn no_limit_waits_as_long_as_it_takes() {
        let mut limit = WaitLimit::default();
        let result = limit
            .bound(None, async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok("late")
            })
            .await;
        assert_eq!(result.unwrap(), "late");
    }
}
