//! Merging the results of shards: histograms are added (exact to the histogram's
//! precision), counts, failures and per-second series summed. Refuses results of
//! different plans and overlapping shards.

use std::collections::BTreeMap;

use crate::measure::histogram::decode;
use crate::measure::levels::LevelAgg;
use crate::measure::tally::{Tally, Unmergeable};
use crate::plan::Phase;
use crate::results::{
    AgentGauges, EventCounts, FailureGroup, LoadLevel, Outcome, Results, RunInfo, Second, StatKind,
    StepSecond, UserCounts,
};

/// Step identity: phase, kind and name.
type StepKey = (Phase, StatKind, String);

/// Why results cannot be merged.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MergeError {
    #[error("nothing to merge")]
    Empty,
    #[error(
        "{file}: plan `{found}` differs from `{expected}` in {first}; only shards of one plan merge"
    )]
    DifferentPlan {
        file: String,
        found: String,
        expected: String,
        first: String,
    },
    #[error("{file}: load shape differs from {first} ({found} vs {expected})")]
    DifferentShape {
        file: String,
        found: String,
        expected: String,
        first: String,
    },
    #[error("{file} and {other} are both shard {index}; each shard may appear once")]
    Overlap {
        file: String,
        other: String,
        index: u32,
    },
    #[error("{file}: shard count {found} differs from {expected} in {first}")]
    DifferentCount {
        file: String,
        found: u32,
        expected: u32,
        first: String,
    },
    #[error("{file}: a histogram could not be read")]
    BadHistogram { file: String },
    #[error("{file}: thresholds differ from those in {first}; only shards of one plan merge")]
    DifferentThresholds { file: String, first: String },
}

/// Merges shard results (file name, results) into one.
pub fn merge(inputs: &[(String, Results)]) -> Result<Results, MergeError> {
    let (_, first) = inputs.first().ok_or(MergeError::Empty)?;
    let shards = check(inputs)?;
    let duration = inputs
        .iter()
        .map(|(_, r)| r.run.duration_secs)
        .fold(0.0, f64::max)
        .max(1e-9);
    let mut sum = Sum::default();
    for (file, r) in inputs {
        sum.add(r)
            .map_err(|Unmergeable| MergeError::BadHistogram { file: file.clone() })?;
    }
    let complete = shards == first.run.shard.map_or(1, |s| s.count);
    let run = merged_run(inputs, duration, complete);
    // Every shard watches the same agents: keep the first shard's view.
    let agents = inputs
        .iter()
        .find(|(_, r)| !r.agents.is_empty())
        .map(|(_, r)| r.agents.clone())
        .unwrap_or_default();
    let mut merged = sum.results(first, run, agents);
    // Verdicts are judged on the merged histograms: they depend on all samples. A shard
    // that could not start has no verdicts; neither has their merge.
    if inputs.iter().all(|(_, r)| r.run.error.is_none()) {
        merged.thresholds =
            crate::measure::thresholds::thresholds(&merged, &merged.plan.thresholds);
    }
    Ok(merged)
}

/// Checks that the inputs are distinct shards of one plan; returns how many there are.
fn check(inputs: &[(String, Results)]) -> Result<u32, MergeError> {
    let Some((first_file, first)) = inputs.first() else {
        return Err(MergeError::Empty);
    };
    let mut seen: BTreeMap<u32, &str> = BTreeMap::new();
    for (file, r) in inputs {
        same_plan((first_file, first), (file, r))?;
        let index = r.run.shard.map_or(0, |s| s.index);
        if let Some(other) = seen.insert(index, file) {
            return Err(MergeError::Overlap {
                file: file.clone(),
                other: other.to_string(),
                index,
            });
        }
    }
    Ok(seen.len() as u32)
}

/// Refuses `r` unless it ran the plan, thresholds, shape and shard count of `first`.
fn same_plan(
    (first_file, first): (&String, &Results),
    (file, r): (&String, &Results),
) -> Result<(), MergeError> {
    if r.plan.name != first.plan.name {
        return Err(MergeError::DifferentPlan {
            file: file.clone(),
            found: r.plan.name.clone(),
            expected: first.plan.name.clone(),
            first: first_file.clone(),
        });
    }
    let judged = |r: &Results| serde_json::to_value(&r.plan.thresholds).ok();
    if judged(r) != judged(first) {
        return Err(MergeError::DifferentThresholds {
            file: file.clone(),
            first: first_file.clone(),
        });
    }
    if r.plan.shape != first.plan.shape {
        return Err(MergeError::DifferentShape {
            file: file.clone(),
            found: r.plan.shape.clone(),
            expected: first.plan.shape.clone(),
            first: first_file.clone(),
        });
    }
    let count = r.run.shard.map_or(1, |s| s.count);
    let expected = first.run.shard.map_or(1, |s| s.count);
    if count != expected {
        return Err(MergeError::DifferentCount {
            file: file.clone(),
            found: count,
            expected,
            first: first_file.clone(),
        });
    }
    Ok(())
}

