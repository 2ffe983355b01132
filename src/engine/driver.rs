//! Drivers: follow the load shape by starting and stopping virtual users (closed model),
//! or hand out iterations on schedule to a pool of users (open model).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::engine::context::RunContext;
use crate::engine::shard::Shard;
use crate::engine::user::VirtualUser;
use crate::measure::metrics::Event;
use crate::plan::shape::Shape;

/// Follows the shape until it ends or a stop signal; returns true when interrupted.
pub async fn drive(
    ctx: &Arc<RunContext>,
    shape: &Shape,
    start: Instant,
    stop_all: &CancellationToken,
    users: &mut JoinSet<()>,
) -> bool {
    let mut slots = Slots {
        shard: ctx.shard,
        global: 0,
        next_local: 0,
        local: Vec::new(),
    };
    let mut last_spawn = start;
    let mut last_target = u64::MAX;
    let mut last_level = None;
    // A spawn this late after its slot restarts the spawn clock instead of catching up.
    let late = Duration::from_millis(20);
    if let Shape::ArrivalRate { max_users, .. } = shape {
        return drive_open(ctx, shape, *max_users, start, stop_all, users).await;
    }
    loop {
        let now = Instant::now();
        let Some(target) = shape.users_at(now - start) else {
            return false;
        };
        if target.users != last_target {
            ctx.recorder.send(Event::Target {
                users: ctx.shard.share(target.users),
                at: now,
            });
            last_target = target.users;
        }
        let level = shape.level_at(now - start);
        if level.map(|l| l.index) != last_level {
            last_level = level.map(|l| l.index);
            ctx.recorder.send(Event::Level {
                next: level,
                at: now,
            });
        }
        // Nothing changes before the shape's next change or the next spawn: sleep until then
        // (an idle run wakes a few times per step, not 50 times a second).
        let mut wake = start + shape.next_change(now - start);
        if slots.global < target.users {
            match target.spawn_rate {
                None => {
                    while slots.global < target.users {
                        slots.grow(ctx, stop_all, users);
                        // A large step yields now and then (other tasks may share this
                        // thread) and stops starting users once the run is stopped.
                        if slots.global.is_multiple_of(256) {
                            tokio::task::yield_now().await;
                            if stop_all.is_cancelled() {
                                return true;
                            }
                        }
                    }
                }
                Some(rate) if rate > 0.0 => {
                    let gap = Duration::from_secs_f64(1.0 / rate);
                    let first = slots.global == 0;
                    if first || now >= last_spawn + gap {
                        slots.grow(ctx, stop_all, users);
                        last_spawn = if first || now > last_spawn + gap + late {
                            now
                        } else {
                            last_spawn + gap
                        };
                    }
                    wake = wake.min(last_spawn + gap);
                }
                Some(_) => {}
            }
        } else if slots.global > target.users {
            slots.shrink_to(target.users);
        }
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {}
            _ = stop_all.cancelled() => return true,
            // Finished users free nothing (the shape counts started users, as Locust does);
            // their tasks are reaped as they end.
            Some(_) = users.join_next(), if !users.is_empty() => {}
        }
    }
}

/// The run's users across all shards, of which this shard starts its own.
struct Slots {
    shard: Shard,
    /// Global users the shape has started and not ramped down (all shards).
    global: u64,
    /// This shard's next user index (never reused, so identities never collide).
    next_local: u64,
    local: Vec<CancellationToken>,
}

impl Slots {
    fn grow(
        &mut self,
        ctx: &Arc<RunContext>,
        stop_all: &CancellationToken,
        users: &mut JoinSet<()>,
    ) {
        let k = self.global;
        self.global += 1;
        if self.shard.owns(k) {
            let token = stop_all.child_token();
            self.local.push(token.clone());
            let user = VirtualUser::new(ctx.clone(), self.next_local, token).live();
            users.spawn(user);
            self.next_local += 1;
        }
    }

    /// Ramp down: stop the newest users; they run their teardown.
    fn shrink_to(&mut self, target: u64) {
        while self.global > target {
            self.global -= 1;
            if self.shard.owns(self.global)
                && let Some(token) = self.local.pop()
            {
                token.cancel();
            }
        }
    }
}

/// Open model: iterations start on the arrival schedule, each on a new user, while fewer
/// than `max_users` (this shard's share) are busy; arrivals beyond that are counted as dropped.
pub async fn drive_open(
    ctx: &Arc<RunContext>,
    shape: &Shape,
    max_users: u64,
    start: Instant,
    stop_all: &CancellationToken,
    users: &mut JoinSet<()>,
) -> bool {
    let cap = ctx.shard.share(max_users).max(1);
    let feed = crate::engine::user::Feed::new();
    let mut next_local = 0u64;
    let mut k = 0u64;
    while let Some(at) = shape.arrival_time(k) {
        k += 1;
        if !ctx.shard.owns(k - 1) {
            continue;
        }
        let scheduled = start + at;
        tokio::select! {
            _ = tokio::time::sleep_until(scheduled.into()) => {}
            _ = stop_all.cancelled() => return true,
        }
        while users.try_join_next().is_some() {}
        if feed.idle.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            let _ = feed.tx.send(scheduled);
        } else if (users.len() as u64) < cap {
            let user = VirtualUser::new(ctx.clone(), next_local, stop_all.child_token())
                .with_feed(feed.clone(), scheduled);
            users.spawn(user.live());
            next_local += 1;
        } else {
            // Nothing ran: a failure without a sample, not a 1 µs iteration.
            ctx.recorder.send(Event::Failure {
                phase: crate::plan::Phase::Tasks,
                kind: crate::results::StatKind::Iteration,
                name: Arc::from("(dropped arrivals)"),
                at: Instant::now(),
                failure: crate::measure::metrics::Failure {
                    reason: format!("all {cap} users busy"),
                    detail: format!("arrival {} could not start", k - 1),
                },
            });
        }
    }
    tokio::select! {
        _ = tokio::time::sleep_until((start + shape.duration()).into()) => false,
        _ = stop_all.cancelled() => true,
    }
}
