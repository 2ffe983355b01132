//! Load shapes as pure functions of time: `users_at(t)` for closed models and
//! `arrivals_by(t)` for the open arrival-rate model. No clocks, no I/O.

use std::time::Duration;

/// A resolved load shape (all templates rendered, all numbers checked).
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// The seed's Locust step shape.
    Steps {
        step_time: Duration,
        users_per_step: u64,
        user_limit: u64,
        time_limit: Duration,
        spawn_pct: f64,
    },
    /// A fixed number of users; `spawn_rate` users per second (None: all at once).
    Constant {
        users: u64,
        duration: Duration,
        spawn_rate: Option<f64>,
    },
    /// Linear ramps, starting from zero users.
    Stages(Vec<Segment>),
    /// Open model: iterations per second, ramping linearly between segment targets.
    ArrivalRate {
        start_rate: f64,
        stages: Vec<Segment>,
        max_users: u64,
    },
}

/// One linear ramp: reach `target` after `duration`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    pub duration: Duration,
    pub target: f64,
}

/// A load level: a part of a closed-model shape the report measures on its own — one step
/// of the step shape, one stage (a hold, or a ramp from `from_users`), or a whole constant
/// run. There are as many as the plan has parts, however fast a ramp changes its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    pub index: usize,
    /// Users the part asks for (at its end, for a ramp).
    pub users: u64,
    /// A ramping stage: the users at its start.
    pub from_users: Option<u64>,
}

/// What a closed-model shape asks for at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    /// Users that should be running.
    pub users: u64,
    /// Users started per second while below target (None: start at once).
    pub spawn_rate: Option<f64>,
}

impl Shape {
    /// When the run ends.
    pub fn duration(&self) -> Duration {
        match self {
            Shape::Steps { time_limit, .. } => *time_limit,
            Shape::Constant { duration, .. } => *duration,
            Shape::Stages(s) | Shape::ArrivalRate { stages: s, .. } => {
                s.iter().map(|s| s.duration).sum()
            }
        }
    }

    /// True for the open arrival-rate model.
    pub fn is_open(&self) -> bool {
        matches!(self, Shape::ArrivalRate { .. })
    }

    /// The most users the shape can ask for at once.
    pub fn peak_users(&self) -> u64 {
        match self {
            Shape::Steps {
                users_per_step,
                user_limit,
                step_time,
                time_limit,
                ..
            } => {
                let steps = if step_time.is_zero() {
                    1
                } else {
                    time_limit.as_nanos().div_ceil(step_time.as_nanos())
                };
                (*user_limit).min(
                    u64::try_from(steps)
                        .unwrap_or(u64::MAX)
                        .saturating_mul(*users_per_step),
                )
            }
            Shape::Constant { users, .. } => *users,
            Shape::Stages(s) => s.iter().map(|s| s.target as u64).max().unwrap_or(0),
            Shape::ArrivalRate { max_users, .. } => *max_users,
        }
    }

    /// Target users at `t`, or None once the run is over (and for the open model).
    pub fn users_at(&self, t: Duration) -> Option<Target> {
        if t >= self.duration() {
            return None;
        }
        match self {
            Shape::Steps {
                step_time,
                users_per_step,
                user_limit,
                spawn_pct,
                ..
            } => {
                let step = if step_time.is_zero() {
                    0
                } else {
                    (t.as_nanos() / step_time.as_nanos()) as u64
                };
                let users = (*user_limit).min((step + 1).saturating_mul(*users_per_step));
                Some(Target {
                    users,
                    spawn_rate: Some(users as f64 * spawn_pct),
                })
            }
            Shape::Constant {
                users, spawn_rate, ..
            } => Some(Target {
                users: *users,
                spawn_rate: *spawn_rate,
            }),
            Shape::Stages(stages) => Some(Target {
                users: interpolate(0.0, stages, t).floor() as u64,
                spawn_rate: None,
            }),
            Shape::ArrivalRate { .. } => None,
        }
    }