/// The run of the merge: from the first start to the last end, the gravest outcome, and the
/// earliest `abort` threshold that stopped a shard (each shard checks its own).
fn merged_run(inputs: &[(String, Results)], duration: f64, complete: bool) -> RunInfo {
    let first = &inputs[0].1.run;
    let runs = || inputs.iter().map(|(_, r)| &r.run);
    let mut run = first.clone();
    run.started_at = runs()
        .map(|r| r.started_at.clone())
        .min()
        .unwrap_or_default();
    run.ended_at = runs().map(|r| r.ended_at.clone()).max().unwrap_or_default();
    run.duration_secs = duration;
    run.outcome = runs()
        .map(|r| r.outcome)
        .max_by_key(|o| match o {
            Outcome::Completed => 0,
            Outcome::Stopped => 1,
            Outcome::Interrupted => 2,
            Outcome::Aborted => 3,
        })
        .unwrap_or(Outcome::Completed);
    run.stopped_by = runs()
        .filter_map(|r| r.stopped_by.clone())
        .min_by(|a, b| a.at_secs.total_cmp(&b.at_secs));
    run.shard = if complete { None } else { first.shard };
    run
}

/// The shards' figures added up, keyed like the aggregator's.
#[derive(Default)]
struct Sum {
    steps: BTreeMap<StepKey, (Option<String>, Tally)>,
    total: Tally,
    failures: BTreeMap<(Phase, String, String), (u64, String)>,
    timeline: BTreeMap<u64, Second>,
    series: BTreeMap<(u64, Phase, StatKind, String), Vec<StepSecond>>,
    users: UserCounts,
    events: Option<EventCounts>,
    /// Load levels by their part of the shape, which every shard follows alike.
    levels: BTreeMap<(usize, u64, Option<u64>), LevelAgg>,
}

impl Sum {
    /// Adds one shard.
    fn add(&mut self, r: &Results) -> Result<(), Unmergeable> {
        self.add_levels(&r.levels)?;
        for s in &r.stats {
            let h = decode(&s.histogram).ok_or(Unmergeable)?;
            let (_, tally) = self
                .steps
                .entry((s.phase, s.kind, s.name.clone()))
                .or_insert_with(|| (s.method.clone(), Tally::default()));
            tally.add(Some(&h), s.failures, s.unsent)?;
        }
        let total = match r.total.requests {
            0 => None,
            _ => Some(decode(&r.total.histogram).ok_or(Unmergeable)?),
        };
        self.total
            .add(total.as_ref(), r.total.failures, r.total.unsent)?;
        for f in &r.failures {
            self.failures
                .entry((f.phase, f.name.clone(), f.reason.clone()))
                .or_insert((0, f.example.clone()))
                .0 += f.count;
        }
        self.add_timeline(&r.timeline);
        for s in &r.series {
            self.series
                .entry((s.t, s.phase, s.kind, s.name.clone()))
                .or_default()
                .push(s.clone());
        }
        self.add_users(&r.users, r.events.as_ref());
        Ok(())
    }

    fn add_levels(&mut self, levels: &[LoadLevel]) -> Result<(), Unmergeable> {
        for l in levels {
            let level = crate::plan::shape::Level {
                index: l.index,
                users: l.target_users,
                from_users: l.from_users,
            };
            let e = self
                .levels
                .entry((l.index, l.target_users, l.from_users))
                .or_insert_with(|| LevelAgg::new(level, l.from_secs));
            e.from = e.from.min(l.from_secs);
            e.to = Some(e.to.unwrap_or(0.0).max(l.to_secs));
            e.users += l.users;
            // A level without samples has no histogram text.
            let http = decode(&l.histogram);
            e.http.add(http.as_ref(), l.failures, l.unsent)?;
            let events = decode(&l.event_histogram);
            e.events.add(events.as_ref(), l.event_failures, 0)?;
        }
        Ok(())
    }

