//! Worker threads: one single-threaded tokio runtime per core, each virtual user pinned to
//! one of them, so a user's requests, its connections' tasks and its timers all wake on one
//! thread (a work-stealing runtime parks and wakes threads around every request when the load
//! is light; bench/LEAN.md). Worker 0 is the engine's own thread; the others start when the
//! first user is placed on them.

use std::cell::Cell;
use std::future::Future;

use tokio::runtime::Handle;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

thread_local! {
    static LANE: Cell<usize> = const { Cell::new(0) };
}

/// The worker the current thread is (0 on any thread that is not a worker): which HTTP
/// connection pool its requests use.
pub fn lane() -> usize {
    LANE.with(Cell::get)
}

/// How many workers a run uses: one per CPU this process may run on, and no more than
/// `max_connections` (each worker keeps its own share of the connections).
pub fn count(max_connections: Option<usize>) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    cpus.min(max_connections.unwrap_or(usize::MAX)).max(1)
}

/// The run's worker threads (worker 0, the caller's runtime, is not among them).
pub struct Workers {
    count: usize,
    /// Workers 1.. once started; `None` when one could not start (its users run on worker 0).
    started: Vec<Option<Handle>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    stop: CancellationToken,
}

impl Workers {
    pub fn new(count: usize) -> Workers {
        Workers {
            count: count.max(1),
            started: Vec::new(),
            threads: Vec::new(),
            stop: CancellationToken::new(),
        }
    }

    /// Spawns user `index`'s task on its worker (round-robin).
    pub fn spawn<F>(&mut self, users: &mut JoinSet<()>, index: u64, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let w = (index % self.count as u64) as usize;
        match self.handle(w) {
            Some(h) => users.spawn_on(task, &h),
            None => users.spawn(task),
        };
    }

    /// Worker `w`'s runtime, started on first use; `None` for worker 0 (the current runtime).
    fn handle(&mut self, w: usize) -> Option<Handle> {
        if w == 0 {
            return None;
        }
        while self.started.len() < w {
            let n = self.started.len() + 1;
            let h = self.start(n);
            self.started.push(h);
        }
        self.started[w - 1].clone()
    }

    fn start(&mut self, lane: usize) -> Option<Handle> {
        let (tx, rx) = std::sync::mpsc::channel();
        let stop = self.stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("acaload-w{lane}"))
            .spawn(move || {
                LANE.with(|l| l.set(lane));
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
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
                self.threads.push(t);
                rx.recv().ok().flatten()
            }
            Err(_) => None,
        }
    }
}

impl Drop for Workers {
    /// Stops the workers; their runtimes drop whatever tasks are left (idle connections).
    fn drop(&mut self) {
        self.stop.cancel();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
