//! Merging the results of shards: histograms are added (exact to the histogram's
//! precision), counts, failures and per-second series summed. Refuses results of
//! different plans and overlapping shards.

use std::collections::BTreeMap;

use crate::measure::histogram::{decode, encode, latency, new_histogram};
use crate::measure::metrics::{LevelAgg, totals};
use crate::plan::Phase;
use crate::results::{FailureGroup, Outcome, Results, Second, StatKind, StepSecond, StepStats};

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
    let (first_file, first) = inputs.first().ok_or(MergeError::Empty)?;
    let mut seen: BTreeMap<u32, &str> = BTreeMap::new();
    for (file, r) in inputs {
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
        let (index, count) = r.run.shard.map_or((0, 1), |s| (s.index, s.count));
        let expected = first.run.shard.map_or(1, |s| s.count);
        if count != expected {
            return Err(MergeError::DifferentCount {
                file: file.clone(),
                found: count,
                expected,
                first: first_file.clone(),
            });
        }
        if let Some(other) = seen.insert(index, file) {
            return Err(MergeError::Overlap {
                file: file.clone(),
                other: other.to_string(),
                index,
            });
        }
    }
    let bad = |file: &str| MergeError::BadHistogram {
        file: file.to_string(),
    };
    let duration = inputs
        .iter()
        .map(|(_, r)| r.run.duration_secs)
        .fold(0.0, f64::max)
        .max(1e-9);

    // Per-step histograms, keyed like the aggregator.
    let mut steps: BTreeMap<StepKey, (Option<String>, hdrhistogram::Histogram<u64>, u64, u64)> =
        BTreeMap::new();
    let mut total = new_histogram();
    let mut total_failures = 0;
    let mut total_unsent = 0;
    let mut failures: BTreeMap<(Phase, String, String), (u64, String)> = BTreeMap::new();
    let mut timeline: BTreeMap<u64, Second> = BTreeMap::new();
    let mut series: BTreeMap<(u64, Phase, StatKind, String), Vec<StepSecond>> = BTreeMap::new();
    let mut users = crate::results::UserCounts::default();
    let mut events: Option<crate::results::EventCounts> = None;
    // Load levels by their part of the shape, which every shard follows alike.
    let mut levels: BTreeMap<(usize, u64, Option<u64>), LevelAgg> = BTreeMap::new();
    for (file, r) in inputs {
        for l in &r.levels {
            let level = crate::plan::shape::Level {
                index: l.index,
                users: l.target_users,
                from_users: l.from_users,
            };
            let e = levels
                .entry((l.index, l.target_users, l.from_users))
                .or_insert_with(|| LevelAgg::new(level, l.from_secs));
            e.from = e.from.min(l.from_secs);
            e.to = Some(e.to.unwrap_or(0.0).max(l.to_secs));
            for (h, text) in [
                (&mut e.http, &l.histogram),
                (&mut e.events, &l.event_histogram),
            ] {
                if let Some(part) = decode(text) {
                    h.add(&part).map_err(|_| bad(file))?;
                }
            }
            e.http_failures += l.failures;
            e.users += l.users;
            e.http_unsent += l.unsent;
            e.event_failures += l.event_failures;
        }
        for s in &r.stats {
            let h = decode(&s.histogram).ok_or_else(|| bad(file))?;
            let e = steps
                .entry((s.phase, s.kind, s.name.clone()))
                .or_insert_with(|| (s.method.clone(), new_histogram(), 0, 0));
            e.1.add(&h).map_err(|_| bad(file))?;
            e.2 += s.failures;
            e.3 += s.unsent;
        }
        if r.total.requests > 0 {
            total
                .add(decode(&r.total.histogram).ok_or_else(|| bad(file))?)
                .map_err(|_| bad(file))?;
        }
        total_failures += r.total.failures;
        total_unsent += r.total.unsent;
        for f in &r.failures {
            let e = failures
                .entry((f.phase, f.name.clone(), f.reason.clone()))
                .or_insert((0, f.example.clone()));
            e.0 += f.count;
        }
        for s in &r.timeline {
            let e = timeline.entry(s.t).or_insert_with(|| Second {
                t: s.t,
                ..Default::default()
            });
            e.target_users += s.target_users;
            e.users += s.users;
            e.requests += s.requests;
            e.failures += s.failures;
        }
        for s in &r.series {
            series
                .entry((s.t, s.phase, s.kind, s.name.clone()))
                .or_default()
                .push(s.clone());
        }
        users.started += r.users.started;
        users.setup_ok += r.users.setup_ok;
        users.stopped_by_error += r.users.stopped_by_error;
        users.iterations += r.users.iterations;
        if let Some(ev) = &r.events {
            let e = events.get_or_insert_with(Default::default);
            e.received += ev.received;
            e.duplicates += ev.duplicates;
        }
    }
    let stats = steps
        .into_iter()
        .map(
            |((phase, kind, name), (method, h, failures, unsent))| StepStats {
                phase,
                kind,
                name,
                method,
                count: h.len(),
                failures,
                unsent,
                latency_ms: latency(&h),
                per_second: h.len() as f64 / duration,
                histogram: encode(&h),
            },
        )
        .collect();
    let mut failures: Vec<FailureGroup> = failures
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
    // Per-second percentiles of different shards cannot be added; a count-weighted mean
    // is kept for the charts (the exact numbers are the merged histograms above).
    let series = series
        .into_values()
        .map(|parts| {
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
        })
        .collect();
    let outcome = inputs
        .iter()
        .map(|(_, r)| r.run.outcome)
        .max_by_key(|o| match o {
            Outcome::Completed => 0,
            Outcome::Stopped => 1,
            Outcome::Interrupted => 2,
            Outcome::Aborted => 3,
        });
    let complete = seen.len() as u32 == first.run.shard.map_or(1, |s| s.count);
    let mut run = first.run.clone();
    run.started_at = inputs
        .iter()
        .map(|(_, r)| r.run.started_at.clone())
        .min()
        .unwrap_or_default();
    run.ended_at = inputs
        .iter()
        .map(|(_, r)| r.run.ended_at.clone())
        .max()
        .unwrap_or_default();
    run.duration_secs = duration;
    run.outcome = outcome.unwrap_or(Outcome::Completed);
    // Each shard checks its own `abort` thresholds; the first to stop is the one to tell.
    run.stopped_by = inputs
        .iter()
        .filter_map(|(_, r)| r.run.stopped_by.clone())
        .min_by(|a, b| a.at_secs.total_cmp(&b.at_secs));
    run.shard = if complete { None } else { first.run.shard };
    let mut merged = Results {
        schema_version: first.schema_version,
        acaload_version: first.acaload_version.clone(),
        plan: first.plan.clone(),
        run,
        stats,
        total: totals(&total, total_failures, total_unsent, duration, true),
        failures,
        timeline: timeline.into_values().collect(),
        users,
        // Every shard watches the same agents: keep the first shard's view.
        agents: inputs
            .iter()
            .find(|(_, r)| !r.agents.is_empty())
            .map(|(_, r)| r.agents.clone())
            .unwrap_or_default(),
        events,
        series,
        // Judged below on the merged histograms: verdicts depend on all samples.
        thresholds: Vec::new(),
        levels: {
            let mut v: Vec<_> = levels.values().map(|l| l.result(0.0, true)).collect();
            v.sort_by(|a, b| a.from_secs.total_cmp(&b.from_secs));
            v
        },
    };
    merged.levels =
        crate::measure::watched::by_level(std::mem::take(&mut merged.levels), &merged.agents);
    // A shard that could not start has no verdicts; neither has their merge.
    if inputs.iter().all(|(_, r)| r.run.error.is_none()) {
        merged.thresholds =
            crate::measure::thresholds::thresholds(&merged, &merged.plan.thresholds);
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!(
            (merged.total.requests, merged.total.failures),
            (single.total.requests, single.total.failures)
        );
        assert_eq!(merged.users.started, 3);
        for (m, s) in merged.stats.iter().zip(&single.stats) {
            assert_eq!(
                (&m.name, m.count, m.failures),
                (&s.name, s.count, s.failures)
            );
            let (mh, sh) = (decode(&m.histogram).unwrap(), decode(&s.histogram).unwrap());
            for q in [0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
                assert_eq!(
                    mh.value_at_quantile(q),
                    sh.value_at_quantile(q),
                    "{} q{q}",
                    m.name
                );
            }
            assert_eq!(m.latency_ms.p99, s.latency_ms.p99);
        }
        assert_eq!(merged.failures[0].count, single.failures[0].count);
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
        let half = merge(&[("a.json".into(), a)]).unwrap();
        assert_eq!(
            half.run.shard,
            Some(ShardInfo { index: 0, count: 2 }),
            "an incomplete merge says so"
        );
    }
}
