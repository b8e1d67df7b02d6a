//! The one place that reads the system clock; everything else takes `now`.

use chrono::{DateTime, SubsecRound, Utc};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Instants in Keyward are UTC with whole-second precision, as the API shows them.
pub type Timestamp = DateTime<Utc>;

/// A source of the current time, so rules can be tested at exact instants.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> Timestamp {
        Utc::now().trunc_subsecs(0)
    }
}

/// A clock that moves only when told to, so tests reach an instant without waiting for it.
#[derive(Debug)]
pub struct ManualClock {
    /// Seconds since the Unix epoch.
    secs: AtomicI64,
}

impl ManualClock {
    /// A clock standing at `start` (truncated to whole seconds).
    #[must_use]
    pub fn new(start: Timestamp) -> Self {
        Self { secs: AtomicI64::new(start.timestamp()) }
    }

    /// Moves the clock forward by `by`, in whole seconds (rounded up, so a wait is never cut short).
    pub fn advance(&self, by: Duration) {
        let secs = i64::try_from(by.as_secs()).unwrap_or(i64::MAX);
        let secs = secs.saturating_add(i64::from(by.subsec_nanos() > 0));
        self.secs.fetch_add(secs, Ordering::SeqCst);
    }

    /// Puts the clock at `at`, forward or back.
    pub fn set(&self, at: Timestamp) {
        self.secs.store(at.timestamp(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        // Out of chrono's range only if set so; the epoch is then as good as any instant.
        DateTime::from_timestamp(self.secs.load(Ordering::SeqCst), 0).unwrap_or_default()
    }
}

/// Formats an instant as the API writes it: `2026-11-22T10:00:00Z`.
#[must_use]
pub fn rfc3339(t: &Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Serde adapters that write instants the API way.
pub mod serde_rfc3339 {
    use super::Timestamp;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(t))
    }

    pub mod option {
        use super::Timestamp;
        use serde::Serializer;

        pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(&super::super::rfc3339(t)),
                None => s.serialize_none(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_stands_still_until_advanced_or_set() {
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_secs(11));
        assert_eq!(clock.now(), start + chrono::Duration::seconds(11));
        clock.advance(Duration::from_millis(1100));
        assert_eq!(clock.now(), start + chrono::Duration::seconds(13), "part of a second counts as one");
        clock.set(start - chrono::Duration::seconds(60));
        assert_eq!(clock.now(), start - chrono::Duration::seconds(60));
    }
}
