//! Latency histograms: microseconds, 3 significant digits, 1 µs to 1 hour; their
//! percentiles in milliseconds, and their compact text form in results files. A histogram
//! grows to the largest value it holds (8 K counts up to 100 ms, 23 K up to an hour): a
//! run keeps a few per step, and each count is 8 bytes, zeroed when made. A step's second
//! ([`Recent`]) keeps its few samples as they are, and their percentiles come out as the
//! histogram's would.

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer};

use crate::results::Latency;

/// The largest latency kept: longer ones count as an hour.
pub const MAX_MICROS: u64 = 3_600_000_000;

/// One layout for every histogram so shards merge exactly: from 1 µs, 3 digits; sized for
/// 100 ms at first and grown on the first longer sample (never past [`MAX_MICROS`]).
pub fn new_histogram() -> Histogram<u64> {
    let mut h =
        Histogram::new_with_bounds(1, 100_000, 3).expect("static histogram bounds are valid");
    h.auto(true);
    h
}

/// Records `micros`, held to 1 µs ..= [`MAX_MICROS`] (growing the histogram when needed).
pub fn record(h: &mut Histogram<u64>, micros: u64) {
    // cannot fail: auto-resize is on and the value is in range; a full count saturates
    let _ = h.record(micros.clamp(1, MAX_MICROS));
}

/// Latency summary in milliseconds.
pub fn latency(h: &Histogram<u64>) -> Latency {
    if h.is_empty() {
        return Latency::default();
    }
    let ms = |us: u64| us as f64 / 1000.0;
    Latency {
        min: ms(h.min()),
        mean: h.mean() / 1000.0,
        p50: ms(h.value_at_quantile(0.5)),
        p90: ms(h.value_at_quantile(0.9)),
        p95: ms(h.value_at_quantile(0.95)),
        p99: ms(h.value_at_quantile(0.99)),
        max: ms(h.max()),
    }
}

/// One step's latencies over one second. At real-agent rates a step has a few samples a
/// second, and a histogram would be scanned over thousands of counts for each percentile and
/// zeroed after: the samples are kept as they are up to [`Recent::FEW`], in a histogram
/// after that. Percentiles are the histogram's either way (the value of the same rank, as
/// the highest value its bucket holds).
#[derive(Default)]
pub struct Recent {
    few: Vec<u64>,
    many: Option<Histogram<u64>>,
}

impl Recent {
    /// The most samples kept as they are.
    pub const FEW: usize = 256;

    /// Records `micros`, held to 1 µs ..= [`MAX_MICROS`].
    pub fn record(&mut self, micros: u64) {
        if let Some(h) = &mut self.many {
            record(h, micros);
        } else if self.few.len() < Self::FEW {
            self.few.push(micros.clamp(1, MAX_MICROS));
        } else {
            let mut h = new_histogram();
            self.few.drain(..).for_each(|v| record(&mut h, v));
            record(&mut h, micros);
            self.many = Some(h);
        }
    }

    pub fn len(&self) -> u64 {
        self.many
            .as_ref()
            .map_or(self.few.len() as u64, Histogram::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// p50, p95 and p99 in milliseconds.
    pub fn percentiles(&mut self) -> [f64; 3] {
        let qs = [0.5, 0.95, 0.99];
        if let Some(h) = &self.many {
            return qs.map(|q| h.value_at_quantile(q) as f64 / 1000.0);
        }
        if self.few.is_empty() {
            return [0.0; 3];
        }
        self.few.sort_unstable();
        let n = self.few.len();
        // the rank hdrhistogram's `value_at_quantile` takes, and its bucket's highest value
        qs.map(|q| {
            let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
            LAYOUT.highest_equivalent(self.few[rank - 1]) as f64 / 1000.0
        })
    }

    /// Empty again (a histogram, once made, is kept for the next second).
    pub fn reset(&mut self) {
        self.few.clear();
        if let Some(h) = &mut self.many {
            h.reset();
        }
    }
}

/// The layout every histogram shares: the buckets a value falls in.
static LAYOUT: std::sync::LazyLock<Histogram<u64>> = std::sync::LazyLock::new(new_histogram);

/// V2 deflate serialization, base64: exact and mergeable.
pub fn encode(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    match V2DeflateSerializer::new().serialize(h, &mut buf) {
        Ok(_) => base64::engine::general_purpose::STANDARD.encode(buf),
        Err(_) => String::new(),
    }
}

/// Reads a histogram written by [`encode`] (sized as it was written, growing when added to).
pub fn decode(s: &str) -> Option<Histogram<u64>> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    let mut h: Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .ok()?;
    h.auto(true);
    Some(h)
}

/// Every bucket a histogram has counts in: (highest value of the bucket, count). Two
/// histograms of the same layout hold the same samples when these are equal.
#[cfg(test)]
pub(crate) fn recorded(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_round_trip_and_merge_exactly() {
        let mut a = new_histogram();
        let mut b = new_histogram();
        for v in 1..=1000u64 {
            record(&mut a, v * 7);
            // past the first size: the histogram grows, and its text form with it
            record(&mut b, v * 1_300);
        }
        let a_back = decode(&encode(&a)).unwrap();
        assert_eq!(recorded(&a_back), recorded(&a));
        assert_eq!((a_back.min(), a_back.max()), (a.min(), a.max()));
        let mut merged = a_back;
        merged.add(decode(&encode(&b)).unwrap()).unwrap();
        let mut direct = a.clone();
        direct.add(&b).unwrap();
        assert_eq!(merged.len(), 2000);
        assert_eq!(recorded(&merged), recorded(&direct));
        assert_eq!((merged.min(), merged.max()), (direct.min(), direct.max()));
        let json = |h: &Histogram<u64>| serde_json::to_value(latency(h)).unwrap();
        assert_eq!(json(&merged), json(&direct));
    }

    #[test]
    fn undecodable_text_is_none() {
        assert!(decode("").is_none());
        assert!(decode("not base64!").is_none());
        assert!(decode("AAAA").is_none());
    }

    #[test]
    fn recent_percentiles_are_the_histograms() {
        let mut rng = fastrand::Rng::with_seed(7);
        for n in [1, 2, 3, 7, 20, 99, 100, 101, 255, 256, 257, 1000] {
            let mut recent = Recent::default();
            let mut h = new_histogram();
            for _ in 0..n {
                // from 1 µs to beyond an hour, over every scale
                let v = 10u64.pow(rng.u32(0..10)) * rng.u64(1..10_000) / 1000;
                recent.record(v);
                record(&mut h, v);
            }
            let l = latency(&h);
            assert_eq!(recent.len(), n);
            assert_eq!(recent.percentiles(), [l.p50, l.p95, l.p99], "{n} samples");
            recent.reset();
            assert!(recent.is_empty());
            assert_eq!(recent.percentiles(), [0.0; 3]);
        }
    }
}
