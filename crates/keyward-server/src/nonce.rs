//! The Hawk nonce cache: a replayed (id, nonce, ts) inside the timestamp window is
//! refused, and a valid request is never refused for want of room.
//!
//! Nonces are kept per second of the request's `ts`, in a ring of [`SLOTS`] seconds
//! (more than the 121 seconds a timestamp can be accepted for, ±60 s skew): a slot is
//! reused only once its second can no longer pass the skew check. Each second keeps
//! a 64-bit fingerprint per nonce (a SipHash of key id and nonce under a per-process
//! random key), exactly, up to [`EXACT_PER_SECOND`]; past that, further nonces of that
//! second go into a Bloom filter of [`BLOOM_BITS`] bits with [`BLOOM_HASHES`] probes.
//!
//! Bounds, stated:
//! - memory: at most `SLOTS × (exact set + filter)` ≈ 128 × (288 KiB + 512 KiB) ≈ 100 MiB,
//!   reached only if every second of the window saw more than 16,384 Hawk requests;
//!   a second with fewer costs 9 bytes per nonce and no filter.
//! - false refusals: a fresh nonce collides with an earlier fingerprint of its second
//!   with probability below n / 2^64 (n nonces in that second); once a second
//!   overflows, a fresh nonce is taken for a replay with the filter's rate
//!   `(1 − e^(−k·m/M))^k` for `m` nonces in the filter (k = 12, M = 2^22):
//!   below 10⁻¹⁵ at 30,000 Hawk requests a second, 3·10⁻¹¹ at 66,000,
//!   6·10⁻⁸ at 116,000 (see `a_full_second_degrades_to_the_stated_false_positive_rate`).
//! - replays: never accepted while their `ts` passes the skew check.
//!
//! Its memory starts with the process: requests signed before then are sent back to
//! re-sign (a stale-timestamp challenge), so a restart forgets no replay.

use keyward_core::hawk::DEFAULT_SKEW_SECS;
use std::collections::HashSet;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::Mutex;

/// Seconds in the ring; more than the 2 × 60 + 1 seconds a `ts` can be valid for.
pub const SLOTS: usize = 128;
/// Fingerprints kept exactly per second of `ts` before the filter takes over.
pub const EXACT_PER_SECOND: usize = 16_384;
/// Bits of a second's overflow filter (512 KiB).
pub const BLOOM_BITS: usize = 1 << 22;
/// Probes per nonce in the overflow filter.
pub const BLOOM_HASHES: u64 = 12;

/// The longest nonce accepted; real clients send 6 to 40 characters.
pub const MAX_NONCE_LEN: usize = 128;

/// Fingerprints are already keyed hashes: the set uses them as they are.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The nonces of one second of `ts`.
#[derive(Default)]
struct Second {
    ts: i64,
    exact: HashSet<u64, BuildHasherDefault<Identity>>,
    overflow: Option<Box<[u64]>>,
}

impl Second {
    /// The filter's probe positions: double hashing over the fingerprint's halves.
    fn probes(print: u64) -> impl Iterator<Item = usize> {
        let h1 = print & 0xffff_ffff;
        let h2 = (print >> 32) | 1;
        (0..BLOOM_HASHES).map(move |i| {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) % BLOOM_BITS as u64;
            #[allow(clippy::cast_possible_truncation)] // below BLOOM_BITS
            let bit = bit as usize;
            bit
        })
    }

    fn reset(&mut self, ts: i64) {
        self.ts = ts;
        self.exact.clear();
        if let Some(bits) = self.overflow.as_mut() {
            bits.fill(0);
        }
    }

    /// Records `print`; false if it (or, past the exact set, its filter bits) was there.
    fn insert(&mut self, print: u64) -> bool {
        if self.exact.contains(&print) {
            return false;
        }
        if self.exact.len() < EXACT_PER_SECOND && self.overflow.is_none() {
            self.exact.insert(print);
            return true;
        }
        let bits = self.overflow.get_or_insert_with(|| vec![0u64; BLOOM_BITS / 64].into_boxed_slice());
        let mut fresh = false;
        for bit in Self::probes(print) {
            let (word, mask) = (bit / 64, 1u64 << (bit % 64));
            if let Some(w) = bits.get_mut(word) {
                fresh |= *w & mask == 0;
                *w |= mask;
            }
        }
        fresh
    }
}

/// Seen nonces per key id, per second of `ts`.
pub struct NonceCache {
    seconds: Vec<Mutex<Second>>,
    key: RandomState,
    /// The last whole second before this cache's memory began.
    remembers_after: i64,
}

impl Default for NonceCache {
    /// A cache that vouches for every timestamp (tests and benchmarks).
    fn default() -> Self {
        Self::remembering_after(i64::MIN)
    }
}

impl NonceCache {
    fn remembering_after(remembers_after: i64) -> Self {
        Self {
            seconds: (0..SLOTS).map(|_| Mutex::new(Second { ts: i64::MIN, ..Second::default() })).collect(),
            key: RandomState::new(),
            remembers_after,
        }
    }

    /// A cache whose memory begins at `started` (Unix seconds, with fraction). The
    /// whole second it began in is not vouched for: a request signed earlier in that
    /// second may have been seen by the process before.
    #[must_use]
    pub fn since(started: keyward_core::clock::Timestamp) -> Self {
        Self::remembering_after(started.timestamp())
    }

    fn fingerprint(&self, id: &str, nonce: &str) -> u64 {
        let mut h = self.key.build_hasher();
        h.write(id.as_bytes());
        h.write_u8(0xff);
        h.write(nonce.as_bytes());
        h.finish()
    }

