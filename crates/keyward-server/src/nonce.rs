//! The Hawk nonce cache: a replayed (id, nonce) inside the timestamp window is
//! refused. Two generations bound memory: entries live 120 to 240 seconds,
//! longer than any two valid timestamps can be apart (2 × 60 s skew); each key
//! has its own share, so one busy key cannot lock the others out. Its memory
//! starts with the process: requests signed before then are sent back to
//! re-sign (a stale-timestamp challenge), so a restart forgets no replay.

use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// How long a generation collects before it becomes the previous one.
const GENERATION_SECS: i64 = 120;
/// Nonces one key may use per generation (about 800 signed requests a second);
/// past it that key's Hawk requests are refused, other keys' are not.
const MAX_PER_KEY: usize = 100_000;
/// Nonces of all keys per generation (about 64 MiB at most); past it new Hawk
/// requests are refused (fail closed) until the window moves.
const MAX_PER_GENERATION: usize = 2_000_000;

/// The longest nonce accepted; real clients send 6 to 40 characters.
pub const MAX_NONCE_LEN: usize = 128;

/// A generation keeps 16 bytes per nonce (a hash of key id and nonce), however long the nonce.
#[derive(Default)]
struct Generation {
    seen: HashSet<[u8; 16]>,
    per_key: HashMap<String, usize>,
}

#[derive(Default)]
struct Generations {
    current: Generation,
    previous: Generation,
    started: i64,
}

/// Seen nonces per key id.
pub struct NonceCache {
    inner: Mutex<Generations>,
    /// The last whole second before this cache's memory began.
    remembers_after: i64,
}

impl Default for NonceCache {
    /// A cache that vouches for every timestamp (tests and benchmarks).
    fn default() -> Self {
        Self { inner: Mutex::default(), remembers_after: i64::MIN }
    }
}

fn fingerprint(id: &str, nonce: &str) -> [u8; 16] {
    let digest = Sha256::new().chain_update(id.as_bytes()).chain_update([0]).chain_update(nonce.as_bytes()).finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

impl NonceCache {
    /// A cache whose memory begins at `started` (Unix seconds, with fraction). The
    /// whole second it began in is not vouched for: a request signed earlier in that
    /// second may have been seen by the process before.
    #[must_use]
    pub fn since(started: keyward_core::clock::Timestamp) -> Self {
        Self { inner: Mutex::default(), remembers_after: started.timestamp() }
    }

    /// Records `(id, nonce)` and returns whether it is new; check and insert are one step.
    pub fn first_use(&self, id: &str, nonce: &str, now: i64) -> bool {
        if nonce.len() > MAX_NONCE_LEN {
            return false;
        }
        let Ok(mut g) = self.inner.lock() else { return false };
        if now - g.started >= GENERATION_SECS {
            g.previous = std::mem::take(&mut g.current);
            g.started = now;
        }
        let print = fingerprint(id, nonce);
        if g.previous.seen.contains(&print) || g.current.seen.contains(&print) {
            return false;
        }
        let used = g.current.per_key.get(id).copied().unwrap_or(0);
        if used >= MAX_PER_KEY || g.current.seen.len() >= MAX_PER_GENERATION {
            return false;
        }
        g.current.seen.insert(print);
        g.current.per_key.insert(id.to_owned(), used + 1);
        true
    }
}

impl keyward_core::authn::ReplayGuard for NonceCache {
    fn first_use(&self, id: &str, nonce: &str, now: i64) -> bool {
        NonceCache::first_use(self, id, nonce, now)
    }

    fn remembers_after(&self) -> i64 {
        self.remembers_after
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

    #[test]
    fn one_key_filling_its_share_does_not_block_the_others() {
        let cache = NonceCache::default();
        for i in 0..MAX_PER_KEY {
            assert!(cache.first_use("kw_busy", &i.to_string(), 10));
        }
        assert!(!cache.first_use("kw_busy", "one more", 10));
        assert!(cache.first_use("kw_other", "n", 10));
        assert!(cache.first_use("kw_busy", "next generation", 10 + GENERATION_SECS));
    }

    #[test]
    fn overlong_nonces_are_refused() {
        let cache = NonceCache::default();
        assert!(cache.first_use("kw", &"n".repeat(MAX_NONCE_LEN), 1));
        assert!(!cache.first_use("kw", &"n".repeat(MAX_NONCE_LEN + 1), 1));
    }
}
