//! Think time with slack: a pause between iterations may end up to 1 % of its length late,
//! on a wake-up its thread has anyway (a response, a webhook, another user's pause), instead
//! of waking the thread for itself. At real-agent rates most of what acaload costs is waking
//! up (bench/LEAN.md); operating systems coalesce timers with slack for the same reason.
//!
//! The runtimes that run users call [`wake_due`] around every park (`on_thread_park`,
//! `on_thread_unpark`). On a thread whose runtime does not, a pause ends on time. When nothing
//! else wakes the thread, a `timerfd` of the thread's own does, at the earliest latest end of
//! its pauses.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;

/// A pause may end this fraction of its length late (1 / 100).
const SLACK_DIVISOR: u32 = 100;

/// Numbers the pauses of every thread (a key is never reused).
static NEXT: AtomicU64 = AtomicU64::new(0);

/// A pause's key: its time, and its number.
type Key = (Instant, u64);

/// The pauses waiting on one thread, by their time and by their latest end.
#[derive(Default)]
struct Pauses {
    /// Key -> (latest end, waker).
    by_time: BTreeMap<Key, (Instant, Waker)>,
    /// (latest end, number) of the same pauses.
    by_latest: BTreeSet<Key>,
    alarm: Option<alarm::Alarm>,
}

impl Pauses {
    /// The pauses whose time has come, taken out.
    fn take_due(&mut self, now: Instant) -> Vec<Waker> {
        let mut woken = Vec::new();
        while let Some(entry) = self.by_time.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let ((_, n), (latest, waker)) = entry.remove_entry();
            self.by_latest.remove(&(latest, n));
            woken.push(waker);
        }
        woken
    }

    fn insert(&mut self, key: Key, latest: Instant, waker: Waker) {
        self.by_time.insert(key, (latest, waker));
        self.by_latest.insert((latest, key.1));
    }

    fn remove(&mut self, key: Key) {
        if let Some((latest, _)) = self.by_time.remove(&key) {
            self.by_latest.remove(&(latest, key.1));
        }
    }

    /// Notes the first time left (for `wake_due`) and sets the alarm to the earliest latest
    /// end left.
    fn arm(&mut self) {
        FIRST.set(self.by_time.first_key_value().map(|(k, _)| k.0));
        if let Some(alarm) = &mut self.alarm {
            alarm.set(self.by_latest.first().map(|k| k.0));
        }
    }
}

thread_local! {
    /// The runtime that called `wake_due` after its last unpark on this thread: pauses in
    /// it may wait for wake-ups (another runtime on the same thread may not call it).
    static HOOKED: Cell<Option<tokio::runtime::Id>> = const { Cell::new(None) };
    /// The runtime whose task watches this thread's alarm.
    static WATCHED: Cell<Option<tokio::runtime::Id>> = const { Cell::new(None) };
    /// The time of this thread's first pause, if any: most wake-ups end none.
    static FIRST: Cell<Option<Instant>> = const { Cell::new(None) };
    /// Pauses on this thread that may end at the next wake-up once their time has come.
    static PAUSES: RefCell<Pauses> = RefCell::new(Pauses::default());
}

/// Ends the pauses of this thread whose time has come; for `on_thread_unpark`, and for
/// `on_thread_park`, so that a thread never blocks with a pause due or its alarm unwatched
/// (the alarm may have gone off while the thread was too busy to park).
pub fn wake_due() {
    let runtime = tokio::runtime::Handle::try_current().ok().map(|h| h.id());
    HOOKED.set(runtime);
    if WATCHED.get() != runtime {
        watch(runtime);
    }
    end_due();
}

