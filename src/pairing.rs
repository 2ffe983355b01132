//! Pools through which virtual users hand values to each other (e.g. an out-of-band
//! invitation from an inviter to an invitee). In memory, FIFO, one run (one shard).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use minijinja::Value;
use tokio::sync::{Mutex, mpsc};

/// The pools a plan declares.
#[derive(Debug, Default)]
pub struct Pools {
    pools: HashMap<String, Pool>,
}

#[derive(Debug)]
struct Pool {
    tx: mpsc::UnboundedSender<Value>,
    rx: Arc<Mutex<mpsc::UnboundedReceiver<Value>>>,
}

/// Why a take came back empty.
#[derive(Debug, PartialEq, Eq)]
pub enum TakeError {
    Timeout,
    UnknownPool,
}

impl Pools {
    pub fn new<'a>(names: impl IntoIterator<Item = &'a String>) -> Self {
        let pools = names
            .into_iter()
            .map(|n| {
                let (tx, rx) = mpsc::unbounded_channel();
                (
                    n.clone(),
                    Pool {
                        tx,
                        rx: Arc::new(Mutex::new(rx)),
                    },
                )
            })
            .collect();
        Pools { pools }
    }

    /// Offers a value; never blocks.
    pub fn offer(&self, pool: &str, value: Value) -> bool {
        self.pools
            .get(pool)
            .is_some_and(|p| p.tx.send(value).is_ok())
    }

    /// Takes the oldest offer, waiting up to `timeout`. Takers are served in arrival order.
    pub async fn take(&self, pool: &str, timeout: Duration) -> Result<Value, TakeError> {
        let p = self.pools.get(pool).ok_or(TakeError::UnknownPool)?;
        let rx = p.rx.clone();
        tokio::time::timeout(timeout, async move {
            let mut rx = rx.lock().await;
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
    async fn offers_reach_takers_in_order() {
        let names = vec!["inv".to_string()];
        let pools = Pools::new(&names);
        assert!(pools.offer("inv", Value::from(1)));
        assert!(pools.offer("inv", Value::from(2)));
        assert_eq!(
            pools.take("inv", Duration::from_millis(10)).await,
            Ok(Value::from(1))
        );
        assert_eq!(
            pools.take("inv", Duration::from_millis(10)).await,
            Ok(Value::from(2))
        );
        assert_eq!(
            pools.take("inv", Duration::from_millis(10)).await,
            Err(TakeError::Timeout)
        );
        assert_eq!(
            pools.take("nope", Duration::from_millis(10)).await,
            Err(TakeError::UnknownPool)
        );
    }
}