    fn add_timeline(&mut self, timeline: &[Second]) {
        for s in timeline {
            let e = self.timeline.entry(s.t).or_insert_with(|| Second {
                t: s.t,
                ..Default::default()
            });
            e.target_users += s.target_users;
            e.users += s.users;
            e.requests += s.requests;
            e.failures += s.failures;
        }
    }

    fn add_users(&mut self, users: &UserCounts, events: Option<&EventCounts>) {
        self.users.started += users.started;
        self.users.setup_ok += users.setup_ok;
        self.users.stopped_by_error += users.stopped_by_error;
        self.users.iterations += users.iterations;
        if let Some(ev) = events {
            let e = self.events.get_or_insert_with(Default::default);
            e.received += ev.received;
            e.duplicates += ev.duplicates;
        }
    }

    /// The merged results of `first`'s plan over `run`; thresholds are left to judge.
    fn results(self, first: &Results, run: RunInfo, agents: Vec<AgentGauges>) -> Results {
        let duration = run.duration_secs;
        let stats = self
            .steps
            .into_iter()
            .map(|(key, (method, tally))| tally.step_stats(key, method, duration, true))
            .collect();
        let mut failures: Vec<FailureGroup> = self
            .failures
            .into_iter()
            .map(|((phase, name, reason), (count, example))| FailureGroup {
                phase,
                name,
                reason,
                count,
                example,
            })
            .collect();
        failures.sort_by_key(|f| std::cmp::Reverse(f.count));
        let mut levels: Vec<_> = self.levels.values().map(|l| l.result(0.0, true)).collect();
        levels.sort_by(|a, b| a.from_secs.total_cmp(&b.from_secs));
        Results {
            schema_version: first.schema_version,
            acaload_version: first.acaload_version.clone(),
            plan: first.plan.clone(),
            run,
            stats,
            total: self.total.totals(duration, true),
            failures,
            timeline: self.timeline.into_values().collect(),
            users: self.users,
            levels: crate::measure::watched::by_level(levels, &agents),
            agents,
            events: self.events,
            series: self.series.into_values().map(series_mean).collect(),
            thresholds: Vec::new(),
        }
    }
}

