//! Pools through which virtual users hand values to each other (e.g. an out-of-band
//! invitation from an inviter to an invitee, and the invitee's wallet id back, keyed by
//! the inviter's). In memory, FIFO per key, one run (one shard).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use minijinja::Value;
use tokio::sync::{Mutex, mpsc};

/// The pools a plan declares; each key of a pool is its own queue.
#[derive(Debug, Default)]
pub struct Pools {
    names: HashSet<String>,
    queues: std::sync::Mutex<HashMap<(String, String), Queue>>,
}

#[derive(Debug, Clone)]
struct Queue {
    tx: mpsc::UnboundedSender<Offered>,
    rx: Arc<Mutex<mpsc::UnboundedReceiver<Offered>>>,
}

/// A value handed over, with the secrets (captured with `secret: true`) it contains: they
/// stay secret for the user that takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Offered {
    pub value: Value,
    pub secrets: Vec<String>,
}

/// Why a take came back empty.
#[derive(Debug, PartialEq, Eq)]
pub enum TakeError {
    Timeout,
    UnknownPool,
}

impl Pools {
    pub fn new<'a>(names: impl IntoIterator<Item = &'a String>) -> Self {
        Pools {
            names: names.into_iter().cloned().collect(),
            queues: Default::default(),
        }
    }

    fn queue(&self, pool: &str, key: &str) -> Option<Queue> {
        if !self.names.contains(pool) {
            return None;
        }
        let mut queues = self.queues.lock().ok()?;
        let q = queues
            .entry((pool.to_string(), key.to_string()))
            .or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                Queue {
                    tx,
                    rx: Arc::new(Mutex::new(rx)),
                }
            });
        Some(q.clone())
    }

    /// Offers a value under `key` (`""`: to anyone); never blocks.
    pub fn offer(&self, pool: &str, key: &str, offered: Offered) -> bool {
        self.queue(pool, key)
            .is_some_and(|q| q.tx.send(offered).is_ok())
    }

    /// Takes the oldest offer under `key`, waiting up to `timeout`. Takers are served in order.
    pub async fn take(
        &self,
        pool: &str,
        key: &str,
        timeout: Duration,
    ) -> Result<Offered, TakeError> {
        let q = self.queue(pool, key).ok_or(TakeError::UnknownPool)?;
        tokio::time::timeout(timeout, async move {
            let mut rx = q.rx.lock().await;
            rx.recv().await
        })
        .await
        .ok()
        .flatten()
        .ok_or(TakeError::Timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn offers_reach_takers_in_order_and_by_key() {
        let names = vec!["inv".to_string()];
        let pools = Pools::new(&names);
        let ms = Duration::from_millis(10);
        let v = |n: i32| Offered {
            value: Value::from(n),
            secrets: vec![format!("s{n}")],
        };
        assert!(pools.offer("inv", "", v(1)));
        assert!(pools.offer("inv", "", v(2)));
        assert!(pools.offer("inv", "w7", v(7)));
        assert_eq!(pools.take("inv", "", ms).await, Ok(v(1)));
        assert_eq!(pools.take("inv", "w7", ms).await, Ok(v(7)));
        assert_eq!(pools.take("inv", "", ms).await, Ok(v(2)));
        assert_eq!(pools.take("inv", "", ms).await, Err(TakeError::Timeout));
        assert_eq!(
            pools.take("nope", "", ms).await,
            Err(TakeError::UnknownPool)
        );
        assert!(!pools.offer("nope", "", v(1)));
    }
}
