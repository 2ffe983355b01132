//! Sharding a run across load generators: global user (or arrival) `k` belongs to shard
//! `k % count`, so at every moment the shards' shares add up to the plan's total, and
//! each shard starts its users at the times a single run would.

/// This generator's place among `count` shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

impl Shard {
    /// Reads `INDEX/COUNT` (0-based index).
    pub fn parse(s: &str) -> Result<Shard, String> {
        let (i, c) = s
            .split_once('/')
            .ok_or_else(|| format!("--shard {s}: expected INDEX/COUNT, e.g. 0/3"))?;
        let index: u32 = i
            .trim()
            .parse()
            .map_err(|_| format!("--shard {s}: the index is not a whole number"))?;
        let count: u32 = c
            .trim()
            .parse()
            .map_err(|_| format!("--shard {s}: the count is not a whole number"))?;
        if count == 0 || index >= count {
            return Err(format!(
                "--shard {s}: the index must be below the count (0-based: 0/{count} … {}/{count})",
                count.saturating_sub(1)
            ));
        }
        Ok(Shard { index, count })
    }

    /// True when global user or arrival `k` is this shard's.
    pub fn owns(&self, k: u64) -> bool {
        k % u64::from(self.count) == u64::from(self.index)
    }

    /// How many of the first `total` global users are this shard's.
    pub fn share(&self, total: u64) -> u64 {
        let c = u64::from(self.count);
        total / c + u64::from(total % c > u64::from(self.index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!(Shard::parse("2/3"), Ok(Shard { index: 2, count: 3 }));
        assert!(Shard::parse("3/3").unwrap_err().contains("below the count"));
        assert!(Shard::parse("1").is_err());
        assert!(Shard::parse("a/2").is_err());
    }

    proptest! {
        #[test]
        fn shares_add_up_to_the_total(total in 0u64..100_000, count in 1u32..64) {
            let sum: u64 = (0..count).map(|index| Shard { index, count }.share(total)).sum();
            prop_assert_eq!(sum, total);
            let owned: u64 = (0..total.min(500)).filter(|k| Shard { index: 0, count }.owns(*k)).count() as u64;
            prop_assert_eq!(owned, Shard { index: 0, count }.share(total.min(500)));
        }
    }
}
