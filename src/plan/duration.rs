//! Strict duration literals for plans: `500ms`, `30s`, `1m30s`, `0.5m`, `2h`.
//! Hand-written because the grammar is deliberately narrower than humantime's
//! (no spaces, no `min`/`sec` words), so a typo is an error rather than a surprise.

use std::fmt;
use std::time::Duration;

/// Why a duration literal was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration `{input}`: {reason} (write e.g. `500ms`, `30s`, `1m30s`, `0.5m`)")]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

impl DurationError {
    /// Why the text is not a duration, without the text itself.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

/// Parses `<number><unit>` groups, units `ms`, `s`, `m`, `h`, largest first.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let err = |reason| DurationError {
        input: input.to_string(),
        reason,
    };
    if input.is_empty() {
        return Err(err("it is empty"));
    }
    let mut rest = input;
    let mut total = 0f64;
    let mut last_rank = usize::MAX;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| err("a number needs a unit"))?;
        if digits == 0 {
            return Err(err("expected a number"));
        }
        let number: f64 = rest[..digits].parse().map_err(|_| err("bad number"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let (rank, seconds) = match &rest[..unit_len] {
            "h" => (3, 3600.0),
            "m" => (2, 60.0),
            "s" => (1, 1.0),
            "ms" => (0, 0.001),
            _ => return Err(err("unknown unit")),
        };
        if rank >= last_rank {
            return Err(err("units must go from largest to smallest, each once"));
        }
        last_rank = rank;
        total += number * seconds;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > 1.0e9 {
        return Err(err("too large"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// Formats a duration the way plans write them (`1m30s`, `250ms`).
pub fn format(d: Duration) -> String {
    struct F(Duration);
    impl fmt::Display for F {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let ms = self.0.as_millis();
            if ms == 0 {
                return write!(f, "0s");
            }
            let (h, m, s, rest) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
            if h > 0 {
                write!(f, "{h}h")?;
            }
            if m > 0 {
                write!(f, "{m}m")?;
            }
            if s > 0 {
                write!(f, "{s}s")?;
            }
            if rest > 0 {
                write!(f, "{rest}ms")?;
            }
            Ok(())
        }
    }
    F(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plan_literals() {
        for (text, ms) in [
            ("500ms", 500),
            ("30s", 30_000),
            ("1m30s", 90_000),
            ("0.5m", 30_000),
            ("2h", 7_200_000),
            ("1h2m3s4ms", 3_723_004),
        ] {
            assert_eq!(parse(text).unwrap(), Duration::from_millis(ms), "{text}");
        }
    }

    #[test]
    fn rejects_everything_else() {
        for text in [
            "", "30", "30 s", "s", "1s1m", "1m1m", "30sec", "-1s", "1..2s", "1d",
        ] {
            assert!(parse(text).is_err(), "{text} should be rejected");
        }
        assert_eq!(
            parse("30").unwrap_err().to_string(),
            "invalid duration `30`: a number needs a unit (write e.g. `500ms`, `30s`, `1m30s`, `0.5m`)"
        );
    }

    #[test]
    fn formats_round_trip() {
        for text in ["1m30s", "250ms", "2h", "10m"] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
    }
}
