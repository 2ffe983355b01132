//! Worker threads: one single-threaded tokio runtime per core, each virtual user pinned to
//! one of them, so a user's requests, its connections' tasks and its timers all wake on one
//! thread (a work-stealing runtime parks and wakes threads around every request when the load
//! is light; bench/LEAN.md). Worker 0 is the engine's own thread.
//!
//! A run starts packed: every user on worker 0, the other workers not started. At real-agent
//! rates one thread has the time, and its code and data stay in one core's caches (on the
//! real stack, user CPU 12 % lower than with users split over two threads; bench/LEAN.md).
//! Once worker 0 is busy for half of a second, the run spreads for good: the workers start,
//! new users go round-robin, and each packed user moves to its own worker between two
//! iterations. Runs that split `target.max_connections` among the workers, and edge agents
//! (their sockets belong to the runtime that opened them), never move.

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

thread_local! {
    static LANE: Cell<usize> = const { Cell::new(0) };
}

/// Worker 0's busy share of a second at which a packed run spreads.
const SPREAD_AT: f64 = 0.5;

/// The worker the current thread is (0 on any thread that is not a worker): which HTTP
/// connection pool its requests use.
pub fn lane() -> usize {
    LANE.with(Cell::get)
}

/// A worker's runtime (the engine's own, worker 0, included): single-threaded, and ending
/// think times on its wake-ups (`engine::slack`, whose timer is registered with the runtime's
/// I/O driver: keep `enable_all`).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_park(crate::engine::slack::wake_due)
        .on_thread_unpark(crate::engine::slack::wake_due)
        .build()
}

/// How many workers a run uses: one per CPU this process may run on, and no more than
/// `max_connections` (each worker keeps its own share of the connections).
pub fn count(max_connections: Option<usize>) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    cpus.min(max_connections.unwrap_or(usize::MAX)).max(1)
}

/// The run's workers (worker 0, the engine's runtime, is not among the threads).
pub struct Workers {
    count: usize,
    /// Users are placed round-robin (else all on worker 0).
    spread: AtomicBool,
    /// Workers 1.., once started; `None` for one that could not start (its users stay on
    /// worker 0).
    started: OnceLock<Vec<Option<Handle>>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    stop: CancellationToken,
}

impl Workers {
    /// `packed`: start with every user on worker 0 (see the module's text); otherwise users
    /// are placed round-robin from the first.
    pub fn new(count: usize, packed: bool) -> Workers {
        let count = count.max(1);
        Workers {
            count,
            spread: AtomicBool::new(count > 1 && !packed),
            started: OnceLock::new(),
            threads: Mutex::default(),
            stop: CancellationToken::new(),
        }
    }

    /// Whether the run is packed on worker 0 and may still spread.
    pub fn packed(&self) -> bool {
        self.count > 1 && !self.spread.load(Ordering::Relaxed)
    }

    /// User `index`'s own worker once the run is spread.
    fn home(&self, index: u64) -> usize {
        (index % self.count as u64) as usize
    }

    /// Spawns user `index`'s task: on worker 0 while packed, else on its own worker.
    pub fn spawn<F>(&self, users: &mut JoinSet<()>, index: u64, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match self.spread_handle(self.home(index)) {
            Some(h) => users.spawn_on(task, &h),
            None => users.spawn(task),
        };
    }

    /// Where user `index`, running on the current worker, should move to: its own worker,
    /// once the run is spread and it is not there. `None` otherwise.
    pub fn move_for(&self, index: u64) -> Option<Handle> {
        let home = self.home(index);
        if home == lane() {
            return None;
        }
        self.spread_handle(home)
    }

    /// Worker `w`'s runtime when the run is spread and `w` is not worker 0.
    fn spread_handle(&self, w: usize) -> Option<Handle> {
        if w == 0 || !self.spread.load(Ordering::Acquire) {
            return None;
        }
        self.handles().get(w - 1).cloned().flatten()
    }