    /// Records `(id, nonce)` signed at `ts` and returns whether it is new; check and
    /// insert are one step. A `ts` outside the skew window of `now` is refused: the
    /// ring cannot vouch for it.
    pub fn first_use(&self, id: &str, nonce: &str, ts: i64, now: i64) -> bool {
        if nonce.len() > MAX_NONCE_LEN || ts.abs_diff(now) > DEFAULT_SKEW_SECS {
            return false;
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // rem_euclid of SLOTS
        let slot = ts.rem_euclid(SLOTS as i64) as usize;
        let Some(Ok(mut second)) = self.seconds.get(slot).map(Mutex::lock) else { return false };
        if second.ts < ts {
            // The slot's second is at least SLOTS older than `ts`, long past the skew window.
            second.reset(ts);
        } else if second.ts > ts {
            // Only after the wall clock stepped back: refuse rather than forget.
            return false;
        }
        second.insert(self.fingerprint(id, nonce))
    }
}

impl keyward_core::authn::ReplayGuard for NonceCache {
    fn first_use(&self, id: &str, nonce: &str, ts: i64, now: i64) -> bool {
        NonceCache::first_use(self, id, nonce, ts, now)
    }

    fn remembers_after(&self) -> i64 {
        self.remembers_after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_accepted_once_per_key_while_its_timestamp_is_valid() {
        let cache = NonceCache::default();
        assert!(cache.first_use("kw_a", "n1", 1_000, 1_000));
        assert!(!cache.first_use("kw_a", "n1", 1_000, 1_000));
        assert!(cache.first_use("kw_b", "n1", 1_000, 1_000), "nonces are per key");
        assert!(cache.first_use("kw_a", "n1", 1_001, 1_000), "a new ts is a new signature");
        for now in [940, 1_000, 1_059, 1_060] {
            assert!(!cache.first_use("kw_a", "n1", 1_000, now), "replayed at {now}");
        }
        // Past the skew window the ring cannot vouch for the request; the MAC check
        // refuses it before it gets here anyway.
        assert!(!cache.first_use("kw_a", "fresh", 1_000, 1_061));
        assert!(!cache.first_use("kw_a", "fresh", 1_000, 939));
    }

    #[test]
    fn a_slot_is_reused_only_by_a_later_second() {
        let cache = NonceCache::default();
        let later = 1_000 + SLOTS as i64;
        assert!(cache.first_use("kw", "n", 1_000, 1_000));
        assert!(cache.first_use("kw", "n", later, later), "the old second is past the window");
        assert!(!cache.first_use("kw", "m", 1_000, later - 60), "a clock stepped back is refused");
    }

    #[test]
    fn one_key_at_any_rate_is_never_refused_while_a_second_stays_exact() {
        let cache = NonceCache::default();
        // 16,384 a second for the whole ring: two and a half times the old per-key cap.
        for ts in 0..20 {
            for i in 0..EXACT_PER_SECOND {
                assert!(cache.first_use("kw_busy", &i.to_string(), ts, ts), "ts {ts} nonce {i}");
            }
        }
        assert!(!cache.first_use("kw_busy", "7", 19, 19), "replays are still caught");
    }

    #[test]
    fn a_full_second_degrades_to_the_stated_false_positive_rate() {
        let cache = NonceCache::default();
        // Heavy enough that the rate is measurable: 400,000 nonces in the filter.
        let filled = 400_000;
        for i in 0..EXACT_PER_SECOND + filled {
            assert!(cache.first_use("kw", &format!("a{i}"), 5, 5) || i >= EXACT_PER_SECOND);
        }
        // Every replay, exact or filtered, is refused.
        for i in (0..EXACT_PER_SECOND + filled).step_by(997) {
            assert!(!cache.first_use("kw", &format!("a{i}"), 5, 5), "replay {i} accepted");
        }
        let probes = 100_000;
        let refused = (0..probes).filter(|i| !cache.first_use("kw_other", &format!("b{i}"), 5, 5)).count();
        #[allow(clippy::cast_precision_loss)]
        let (k, m, n) = (BLOOM_HASHES as f64, BLOOM_BITS as f64, filled as f64);
        // The filter grows by the probes themselves; take the rate at the end as the ceiling.
        let rate = |n: f64| (1.0 - (-k * n / m).exp()).powf(k);
        let (low, high) = (rate(n) * probes as f64 / 2.0, rate(n + probes as f64) * probes as f64 * 2.0);
        #[allow(clippy::cast_precision_loss)]
        let got = refused as f64;
        assert!(got >= low && got <= high, "{refused} false refusals, expected {low:.0}..{high:.0}");
    }

    #[test]
    fn the_stated_rates_hold() {
        #[allow(clippy::cast_precision_loss)]
        let (k, m) = (BLOOM_HASHES as f64, BLOOM_BITS as f64);
        let rate = |per_second: f64| (1.0 - (-k * (per_second - EXACT_PER_SECOND as f64) / m).exp()).powf(k);
        assert!(rate(30_000.0) < 1e-15);
        assert!(rate(66_000.0) < 3e-11);
        assert!(rate(116_000.0) < 6e-8);
    }

    #[test]
    fn overlong_nonces_are_refused() {
        let cache = NonceCache::default();
        assert!(cache.first_use("kw", &"n".repeat(MAX_NONCE_LEN), 1, 1));
        assert!(!cache.first_use("kw", &"n".repeat(MAX_NONCE_LEN + 1), 1, 1));
    }
}
