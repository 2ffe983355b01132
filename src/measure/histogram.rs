//! Latency histograms: microseconds, 3 significant digits, 1 µs to 1 hour; their
//! percentiles in milliseconds, and their compact text form in results files. A histogram
//! grows to the largest value it holds (8 K counts up to 100 ms, 23 K up to an hour): a
//! run keeps a few per step and per second, and each count is 8 bytes, zeroed when made.

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