/// A busy thread polls its I/O between tasks without parking, and the hooks run only around
/// a park: a task of the runtime's own waits for the alarm, so that a pause ends by its latest
/// end however busy its thread is. Started at the first park after the alarm was made.
fn watch(runtime: Option<tokio::runtime::Id>) {
    let Some(runtime) = runtime else {
        return;
    };
    let mine = |p: &Pauses| p.alarm.as_ref().is_some_and(|a| a.runtime() == runtime);
    if !PAUSES.with_borrow(mine) {
        return;
    }
    WATCHED.set(Some(runtime));
    tokio::spawn(std::future::poll_fn(move |cx| {
        loop {
            let fired = PAUSES.with_borrow(|p| match &p.alarm {
                Some(a) if a.runtime() == runtime => a.poll_fired(cx),
                // a newer runtime's alarm, or none: nothing left to watch
                _ => Poll::Ready(false),
            });
            match fired {
                Poll::Ready(true) => end_due(),
                Poll::Ready(false) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
    }));
}

/// Ends the pauses whose time has come.
fn end_due() {
    let Some(first) = FIRST.get() else {
        return;
    };
    let now = Instant::now();
    if first > now {
        return;
    }
    let woken = PAUSES.with_borrow_mut(|p| {
        let woken = p.take_due(now);
        p.arm();
        woken
    });
    woken.into_iter().for_each(Waker::wake);
}

/// Takes a pause out of its thread's list when it is dropped before it ended (a user
/// stopped during its think time).
struct Registered(Option<Key>);

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(key) = self.0 {
            // at thread exit the list may be gone already; nothing is left to wake then
            let _ = PAUSES.try_with(|p| {
                if let Ok(mut p) = p.try_borrow_mut() {
                    p.remove(key);
                    p.arm();
                }
            });
        }
    }
}

/// Pauses for `d`, ending at the first wake-up of this thread after `d` and at most `d` /
/// 100 later.
///
/// The latest end wakes the thread through a timer of its own (a `timerfd` in the runtime's
/// poll) rather than tokio's timer wheel, which wakes its thread once more before a timer
/// more than 64 ms away, to move it to a finer level of the wheel (bench/LEAN.md, seventh
/// pass). Without that alarm, a tokio timer ends the pause at its latest.
pub async fn pause(d: Duration) {
    let at = Instant::now() + d;
    let runtime = tokio::runtime::Handle::try_current().ok().map(|h| h.id());
    if runtime.is_none() || HOOKED.get() != runtime {
        return tokio::time::sleep_until(at).await;
    }
    let latest = at + d / SLACK_DIVISOR;
    let mut registered = Registered(None);
    let mut fallback = None;
    std::future::poll_fn(|cx| {
        if Instant::now() >= at {
            return Poll::Ready(());
        }
        if let Some(sleep) = &mut fallback {
            let sleep: &mut std::pin::Pin<Box<tokio::time::Sleep>> = sleep;
            if sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        if registered.0.is_none() {
            let key = (at, NEXT.fetch_add(1, Ordering::Relaxed));
            let alarmed = PAUSES.with_borrow_mut(|p| {
                p.insert(key, latest, cx.waker().clone());
                let alarmed = alarm::ready(&mut p.alarm);
                p.arm();
                alarmed
            });
            registered.0 = Some(key);
            if !alarmed {
                let mut sleep = Box::pin(tokio::time::sleep_until(latest));
                if sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(());
                }
                fallback = Some(sleep);
            }
        }
        Poll::Pending
    })
    .await;
}

/// The thread's own timer for the latest ends: a `timerfd` registered with the runtime's
/// poll, so it wakes the thread as any socket does and `wake_due` runs.
#[cfg(target_os = "linux")]
mod alarm {
    use rustix::time::{Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec};
    use tokio::io::unix::AsyncFd;
    use tokio::time::Instant;

    pub struct Alarm {
        fd: AsyncFd<std::os::fd::OwnedFd>,
        /// The runtime whose poll holds the timer.
        runtime: tokio::runtime::Id,
        /// When it goes off.
        set: Option<Instant>,
    }

