//! What a run shares: its settings from outside the plan, the context every virtual user
//! holds, the count of busy users, and the stop signals.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::engine::pairing::Pools;
use crate::engine::shard::Shard;
use crate::measure::metrics::Recorder;
use crate::plan::compile::CompiledPlan;
use crate::plan::resolve::Durations;
use crate::plan::scope::Globals;

/// Settings of one run that do not come from the plan.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub seed: u64,
    pub run_id: String,
    pub shard_index: u32,
    pub shard_count: u32,
    /// How long in-flight work may take after the time limit or first signal.
    pub grace: Duration,
    pub verbose_failures: bool,
}

/// What every user of a run shares.
pub(crate) struct RunContext {
    pub plan: Arc<CompiledPlan>,
    pub globals: Arc<Globals>,
    /// The plan's durations in this run (templated ones rendered by `resolve`).
    pub durations: Durations,
    /// Pause between iterations, from..to.
    pub think: Option<(Duration, Duration)>,
    /// `target.timeout`, for requests without their own.
    pub timeout: Duration,
    /// The plan's requests go through this client.
    pub http: crate::engine::http::Client,
    pub recorder: Recorder,
    pub pools: Pools,
    pub seed: u64,
    pub run_id: String,
    pub shard: Shard,
    /// Cancelled when in-flight requests must be abandoned (second signal, grace over).
    pub hard_stop: CancellationToken,
    pub secrets: Vec<String>,
    pub verbose_failures: bool,
    /// Agent events by wallet, when the plan has an `events:` source.
    pub events: Option<Arc<crate::engine::events::EventHub>>,
    /// What the run's edge agents share, when the plan has `didcomm:` steps.
    pub edge: Option<Arc<crate::engine::edge::EdgeHub>>,
    /// Cancelled when the whole run ends (time limit or signal), not for one user.
    pub run_stop: CancellationToken,
    /// Users still busy before their teardown; at the end of a run, teardowns wait for
    /// all of them, so no user removes a wallet its peer is still messaging.
    pub busy: Busy,
}

/// Counts users that have not reached their teardown.
#[derive(Debug, Default)]
pub(crate) struct Busy {
    count: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

impl Busy {
    pub fn enter(&self) {
        self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn leave(&self) {
        if self.count.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Resolves once no user is busy.
    pub async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.count.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Signals from outside: first = graceful stop, second = hard stop.
#[derive(Debug, Clone, Default)]
pub struct StopSignals {
    pub graceful: CancellationToken,
    pub hard: CancellationToken,
}
