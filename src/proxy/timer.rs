//! The event loop's timer for per-request timeouts (hyper's header-read
//! timeout, the upstream response timeout).
//!
//! tokio's timer wakes its driver through the eventfd (a `write` syscall,
//! and an extra turn of `epoll_wait`) whenever a new timer is due before
//! every timer pending when the loop last went to sleep — which, with a
//! fresh timeout per request, was about every fifth request under load.
//! Here a timeout is an entry in the loop's own table (a lock and a slab
//! insert, no syscall); one task per loop sleeps on tokio's timer until the
//! earliest deadline (plus [`SLACK`], so that timeouts falling close
//! together are woken at once) and wakes what has expired. Timeouts fire at
//! most [`SLACK`] late, never early. The task sleeps with no wake-ups while
//! the table is empty.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use slab::Slab;
use tokio::sync::Notify;

/// How late a timeout may fire, so that one wake-up serves several.
pub const SLACK: Duration = Duration::from_millis(10);

/// One event loop's timeouts. Clones share the table.
#[derive(Debug, Clone, Default)]
pub struct LoopTimer {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    table: Mutex<Table>,
    /// Told when a timeout is due before the task planned to look.
    earlier: Notify,
}

#[derive(Debug, Default)]
struct Table {
    entries: Slab<Entry>,
    /// When the task will look next; `None` while it waits for entries.
    planned: Option<Instant>,
}

#[derive(Debug)]
struct Entry {
    deadline: Instant,
    waker: Waker,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Table> {
        // No code path panics while holding the lock with the table half-changed.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl LoopTimer {
    /// A future that completes at `deadline` (at most [`SLACK`] later).
    pub fn sleep_until(&self, deadline: Instant) -> LoopSleep {
        LoopSleep {
            inner: self.inner.clone(),
            deadline,
            key: None,
        }
    }

    /// `future`'s output, or `None` once `deadline` has passed.
    pub async fn timeout_at<F: Future>(&self, deadline: Instant, future: F) -> Option<F::Output> {
        let sleep = self.sleep_until(deadline);
        tokio::select! {
            biased;
            output = future => Some(output),
            () = sleep => None,
        }
    }

    /// Wakes expired timeouts for as long as the loop runs: spawn it once on
    /// the loop's runtime.
    pub async fn run(self) {
        loop {
            let (expired, next) = {
                let mut table = self.inner.lock();
                let now = Instant::now();
                let mut expired = Vec::new();
                let mut next: Option<Instant> = None;
                for (_, entry) in table.entries.iter() {
                    if entry.deadline <= now {
                        expired.push(entry.waker.clone());
                    } else {
                        next = Some(next.map_or(entry.deadline, |n| n.min(entry.deadline)));
                    }
                }
                table.planned = next.map(|at| at + SLACK);
                (expired, table.planned)
            };
            for waker in expired {
                waker.wake();
            }
            match next {
                Some(at) => tokio::select! {
                    () = tokio::time::sleep_until(at.into()) => {}
                    () = self.inner.earlier.notified() => {}
                },
                None => self.inner.earlier.notified().await,
            }
        }
    }
}

/// A timeout of a [`LoopTimer`]; dropping it removes it from the table.
#[derive(Debug)]
pub struct LoopSleep {
    inner: Arc<Inner>,
    deadline: Instant,
    key: Option<usize>,
}

impl LoopSleep {
    fn remove(&mut self) {
        if let Some(key) = self.key.take() {
            self.inner.lock().entries.try_remove(key);
        }
    }
}

impl Future for LoopSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if Instant::now() >= this.deadline {
            this.remove();
            return Poll::Ready(());
        }
        let mut table = this.inner.lock();
        if let Some(entry) = this.key.and_then(|key| table.entries.get_mut(key)) {
            if !entry.waker.will_wake(cx.waker()) {
                entry.waker = cx.waker().clone();
            }
            return Poll::Pending;
        }
        this.key = Some(table.entries.insert(Entry {
            deadline: this.deadline,
            waker: cx.waker().clone(),
        }));
        let earlier = table.planned.is_none_or(|planned| this.deadline < planned);
        drop(table);
        if earlier {
            this.inner.earlier.notify_one();
        }
        Poll::Pending
    }
}

impl Drop for LoopSleep {
    fn drop(&mut self) {
        self.remove();
    }
}

impl hyper::rt::Timer for LoopTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(self.sleep_until(Instant::now() + duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(LoopTimer::sleep_until(self, deadline))
    }
}

impl hyper::rt::Sleep for LoopSleep {}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_secs(secs: u64) -> Instant {
        Instant::now() + Duration::from_secs(secs)
    }

    #[tokio::test]
    async fn a_timeout_fires_after_its_deadline_and_no_later_than_the_slack() {
        let timer = LoopTimer::default();
        tokio::spawn(timer.clone().run());
        let started = Instant::now();
        let slow = timer.timeout_at(
            started + Duration::from_millis(50),
            std::future::pending::<()>(),
        );
        assert_eq!(slow.await, None);
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(50), "{took:?}");
        assert!(took < Duration::from_millis(50) + SLACK * 10, "{took:?}");
        let fast = timer.timeout_at(in_secs(5), async { 7 });
        assert_eq!(fast.await, Some(7));
    }

    #[tokio::test]
    async fn an_earlier_timeout_wakes_the_task_that_planned_a_later_one() {
        let timer = LoopTimer::default();
        tokio::spawn(timer.clone().run());
        let long = tokio::spawn({
            let timer = timer.clone();
            async move {
                timer
                    .timeout_at(in_secs(30), std::future::pending::<()>())
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let started = Instant::now();
        let short = timer.timeout_at(
            started + Duration::from_millis(30),
            std::future::pending::<()>(),
        );
        assert_eq!(short.await, None);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        long.abort();
    }

    #[tokio::test]
    async fn finished_and_dropped_timeouts_leave_the_table() {
        let timer = LoopTimer::default();
        tokio::spawn(timer.clone().run());
        for _ in 0..100 {
            let _ = timer
                .timeout_at(in_secs(30), tokio::task::yield_now())
                .await;
        }
        let _ = timer
            .timeout_at(in_secs(0), std::future::pending::<()>())
            .await;
        assert_eq!(timer.inner.lock().entries.len(), 0);
    }
}