    /// Makes sure `alarm` belongs to the current runtime; false when there is none to have
    /// (no runtime, or no timer could be made).
    pub fn ready(alarm: &mut Option<Alarm>) -> bool {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        if alarm.as_ref().is_some_and(|a| a.runtime == handle.id()) {
            return true;
        }
        *alarm = None;
        let Ok(fd) = rustix::time::timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        ) else {
            return false;
        };
        // SAFETY: the `OwnedFd` is owned by the `AsyncFd` until it is dropped, so its raw fd
        // stays open and refers to this timer all that time.
        let registered =
            unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) };
        let Ok(fd) = registered else {
            return false;
        };
        *alarm = Some(Alarm {
            fd,
            runtime: handle.id(),
            set: None,
        });
        true
    }

    impl Alarm {
        #[cfg(test)]
        pub fn is_off(&self) -> bool {
            self.set.is_none()
        }

        pub fn runtime(&self) -> tokio::runtime::Id {
            self.runtime
        }

        /// Ready(true) once it went off since the last time; Ready(false) when the runtime's
        /// I/O has gone.
        pub fn poll_fired(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<bool> {
            match self.fd.poll_read_ready(cx) {
                std::task::Poll::Ready(Ok(mut ready)) => {
                    ready.clear_ready();
                    std::task::Poll::Ready(true)
                }
                std::task::Poll::Ready(Err(_)) => std::task::Poll::Ready(false),
                std::task::Poll::Pending => std::task::Poll::Pending,
            }
        }

        /// Goes off at `at` (at once if it has passed), or never.
        pub fn set(&mut self, at: Option<Instant>) {
            if at == self.set {
                return;
            }
            let zero = Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            let value = match at {
                // a zero value would disarm it
                Some(at) => {
                    let d = at.saturating_duration_since(Instant::now());
                    Timespec {
                        tv_sec: d.as_secs() as i64,
                        tv_nsec: i64::from(d.subsec_nanos().max(1)),
                    }
                }
                None => zero,
            };
            let spec = Itimerspec {
                it_interval: zero,
                it_value: value,
            };
            // Re-setting also clears its count of expirations, so it is never read. On
            // failure the pauses still end on other wake-ups and stay registered.
            if rustix::time::timerfd_settime(self.fd.get_ref(), TimerfdTimerFlags::empty(), &spec)
                .is_ok()
            {
                self.set = at;
            }
        }
    }
}

/// Elsewhere a tokio timer ends each pause at its latest.
#[cfg(not(target_os = "linux"))]
mod alarm {
    pub struct Alarm;

    pub fn ready(_: &mut Option<Alarm>) -> bool {
        false
    }

    impl Alarm {
        #[cfg(test)]
        pub fn is_off(&self) -> bool {
            true
        }

        pub fn runtime(&self) -> tokio::runtime::Id {
            unreachable!("no alarm is made here")
        }

        pub fn poll_fired(&self, _: &mut std::task::Context<'_>) -> std::task::Poll<bool> {
            std::task::Poll::Ready(false)
        }

        pub fn set(&mut self, _: Option<tokio::time::Instant>) {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paused time, and no hook: the clock moves only to the next timer, so every figure is
    /// exact.
    fn unhooked() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
    }

    /// Thread unparks of the runtimes `counted` builds (each test has a thread of its own).
    fn counted() -> (tokio::runtime::Runtime, std::sync::Arc<AtomicU64>) {
        let unparks = std::sync::Arc::new(AtomicU64::new(0));
        let seen = unparks.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .on_thread_park(wake_due)
            .on_thread_unpark(move || {
                seen.fetch_add(1, Ordering::SeqCst);
                wake_due();
            })
            .build()
            .unwrap();
        (rt, unparks)
    }

    #[test]
    fn a_pause_with_nothing_else_to_end_it_wakes_its_thread_once_at_its_latest() {
        let (rt, unparks) = counted();
        rt.block_on(async {
            // the hook marks its thread when it first runs, around the first park; the first
            // pause makes the alarm, and the next park starts its watcher (one wake-up more)
            tokio::time::sleep(ms(1)).await;
            pause(ms(10)).await;
            for _ in 0..3 {
                let before = unparks.load(Ordering::SeqCst);
                let t = Instant::now();
                pause(ms(200)).await;
                // 1 % late; with tokio's timer instead (forced) the thread woke three times,
                // once of them only to move the timer from its 64 ms level to its 1 ms one
                assert!(t.elapsed() >= ms(202), "{:?}", t.elapsed());
                assert_eq!(unparks.load(Ordering::SeqCst) - before, 1);
            }
            // the alarm is off once nothing waits
            assert_nothing_waits();
        });
    }

    #[test]
    fn pauses_that_end_close_together_share_a_wake_up() {
        let (rt, unparks) = counted();
        rt.block_on(async {
            tokio::time::sleep(ms(1)).await;
            pause(ms(10)).await;
            let before = unparks.load(Ordering::SeqCst);
            let pauses: Vec<_> = (0..10).map(|_| tokio::spawn(pause(ms(150)))).collect();
            for p in pauses {
                p.await.unwrap();
            }
            assert_eq!(unparks.load(Ordering::SeqCst) - before, 1);
        });
    }