    /// The load level at `t` (closed model only; None after the end).
    pub fn level_at(&self, t: Duration) -> Option<Level> {
        if t >= self.duration() {
            return None;
        }
        match self {
            Shape::Steps {
                users_per_step,
                user_limit,
                ..
            } => {
                // Steps past the limit ask for no more users: they stay in the last level.
                let users = self.users_at(t)?.users;
                let index = if *users_per_step == 0 {
                    0
                } else {
                    (users.min(*user_limit))
                        .div_ceil(*users_per_step)
                        .saturating_sub(1) as usize
                };
                Some(Level {
                    index,
                    users,
                    from_users: None,
                })
            }
            Shape::Constant { users, .. } => Some(Level {
                index: 0,
                users: *users,
                from_users: None,
            }),
            Shape::Stages(stages) => {
                let mut elapsed = Duration::ZERO;
                let mut from = 0.0_f64;
                for (index, s) in stages.iter().enumerate() {
                    if t < elapsed + s.duration {
                        let (a, b) = (from.floor() as u64, s.target.floor() as u64);
                        return Some(Level {
                            index,
                            users: b,
                            from_users: (a != b).then_some(a),
                        });
                    }
                    elapsed += s.duration;
                    from = s.target;
                }
                None
            }
            Shape::ArrivalRate { .. } => None,
        }
    }

    /// The first moment after `t` at which the closed model's target or load level may
    /// differ from theirs at `t`; the end of the run at the latest. A driver sleeps until
    /// then instead of polling the shape.
    pub fn next_change(&self, t: Duration) -> Duration {
        let end = self.duration();
        if t >= end {
            return end;
        }
        let next = match self {
            Shape::Steps { step_time, .. } if !step_time.is_zero() => {
                let step = step_time.as_nanos();
                let nanos = (t.as_nanos() / step + 1).saturating_mul(step);
                Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
            }
            Shape::Stages(stages) => next_whole_user(stages, t),
            _ => end,
        };
        // Never now again: float rounding must not make a driver spin.
        next.max(t + Duration::from_millis(1)).min(end)
    }

    /// Iterations per second at `t` (open model only; 0 otherwise and after the end).
    pub fn rate_at(&self, t: Duration) -> f64 {
        match self {
            Shape::ArrivalRate {
                start_rate, stages, ..
            } if t < self.duration() => interpolate(*start_rate, stages, t),
            _ => 0.0,
        }
    }

    /// Expected number of iterations started in `[0, t)`: the integral of `rate_at`.
    pub fn arrivals_by(&self, t: Duration) -> f64 {
        let Shape::ArrivalRate {
            start_rate, stages, ..
        } = self
        else {
            return 0.0;
        };
        let mut from = *start_rate;
        let mut elapsed = 0.0;
        let mut total = 0.0;
        let t = t.as_secs_f64();
        for s in stages {
            let len = s.duration.as_secs_f64();
            let span = (t - elapsed).clamp(0.0, len);
            if span > 0.0 {
                let end_rate = if len > 0.0 {
                    from + (s.target - from) * span / len
                } else {
                    s.target
                };
                total += (from + end_rate) / 2.0 * span;
            }
            elapsed += len;
            from = s.target;
        }
        total
    }

