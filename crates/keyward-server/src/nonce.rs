//! The Hawk nonce cache: a replayed (id, nonce) inside the timestamp window is
//! refused. Two generations bound memory: entries live 120 to 240 seconds,
//! longer than any two valid timestamps can be apart (2 × 60 s skew).

use std::collections::HashSet;
use std::sync::Mutex;

/// How long a generation collects before it becomes the previous one.
const GENERATION_SECS: i64 = 120;
/// At most this many nonces per generation; beyond it new Hawk requests are refused (fail closed).
const MAX_PER_GENERATION: usize = 1_000_000;

#[derive(Default)]
struct Generations {
    current: HashSet<(String, String)>,
    previous: HashSet<(String, String)>,
    started: i64,
}

/// Seen nonces per key id.
#[derive(Default)]
pub struct NonceCache {
    inner: Mutex<Generations>,
}

impl NonceCache {
    /// Records `(id, nonce)` and returns whether it is new; check and insert are one step.
    pub fn first_use(&self, id: &str, nonce: &str, now: i64) -> bool {
        let Ok(mut g) = self.inner.lock() else { return false };
        if now - g.started >= GENERATION_SECS {
            g.previous = std::mem::take(&mut g.current);
            g.started = now;
        }
        let entry = (id.to_owned(), nonce.to_owned());
        if g.current.contains(&entry) || g.previous.contains(&entry) || g.current.len() >= MAX_PER_GENERATION {
            return false;
        }
        g.current.insert(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_accepted_once_per_key_for_at_least_two_minutes() {
        let cache = NonceCache::default();
        assert!(cache.first_use("kw_a", "n1", 1_000));
        assert!(!cache.first_use("kw_a", "n1", 1_000));
        assert!(cache.first_use("kw_b", "n1", 1_000), "nonces are per key");
        for t in [1_060, 1_119, 1_120, 1_200, 1_239] {
            assert!(!cache.first_use("kw_a", "n1", t), "replayed at {t}");
        }
        // After two generations the entry is gone; by then its timestamp is long stale.
        assert!(cache.first_use("kw_a", "n1", 1_500));
    }
}