    #[test]
    fn a_pause_ends_on_a_wake_up_after_its_time_and_never_before() {
        let (rt, unparks) = counted();
        rt.block_on(async {
            tokio::time::sleep(ms(1)).await;
            // another timer wakes the thread just after the pause's time: it ends there
            let seen = unparks.clone();
            let t = Instant::now();
            let other = tokio::spawn(async move {
                tokio::time::sleep(ms(201)).await;
                seen.load(Ordering::SeqCst)
            });
            pause(ms(200)).await;
            let ended = unparks.load(Ordering::SeqCst);
            assert!(t.elapsed() >= ms(200));
            assert_eq!(other.await.unwrap(), ended);
            // one well before it does not end it early
            let seen = unparks.clone();
            let t = Instant::now();
            let other = tokio::spawn(async move {
                tokio::time::sleep(ms(100)).await;
                seen.load(Ordering::SeqCst)
            });
            pause(ms(200)).await;
            assert!(t.elapsed() >= ms(202), "{:?}", t.elapsed());
            assert!(other.await.unwrap() < unparks.load(Ordering::SeqCst));
        });
    }

    #[test]
    fn a_pause_ends_by_its_latest_on_a_thread_too_busy_to_park() {
        let (rt, _) = counted();
        rt.block_on(async {
            tokio::time::sleep(ms(1)).await;
            // the alarm is made, and its watcher started at the next park
            pause(ms(10)).await;
            let spin = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
            let spinning = spin.clone();
            // always runnable: the runtime only polls its I/O in passing and never parks
            let spinner = tokio::spawn(async move {
                let t = Instant::now();
                while spinning.load(Ordering::SeqCst) && t.elapsed() < ms(3000) {
                    tokio::task::yield_now().await;
                }
            });
            let t = Instant::now();
            pause(ms(100)).await;
            let took = t.elapsed();
            let spinning = !spinner.is_finished();
            spin.store(false, Ordering::SeqCst);
            spinner.await.unwrap();
            assert!(spinning, "the thread parked: the spinner had stopped");
            assert!(took >= ms(101) && took < ms(1000), "{took:?}");
        });
    }

    #[test]
    fn a_pause_dropped_before_its_end_leaves_nothing_behind() {
        let (rt, _) = counted();
        rt.block_on(async {
            tokio::time::sleep(ms(1)).await;
            tokio::select! {
                _ = pause(Duration::from_secs(10)) => panic!("the pause ended"),
                _ = tokio::time::sleep(ms(5)) => {}
            }
            assert_nothing_waits();
        });
    }

    #[test]
    fn a_runtime_without_the_hook_after_one_with_it_ends_its_pauses_on_time() {
        std::thread::spawn(|| {
            let (rt, _) = counted();
            rt.block_on(async {
                tokio::time::sleep(ms(1)).await;
                pause(ms(10)).await;
            });
            drop(rt);
            // the same thread, a runtime that never calls `wake_due`: no waiting for it
            unhooked().block_on(async {
                let t = Instant::now();
                let paused = tokio::time::timeout(Duration::from_secs(60), pause(ms(500))).await;
                assert!(
                    paused.is_ok(),
                    "the pause waited for a wake-up that never came"
                );
                assert_eq!(t.elapsed(), ms(500));
            });
        })
        .join()
        .unwrap();
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// No pause is left on this thread, and its alarm is off.
    fn assert_nothing_waits() {
        PAUSES.with_borrow(|p| {
            assert!(p.by_time.is_empty() && p.by_latest.is_empty());
            assert!(p.alarm.as_ref().is_some_and(|a| a.is_off()));
        });
        assert_eq!(FIRST.get(), None);
    }

    #[test]
    fn without_the_hook_a_pause_ends_on_time() {
        // a thread of its own: the hook marks the thread it ran on
        std::thread::spawn(|| {
            unhooked().block_on(async {
                let t = Instant::now();
                pause(ms(500)).await;
                assert_eq!(t.elapsed(), ms(500));
            });
        })
        .join()
        .unwrap();
    }
}