    /// When the `k`-th iteration (0-based) is scheduled, or None if it falls after the end.
    pub fn arrival_time(&self, k: u64) -> Option<Duration> {
        let end = self.duration();
        let want = k as f64;
        if self.arrivals_by(end) <= want {
            return None;
        }
        // Bisection on a monotone function: 64 rounds reach nanosecond precision.
        let (mut lo, mut hi) = (0.0f64, end.as_secs_f64());
        for _ in 0..64 {
            let mid = (lo + hi) / 2.0;
            if self.arrivals_by(Duration::from_secs_f64(mid)) > want {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Some(Duration::from_secs_f64(hi))
    }

    /// Times at which the target changes, for `explain`: (time, users or rate).
    pub fn timeline(&self) -> Vec<(Duration, f64)> {
        let end = self.duration();
        match self {
            Shape::Steps {
                step_time,
                users_per_step,
                user_limit,
                ..
            } => {
                let mut out = Vec::new();
                let mut t = Duration::ZERO;
                let mut last = None;
                while t < end && !step_time.is_zero() {
                    let users = self.users_at(t).map_or(0, |u| u.users);
                    if last != Some(users) {
                        out.push((t, users as f64));
                        last = Some(users);
                    }
                    // Past the limit (or adding none) nothing changes: a 1 ms step over a
                    // long time limit must not take a step at a time to say so.
                    if users >= *user_limit || *users_per_step == 0 {
                        break;
                    }
                    t += *step_time;
                }
                out.push((end, 0.0));
                out
            }
            Shape::Constant { users, .. } => vec![(Duration::ZERO, *users as f64), (end, 0.0)],
            Shape::Stages(stages) | Shape::ArrivalRate { stages, .. } => {
                let start = if let Shape::ArrivalRate { start_rate, .. } = self {
                    *start_rate
                } else {
                    0.0
                };
                let mut out = vec![(Duration::ZERO, start)];
                let mut t = Duration::ZERO;
                for s in stages {
                    t += s.duration;
                    out.push((t, s.target));
                }
                out
            }
        }
    }
}

/// When a ramp's interpolated users next cross a whole number (or its stage ends).
fn next_whole_user(stages: &[Segment], t: Duration) -> Duration {
    let mut from = 0.0_f64;
    let mut elapsed = Duration::ZERO;
    for s in stages {
        let stage_end = elapsed + s.duration;
        if t < stage_end {
            let (a, b) = (from, s.target);
            if a == b {
                return stage_end;
            }
            let u = interpolate(0.0, stages, t);
            // Rising: the next whole number above. Falling: the users (u's floor) change as u
            // drops below its floor — at once when u sits on a whole number.
            let k = if b > a {
                u.floor() + 1.0
            } else if u > u.floor() {
                u.floor()
            } else {
                return t;
            };
            let frac = ((k - a) / (b - a)).clamp(0.0, 1.0);
            let at = elapsed + s.duration.mul_f64(frac);
            return at.min(stage_end);
        }
        elapsed = stage_end;
        from = s.target;
    }
    elapsed
}

fn interpolate(start: f64, stages: &[Segment], t: Duration) -> f64 {
    let mut from = start;
    let mut elapsed = Duration::ZERO;
    for s in stages {
        if t < elapsed + s.duration {
            let frac = (t - elapsed).as_secs_f64() / s.duration.as_secs_f64();
            return from + (s.target - from) * frac;
        }
        elapsed += s.duration;
        from = s.target;
    }
    from
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn next_change_is_where_steps_and_ramps_change() {
        let steps = Shape::Steps {
            step_time: secs(10.0),
            users_per_step: 10,
            user_limit: 25,
            time_limit: secs(60.0),
            spawn_pct: 0.5,
        };
        assert_eq!(steps.next_change(secs(0.0)), secs(10.0));
        assert_eq!(steps.next_change(secs(12.5)), secs(20.0));
        assert_eq!(steps.next_change(secs(59.0)), secs(60.0));
        let constant = Shape::Constant {
            users: 3,
            duration: secs(30.0),
            spawn_rate: None,
        };
        assert_eq!(constant.next_change(secs(1.0)), secs(30.0));
        // 0 → 4 users in 4 s: one more user each second; then down to 2 in 2 s.
        let ramp = Shape::Stages(vec![
            Segment {
                duration: secs(4.0),
                target: 4.0,
            },
            Segment {
                duration: secs(2.0),
                target: 2.0,
            },
        ]);
        let near = |a: Duration, b: f64| (a.as_secs_f64() - b).abs() < 1e-6;
        assert!(near(ramp.next_change(secs(0.0)), 1.0));
        assert!(near(ramp.next_change(secs(2.5)), 3.0));
        assert!(near(ramp.next_change(secs(3.5)), 4.0));
        assert!(
            near(ramp.next_change(secs(4.0)), 4.001),
            "4 → 3 users at once"
        );
        assert!(
            near(ramp.next_change(secs(4.2)), 5.0),
            "3 → 2 users after 5 s"
        );
        assert!(near(ramp.next_change(secs(5.5)), 6.0));
    }

    proptest! {
        /// Between now and the next change, the target and the level stay as they are; the
        /// next change is always later than now and never past the end.
        #[test]
        fn nothing_changes_before_next_change(
            stage_secs in proptest::collection::vec((1u64..20, 0u64..50), 1..4),
            step in 1u64..20, per in 1u64..10, limit in 1u64..40,
            at in prop_oneof![0.0f64..1.0, (0u32..8).prop_map(|i| f64::from(i) / 8.0)],
        ) {
            let stages = Shape::Stages(
                stage_secs.iter().map(|&(d, u)| Segment { duration: secs(d as f64), target: u as f64 }).collect(),
            );
            let steps = Shape::Steps {
                step_time: secs(step as f64),
                users_per_step: per,
                user_limit: limit,
                time_limit: secs(60.0),
                spawn_pct: 1.0,
            };
            for shape in [stages, steps] {
                let t = shape.duration().mul_f64(at);
                let next = shape.next_change(t);
                prop_assert!(next > t && next <= shape.duration());
                let users = |x: Duration| shape.users_at(x).map(|u| u.users);
                let level = |x: Duration| shape.level_at(x).map(|l| l.index);
                // Sample strictly before the change (1 ms of slack for float rounding).
                for i in 0..20 {
                    let x = t + (next - t).saturating_sub(Duration::from_millis(1)).mul_f64(i as f64 / 20.0);
                    prop_assert_eq!(users(x), users(t));
                    prop_assert_eq!(level(x), level(t));
                }
            }
        }
    }

    #[test]
    fn levels_follow_the_plan_parts_not_every_target() {
        let steps = Shape::Steps {
            step_time: secs(10.0),
            users_per_step: 10,
            user_limit: 25,
            time_limit: secs(60.0),
            spawn_pct: 0.5,
        };
        let at = |s: &Shape, t: f64| {
            s.level_at(secs(t))
                .map(|l| (l.index, l.users, l.from_users))
        };
        assert_eq!(at(&steps, 0.0), Some((0, 10, None)));
        assert_eq!(at(&steps, 15.0), Some((1, 20, None)));
        assert_eq!(at(&steps, 25.0), Some((2, 25, None)));
        assert_eq!(
            at(&steps, 55.0),
            Some((2, 25, None)),
            "past the limit: the same level"
        );
        assert_eq!(at(&steps, 60.0), None);
        // A ramp of 1,000 users over 10 minutes is one level, not a thousand.
        let stages = Shape::Stages(vec![
            Segment {
                duration: secs(600.0),
                target: 1000.0,
            },
            Segment {
                duration: secs(60.0),
                target: 1000.0,
            },
            Segment {
                duration: secs(30.0),
                target: 0.0,
            },
        ]);
        assert_eq!(at(&stages, 1.0), Some((0, 1000, Some(0))));
        assert_eq!(at(&stages, 599.0), Some((0, 1000, Some(0))));
        assert_eq!(at(&stages, 630.0), Some((1, 1000, None)));
        assert_eq!(at(&stages, 680.0), Some((2, 0, Some(1000))));
    }

    fn seed_defaults() -> Shape {
        Shape::Steps {
            step_time: secs(30.0),
            users_per_step: 10,
            user_limit: 100,
            time_limit: secs(600.0),
            spawn_pct: 0.5,
        }
    }

    #[test]
    fn seed_step_shape_matches_locust() {
        let shape = seed_defaults();
        for (t, users, rate) in [
            (0.0, 10, 5.0),
            (29.9, 10, 5.0),
            (30.0, 20, 10.0),
            (59.0, 20, 10.0),
            (60.0, 30, 15.0),
            (270.0, 100, 50.0),
            (299.0, 100, 50.0),
            (599.0, 100, 50.0),
        ] {
            assert_eq!(
                shape.users_at(secs(t)),
                Some(Target {
                    users,
                    spawn_rate: Some(rate)
                }),
                "t={t}"
            );
        }
        assert_eq!(shape.users_at(secs(600.0)), None);
        assert_eq!(shape.duration(), secs(600.0));
        assert_eq!(shape.peak_users(), 100);
        let steps: Vec<f64> = shape.timeline().iter().map(|(_, u)| *u).collect();
        assert_eq!(
            steps,
            [
                10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0, 0.0
            ]
        );
    }

    #[test]
    fn a_fine_step_over_a_long_time_limit_has_a_short_timeline() {
        for (per, limit) in [(0, 2), (1, 3)] {
            let shape = Shape::Steps {
                step_time: secs(0.001),
                users_per_step: per,
                user_limit: limit,
                time_limit: secs(1e9),
                spawn_pct: 0.5,
            };
            let points = shape.timeline();
            assert_eq!(points.len() as u64, limit.min(per * limit).max(1) + 1);
            assert_eq!(points.last(), Some(&(secs(1e9), 0.0)));
        }
    }

    #[test]
    fn issue_short_shape() {
        let shape = Shape::Steps {
            step_time: secs(5.0),
            users_per_step: 2,
            user_limit: 6,
            time_limit: secs(30.0),
            spawn_pct: 0.5,
        };
        let users: Vec<u64> = [0.0, 4.9, 5.0, 10.0, 15.0, 29.9]
            .iter()
            .map(|t| shape.users_at(secs(*t)).unwrap().users)
            .collect();
        assert_eq!(users, [2, 2, 4, 6, 6, 6]);
    }

    #[test]
    fn stages_ramp_linearly() {
        let shape = Shape::Stages(vec![
            Segment {
                duration: secs(10.0),
                target: 10.0,
            },
            Segment {
                duration: secs(10.0),
                target: 10.0,
            },
            Segment {
                duration: secs(10.0),
                target: 0.0,
            },
        ]);
        let at = |t| shape.users_at(secs(t)).map(|u| u.users);
        assert_eq!(
            [at(0.0), at(5.0), at(10.0), at(15.0), at(25.0), at(30.0)],
            [Some(0), Some(5), Some(10), Some(10), Some(5), None]
        );
    }

    #[test]
    fn arrival_rate_schedules_exact_counts() {
        let constant = Shape::ArrivalRate {
            start_rate: 10.0,
            stages: vec![Segment {
                duration: secs(2.0),
                target: 10.0,
            }],
            max_users: 5,
        };
        assert_eq!(constant.arrivals_by(secs(2.0)), 20.0);
        assert!(constant.arrival_time(0).unwrap().as_secs_f64() < 1e-6);
        assert!((constant.arrival_time(5).unwrap().as_secs_f64() - 0.5).abs() < 1e-6);
        assert_eq!(constant.arrival_time(20), None);
        let ramp = Shape::ArrivalRate {
            start_rate: 0.0,
            stages: vec![Segment {
                duration: secs(10.0),
                target: 10.0,
            }],
            max_users: 5,
        };
        assert!((ramp.arrivals_by(secs(10.0)) - 50.0).abs() < 1e-9);
        assert!((ramp.rate_at(secs(5.0)) - 5.0).abs() < 1e-9);
    }

    proptest! {
        #[test]
        fn steps_never_exceed_limit_and_never_shrink(step in 1u64..100, per in 1u64..50, limit in 1u64..500, t1 in 0u64..10_000, dt in 0u64..10_000) {
            let shape = Shape::Steps { step_time: secs(step as f64), users_per_step: per, user_limit: limit, time_limit: secs(20_001.0), spawn_pct: 0.5 };
            let a = shape.users_at(secs(t1 as f64)).unwrap().users;
            let b = shape.users_at(secs((t1 + dt) as f64)).unwrap().users;
            prop_assert!(a <= limit && b <= limit && a <= b && a >= per.min(limit));
        }

        /// Each arrival comes after the one before, at the time the schedule reaches it.
        #[test]
        fn arrival_times_are_ordered(rate in 0.5f64..200.0, k in 0u64..44) {
            // 60 s ramping from `rate` to twice it schedules 90 × rate ≥ 45 iterations.
            let shape = Shape::ArrivalRate { start_rate: rate, stages: vec![Segment { duration: secs(60.0), target: rate * 2.0 }], max_users: 10 };
            let a = shape.arrival_time(k);
            let b = shape.arrival_time(k + 1);
            prop_assert!(a.is_some() && b.is_some(), "{a:?} {b:?}");
            let (a, b) = (a.unwrap(), b.unwrap());
            prop_assert!(a < b);
            // Times are whole nanoseconds: at most 400/s × 1 ns off.
            prop_assert!((shape.arrivals_by(a) - k as f64).abs() < 1e-6);
        }
    }
}
