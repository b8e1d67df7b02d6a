//! Last-used times of keys: recorded in memory on each use, written in batches.

use keyward_core::clock::Timestamp;
use keyward_core::ids::KeyId;
use keyward_core::store::{KeyUsage, Store, StoreError};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

fn poisoned() -> StoreError {
    StoreError::Backend("the usage recorder lock was poisoned".into())
}

/// Last-used times waiting to be written: at most one pending entry per key,
/// flushed in one transaction every few seconds.
#[derive(Default)]
pub struct UsageRecorder {
    pending: Mutex<HashMap<KeyId, (Timestamp, Option<IpAddr>)>>,
}

impl UsageRecorder {
    pub fn touch(&self, key: &KeyId, at: Timestamp, ip: Option<IpAddr>) {
        if let Ok(mut p) = self.pending.lock() {
            p.insert(key.clone(), (at, ip));
        }
    }

    /// A use not yet written, so responses show it before the flush.
    pub fn pending(&self, key: &KeyId) -> Option<(Timestamp, Option<IpAddr>)> {
        self.pending.lock().ok()?.get(key).copied()
    }

    /// Writes what is pending; on failure the batch is put back for the next try.
    pub async fn flush(&self, store: &dyn Store) -> Result<usize, StoreError> {
        let batch: Vec<KeyUsage> = match self.pending.lock() {
            Ok(mut p) => p.drain().map(|(key_id, (at, ip))| KeyUsage { key_id, at, ip }).collect(),
            Err(_) => return Err(poisoned()),
        };
        if batch.is_empty() {
            return Ok(0);
        }
        if let Err(e) = store.record_key_usage(&batch).await {
            if let Ok(mut p) = self.pending.lock() {
                for u in batch {
                    p.entry(u.key_id).or_insert((u.at, u.ip));
                }
            }
            return Err(e);
        }
        Ok(batch.len())
    }
}
