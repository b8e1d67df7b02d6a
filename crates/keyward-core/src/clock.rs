//! The one place that reads the system clock; everything else takes `now`.

use chrono::{DateTime, SubsecRound, Utc};

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