    /// Workers 1..'s runtimes, all started on first use.
    fn handles(&self) -> &[Option<Handle>] {
        self.started
            .get_or_init(|| (1..self.count).map(|n| self.start(n)).collect())
    }

    /// While packed: once a second, spreads the run when worker 0 (the caller's runtime) was
    /// busy for at least half of it. Returns when spread.
    pub async fn balance(&self) {
        let metrics = Handle::current().metrics();
        let busy = || metrics.worker_total_busy_duration(0);
        let mut last = (tokio::time::Instant::now(), busy());
        while self.packed() {
            // on a wake-up the thread has anyway (its share is measured over the time taken)
            crate::engine::slack::pause(Duration::from_secs(1)).await;
            let now = (tokio::time::Instant::now(), busy());
            let share = (now.1.saturating_sub(last.1)).as_secs_f64()
                / now.0.duration_since(last.0).as_secs_f64().max(1e-3);
            if share >= SPREAD_AT {
                self.handles();
                self.spread.store(true, Ordering::Release);
            }
            last = now;
        }
    }

    fn start(&self, lane: usize) -> Option<Handle> {
        let (tx, rx) = std::sync::mpsc::channel();
        let stop = self.stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("acaload-w{lane}"))
            .spawn(move || {
                LANE.with(|l| l.set(lane));
                match runtime() {
                    Ok(rt) => {
                        let _ = tx.send(Some(rt.handle().clone()));
                        rt.block_on(stop.cancelled());
                    }
                    Err(_) => {
                        let _ = tx.send(None);
                    }
                }
            });
        match thread {
            Ok(t) => {
                if let Ok(mut threads) = self.threads.lock() {
                    threads.push(t);
                }
                rx.recv().ok().flatten()
            }
            Err(_) => None,
        }
    }

    /// Stops the workers and waits for them; their runtimes drop whatever tasks are left
    /// (idle connections). Called by the engine's thread once the users are done.
    pub fn shutdown(&self) {
        self.stop.cancel();
        let threads = self
            .threads
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Workers {
    /// Lets the workers end (without waiting: the last holder may be a worker itself).
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_packed_run_places_users_on_worker_0_until_it_spreads() {
        let w = Workers::new(2, true);
        assert!(w.packed());
        let mut users = JoinSet::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for i in 0..2 {
            let tx = tx.clone();
            w.spawn(&mut users, i, async move {
                let _ = tx.send(lane());
            });
        }
        assert_eq!((rx.recv().await, rx.recv().await), (Some(0), Some(0)));
        assert!(w.move_for(0).is_none() && w.move_for(1).is_none());
        // worker 0 busy (this thread blocked) for the whole of the balancer's second: the
        // run spreads
        let spread = tokio::spawn(async move {
            w.balance().await;
            w
        });
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_millis(1100));
        let w = spread.await.unwrap();
        assert!(!w.packed());
        assert!(w.move_for(0).is_none(), "user 0's worker is worker 0");
        let to = w.move_for(1).expect("user 1 moves to worker 1");
        let (tx2, mut rx2) = tokio::sync::mpsc::unbounded_channel();
        to.spawn(async move {
            let _ = tx2.send(lane());
        });
        assert_eq!(rx2.recv().await, Some(1));
        w.spawn(&mut users, 3, async move {
            let _ = tx.send(lane());
        });
        assert_eq!(rx.recv().await, Some(1));
        while users.join_next().await.is_some() {}
        w.shutdown();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_unpacked_run_places_users_round_robin_from_the_first() {
        let w = Workers::new(2, false);
        assert!(!w.packed());
        let mut users = JoinSet::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for i in 0..2 {
            let tx = tx.clone();
            w.spawn(&mut users, i, async move {
                let _ = tx.send((i, lane()));
            });
        }
        let mut got = vec![rx.recv().await.unwrap(), rx.recv().await.unwrap()];
        got.sort();
        assert_eq!(got, vec![(0, 0), (1, 1)]);
        while users.join_next().await.is_some() {}
        w.shutdown();
    }
}
