//! hyper's header-read timeout, at a clock read per request instead of a timer per request.
//!
//! hyper arms a new sleep for every request head it waits for and drops it once the head is
//! read: on a kept-alive connection that is a timer-wheel insertion and removal, and two
//! allocations, per request. A [`HeadTimer`] keeps one tokio sleep per connection instead. Each
//! sleep hyper asks for only records its deadline; when polled it waits on the shared sleep,
//! which is moved only when it fires before the deadline asked for (deadlines only move later
//! on a connection, so that is once per timeout at most) or when a deadline comes earlier than
//! the one it is set to.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

/// One connection's timer (see the module's documentation).
#[derive(Debug, Clone)]
pub(super) struct HeadTimer {
    shared: Arc<Mutex<Pin<Box<tokio::time::Sleep>>>>,
}

impl HeadTimer {
    pub(super) fn new() -> Self {
        // Far off until the first head is awaited: polling it is what sets it.
        let far = tokio::time::Instant::now() + std::time::Duration::from_secs(86_400 * 365);
        Self { shared: Arc::new(Mutex::new(Box::pin(tokio::time::sleep_until(far)))) }
    }
}

/// Times by tokio's clock (which tests may pause), as hyper-util's `TokioTimer` does; hyper's
/// trait speaks std's `Instant`.
#[allow(clippy::disallowed_types)]
impl hyper::rt::Timer for HeadTimer {
    fn now(&self) -> std::time::Instant {
        tokio::time::Instant::now().into_std()
    }

    fn sleep(&self, duration: std::time::Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(self.now() + duration)
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HeadSleep { deadline: deadline.into(), shared: Arc::clone(&self.shared) })
    }
}

/// A sleep until `deadline` on the connection's shared sleep.
struct HeadSleep {
    deadline: tokio::time::Instant,
    shared: Arc<Mutex<Pin<Box<tokio::time::Sleep>>>>,
}

impl Future for HeadSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut sleep = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        if sleep.deadline() > self.deadline {
            sleep.as_mut().reset(self.deadline);
        }
        loop {
            std::task::ready!(sleep.as_mut().poll(cx));
            if sleep.deadline() >= self.deadline {
                return Poll::Ready(());
            }
            // It fired for an earlier head's deadline: wait on for this one.
            sleep.as_mut().reset(self.deadline);
        }
    }
}

impl hyper::rt::Sleep for HeadSleep {}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hyper::rt::Timer;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn each_sleep_ends_at_its_own_deadline() {
        let timer = HeadTimer::new();
        let start = tokio::time::Instant::now();
        // A head awaited, then read: its sleep is dropped, the shared one stays set.
        let first = timer.sleep(Duration::from_secs(10));
        assert!(futures::poll!(first).is_pending());
        tokio::time::advance(Duration::from_secs(4)).await;
        // The next head: its deadline is 10 s from now, past the first one's.
        let second = timer.sleep(Duration::from_secs(10));
        tokio::time::timeout(Duration::from_secs(30), second).await.expect("the second sleep ends");
        assert_eq!(start.elapsed().as_secs(), 14);
        // A deadline sooner than the one the shared sleep is set to is kept too.
        let later = timer.sleep(Duration::from_secs(60));
        assert!(futures::poll!(later).is_pending());
        let sooner = timer.sleep(Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(30), sooner).await.expect("the sooner sleep ends");
        assert_eq!(start.elapsed().as_secs(), 15);
    }
}
