//! Think time with slack: a pause between iterations may end up to 1 % of its length late,
//! on a wake-up its thread has anyway (a response, a webhook, another user's pause), instead
//! of waking the thread for itself. At real-agent rates most of what acaload costs is waking
//! up (bench/LEAN.md); operating systems coalesce timers with slack for the same reason.
//!
//! The runtimes that run users call [`wake_due`] after every unpark (`on_thread_unpark`). On
//! a thread whose runtime does not, a pause ends on time.

use std::cell::{Cell, RefCell};
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::task::{Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;

/// A pause may end this fraction of its length late (1 / 100).
const SLACK_DIVISOR: u32 = 100;

struct Due {
    at: Instant,
    waker: Waker,
}

impl PartialEq for Due {
    fn eq(&self, other: &Due) -> bool {
        self.at == other.at
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Due) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Due) -> Ordering {
        self.at.cmp(&other.at)
    }
}

thread_local! {
    /// This thread's runtime calls `wake_due` after each unpark.
    static HOOKED: Cell<bool> = const { Cell::new(false) };
    /// Pauses on this thread that may end at the next wake-up once their time has come.
    static DUE: RefCell<BinaryHeap<Reverse<Due>>> = const { RefCell::new(BinaryHeap::new()) };
}

/// Ends the pauses of this thread whose time has come; for `on_thread_unpark`.
pub fn wake_due() {
    HOOKED.set(true);
    let now = Instant::now();
    let mut woken = Vec::new();
    DUE.with_borrow_mut(|due| {
        while due.peek().is_some_and(|d| d.0.at <= now) {
            if let Some(Reverse(d)) = due.pop() {
                woken.push(d.waker);
            }
        }
    });
    woken.into_iter().for_each(Waker::wake);
}

/// Pauses for `d`, ending at the first wake-up of this thread after `d` and at most `d` /
/// 100 later.
pub async fn pause(d: Duration) {
    let at = Instant::now() + d;
    if !HOOKED.get() {
        return tokio::time::sleep_until(at).await;
    }
    let latest = tokio::time::sleep_until(at + d / SLACK_DIVISOR);
    tokio::pin!(latest);
    let mut registered = false;
    std::future::poll_fn(|cx| {
        if latest.as_mut().poll(cx).is_ready() || Instant::now() >= at {
            return Poll::Ready(());
        }
        if !registered {
            registered = true;
            let waker = cx.waker().clone();
            DUE.with_borrow_mut(|due| due.push(Reverse(Due { at, waker })));
        }
        Poll::Pending
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paused time: the clock moves only to the next timer, so every figure is exact.
    fn runtime(hooked: bool) -> tokio::runtime::Runtime {
        let mut b = tokio::runtime::Builder::new_current_thread();
        b.enable_all().start_paused(true);
        if hooked {
            b.on_thread_unpark(wake_due);
        }
        b.build().unwrap()
    }

    #[test]
    fn a_pause_ends_on_a_wake_up_after_its_time_and_never_before() {
        runtime(true).block_on(async {
            // the hook marks its thread when it first runs, after the first park
            tokio::time::sleep(Duration::from_millis(1)).await;
            // nothing else wakes the thread: the pause ends at its latest, 1 % late
            let t = Instant::now();
            pause(Duration::from_millis(500)).await;
            assert_eq!(t.elapsed(), Duration::from_millis(505));
            // another timer wakes the thread 2 ms after the pause's time: it ends there
            let t = Instant::now();
            let other = tokio::spawn(tokio::time::sleep(Duration::from_millis(502)));
            pause(Duration::from_millis(500)).await;
            assert_eq!(t.elapsed(), Duration::from_millis(502));
            // and one 2 ms before it does not end it early
            let t = Instant::now();
            let other2 = tokio::spawn(tokio::time::sleep(Duration::from_millis(498)));
            pause(Duration::from_millis(500)).await;
            assert_eq!(t.elapsed(), Duration::from_millis(505));
            other.await.unwrap();
            other2.await.unwrap();
        });
    }

    #[test]
    fn without_the_hook_a_pause_ends_on_time() {
        // a thread of its own: the hook marks the thread it ran on
        std::thread::spawn(|| {
            runtime(false).block_on(async {
                let t = Instant::now();
                pause(Duration::from_millis(500)).await;
                assert_eq!(t.elapsed(), Duration::from_millis(500));
            });
        })
        .join()
        .unwrap();
    }
}
