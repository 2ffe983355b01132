//! The real bounds of the plan's numeric settings: one rule per kind of number, used by the
//! schema (so `validate` refuses a literal out of range) and by the checks of literal and
//! templated values (so a value rendered from a variable is held to the same rule).

/// Most users a shape may ask for at once (and most users an arrival-rate run keeps busy):
/// one process runs each user as a task, and a million is past what one machine can drive.
pub const MAX_USERS: u64 = 1_000_000;

/// Most iterations (arrival rate) or user starts per second.
pub const MAX_RATE: f64 = 1_000_000.0;

/// Fewest users started per second (`spawn_rate`), or share of the target per second
/// (`spawn_pct`): one user in about eleven days. Below it the time between two starts is no
/// longer a representable duration.
pub const MIN_SPAWN: f64 = 0.000_001;

/// Most requests in flight (`target.max_connections`).
pub const MAX_CONNECTIONS: usize = 1_000_000;

/// Largest weight of a weighted task; the weights of a `choose` are summed in `u32`.
pub const MAX_WEIGHT: u32 = 1_000_000;

/// What a number in a load shape must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// A whole number of users, `0..=MAX_USERS`.
    Users,
    /// Iterations per second, `0..=MAX_RATE`.
    Rate,
    /// A constant arrival rate: above 0, at most `MAX_RATE`.
    PositiveRate,
    /// A spawn rate or share: `MIN_SPAWN..=MAX_RATE`.
    Spawn,
}

impl Rule {
    /// The value as the rule accepts it, or why not.
    pub fn check(self, v: f64) -> Result<f64, String> {
        let ok = v.is_finite()
            && match self {
                Rule::Users => (0.0..=MAX_USERS as f64).contains(&v) && v.fract() == 0.0,
                Rule::Rate => (0.0..=MAX_RATE).contains(&v),
                Rule::PositiveRate => v > 0.0 && v <= MAX_RATE,
                Rule::Spawn => (MIN_SPAWN..=MAX_RATE).contains(&v),
            };
        if ok {
            return Ok(v);
        }
        let v = shown(v);
        Err(match self {
            Rule::Users => {
                format!("must be a whole number of users from 0 to {MAX_USERS}, got {v}")
            }
            Rule::Rate => format!("must be from 0 to {MAX_RATE} per second, got {v}"),
            Rule::PositiveRate => {
                format!("must be above 0 and at most {MAX_RATE} per second, got {v}")
            }
            Rule::Spawn => format!("must be from {MIN_SPAWN} to {MAX_RATE}, got {v}"),
        })
    }
}

/// A number as a person reads it: `1e-30`, not thirty zeros.
fn shown(v: f64) -> String {
    if v != 0.0 && !(1e-4..1e15).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_hold_their_bounds() {
        assert_eq!(Rule::Users.check(100.0), Ok(100.0));
        for bad in [-1.0, 1.5, 1e300, f64::NAN, f64::INFINITY] {
            assert!(Rule::Users.check(bad).is_err(), "{bad}");
        }
        assert!(Rule::Spawn.check(1e-30).is_err());
        assert!(Rule::Spawn.check(0.5).is_ok());
        assert!(Rule::PositiveRate.check(0.0).is_err());
        assert!(Rule::Rate.check(0.0).is_ok());
        assert!(Rule::Rate.check(2e6).is_err());
        // The slowest spawn still gives a representable time between two starts.
        assert!(std::time::Duration::try_from_secs_f64(1.0 / MIN_SPAWN).is_ok());
    }
}