/// One step's second from its shards. Per-second percentiles of different shards cannot be
/// added: a count-weighted mean is kept for the charts (the exact figures are the merged
/// histograms).
fn series_mean(parts: Vec<StepSecond>) -> StepSecond {
    let count: u64 = parts.iter().map(|p| p.count).sum();
    let w = |f: fn(&StepSecond) -> f64| {
        parts.iter().map(|p| f(p) * p.count as f64).sum::<f64>() / count.max(1) as f64
    };
    StepSecond {
        count,
        failures: parts.iter().map(|p| p.failures).sum(),
        p50: w(|p| p.p50),
        p95: w(|p| p.p95),
        p99: w(|p| p.p99),
        ..parts[0].clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::histogram::recorded;
    use crate::measure::metrics::{Event, Failure};
    use crate::results::{PlanInfo, RunInfo, ShardInfo};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// Results of one aggregator fed with `samples` (name, µs, failed).
    async fn results(samples: &[(&str, u64, bool)], shard: Option<ShardInfo>) -> Results {
        let start = Instant::now();
        let (rec, _live, handle) = crate::measure::metrics::start(start);
        for (name, micros, failed) in samples {
            let failure = failed.then(|| Failure {
                reason: "status 500".into(),
                detail: "boom".into(),
            });
            rec.send(Event::Sample {
                phase: Phase::Tasks,
                kind: StatKind::Http,
                name: Arc::from(*name),
                method: Some("GET"),
                micros: *micros,
                at: start,
                failure,
            });
        }
        rec.send(Event::UserStarted(start));
        drop(rec);
        let f = handle.await.unwrap().finish(Duration::from_secs(10));
        Results {
            schema_version: crate::results::SCHEMA_VERSION,
            acaload_version: "test".into(),
            plan: PlanInfo {
                name: "p".into(),
                file: "p.yaml".into(),
                description: None,
                shape: "constant".into(),
                env: Default::default(),
                thresholds: Vec::new(),
            },
            run: RunInfo {
                stopped_by: None,
                id: "r".into(),
                started_at: "a".into(),
                ended_at: "b".into(),
                duration_secs: 10.0,
                seed: 1,
                outcome: Outcome::Completed,
                shard,
                error: None,
            },
            stats: f.stats,
            total: f.total,
            failures: f.failures,
            timeline: f.timeline,
            users: f.users,
            agents: f.agents,
            events: f.events,
            series: f.series,
            thresholds: Vec::new(),
            levels: Vec::new(),
        }
    }

    fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
        serde_json::to_value(v).unwrap()
    }

    fn samples() -> Vec<(&'static str, u64, bool)> {
        let mut rng = fastrand::Rng::with_seed(7);
        (0..30_000)
            .map(|i| {
                (
                    if i % 3 == 0 { "ping" } else { "message" },
                    rng.u64(100..2_000_000),
                    rng.u8(..) < 3,
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn shards_merged_equal_one_run_over_the_same_samples() {
        let all = samples();
        let single = results(&all, None).await;
        let mut shards = Vec::new();
        for index in 0..3u32 {
            let part: Vec<_> = all
                .iter()
                .enumerate()
                .filter(|(k, _)| *k as u32 % 3 == index)
                .map(|(_, s)| *s)
                .collect();
            shards.push((
                format!("s{index}.json"),
                results(&part, Some(ShardInfo { index, count: 3 })).await,
            ));
        }
        let merged = merge(&shards).unwrap();
        assert_eq!(merged.run.shard, None, "all shards present");
        assert_eq!(merged.users.started, 3);
        let samples = |text: &str| recorded(&decode(text).unwrap());
        assert_eq!(
            samples(&merged.total.histogram),
            samples(&single.total.histogram)
        );
        let (mut mt, mut st) = (merged.total.clone(), single.total.clone());
        mt.histogram.clear();
        st.histogram.clear();
        assert_eq!(json(&mt), json(&st));
        assert_eq!(merged.stats.len(), single.stats.len());
        for (m, s) in merged.stats.iter().zip(&single.stats) {
            // Every figure, and every bucket of the histogram (its text may differ in size).
            assert_eq!(samples(&m.histogram), samples(&s.histogram), "{}", m.name);
            let (mut m, mut s) = (m.clone(), s.clone());
            m.histogram.clear();
            s.histogram.clear();
            assert_eq!(json(&m), json(&s));
        }
        assert_eq!(json(&merged.failures), json(&single.failures));
    }

    #[tokio::test]
    async fn refuses_other_plans_and_overlapping_shards() {
        let a = results(&[("x", 10, false)], Some(ShardInfo { index: 0, count: 2 })).await;
        let mut b = a.clone();
        assert_eq!(
            merge(&[("a.json".into(), a.clone()), ("b.json".into(), b.clone())])
                .unwrap_err()
                .to_string(),
            "b.json and a.json are both shard 0; each shard may appear once"
        );
        b.plan.name = "other".into();
        b.run.shard = Some(ShardInfo { index: 1, count: 2 });
        assert_eq!(
            merge(&[("a.json".into(), a.clone()), ("b.json".into(), b)])
                .unwrap_err()
                .to_string(),
            "b.json: plan `other` differs from `p` in a.json; only shards of one plan merge"
        );
        let refused = |change: fn(&mut Results)| {
            let mut b = a.clone();
            b.run.shard = Some(ShardInfo { index: 1, count: 2 });
            change(&mut b);
            merge(&[("a.json".into(), a.clone()), ("b.json".into(), b)])
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            refused(|b| b.plan.shape = "ramp".into()),
            "b.json: load shape differs from a.json (ramp vs constant)"
        );
        assert_eq!(
            refused(|b| b.run.shard = Some(ShardInfo { index: 1, count: 3 })),
            "b.json: shard count 3 differs from 2 in a.json"
        );
        assert_eq!(
            refused(|b| b.plan.thresholds = serde_json::from_str(r#"[{"p95": "1s"}]"#).unwrap()),
            "b.json: thresholds differ from those in a.json; only shards of one plan merge"
        );
        assert_eq!(
            refused(|b| b.stats[0].histogram = "not a histogram".into()),
            "b.json: a histogram could not be read"
        );
        assert_eq!(merge(&[]).unwrap_err(), MergeError::Empty);
        let half = merge(&[("a.json".into(), a)]).unwrap();
        assert_eq!(
            half.run.shard,
            Some(ShardInfo { index: 0, count: 2 }),
            "an incomplete merge says so"
        );
    }
}
