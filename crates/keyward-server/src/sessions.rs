//! Browser sessions for the web console: signed in with a person's API key,
//! held in memory (a restart signs everyone out), tied to that key so locking,
//! deleting or expiring it ends the session, and guarded by a CSRF token.

use keyward_core::clock::Timestamp;
use keyward_core::ids::KeyId;
use keyward_core::secret::random_base62;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const COOKIE: &str = "keyward_session";
/// The header that must repeat the session's CSRF token on writes.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A session ends this long after sign-in, whatever happens.
pub const ABSOLUTE_LIFETIME_SECS: i64 = 12 * 3600;
/// A session ends after this long without a request.
pub const IDLE_LIFETIME_SECS: i64 = 30 * 60;

#[derive(Clone)]
pub struct Session {
    pub key_id: KeyId,
    /// Which of the key's secrets signed in: rolling the key ends the session.
    pub secret_version: String,
    pub csrf: String,
    pub created_at: Timestamp,
    pub last_seen: Timestamp,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("key_id", &self.key_id).field("csrf", &"***").finish_non_exhaustive()
    }
}

impl Session {
    /// When the session ends if it stays idle.
    #[must_use]
    pub fn expires_at(&self) -> Timestamp {
        (self.last_seen + chrono::Duration::seconds(IDLE_LIFETIME_SECS))
            .min(self.created_at + chrono::Duration::seconds(ABSOLUTE_LIFETIME_SECS))
    }

    /// Whether `presented` is this session's CSRF token (constant time).
    #[must_use]
    pub fn csrf_matches(&self, presented: &str) -> bool {
        self.csrf.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

/// Live sessions by the SHA-256 of their token, so the map holds no usable token.
#[derive(Default)]
pub struct SessionStore {
    sessions: Mutex<HashMap<[u8; 32], Session>>,
}

fn handle(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl SessionStore {
    /// Starts a session; returns its token (for the cookie) and the session.
    pub fn create(&self, key_id: KeyId, secret_version: String, now: Timestamp) -> (String, Session) {
        let token = format!("kwsess_{}", random_base62(43));
        let session = Session { key_id, secret_version, csrf: random_base62(32), created_at: now, last_seen: now };
        if let Ok(mut map) = self.sessions.lock() {
            // Sign-in is a good moment to forget sessions that ended.
            map.retain(|_, s| s.expires_at() > now);
            map.insert(handle(&token), session.clone());
        }
        (token, session)
    }

    /// The live session for `token`, marked as seen now.
    pub fn touch(&self, token: &str, now: Timestamp) -> Option<Session> {
        let mut map = self.sessions.lock().ok()?;
        let key = handle(token);
        let alive = map.get(&key).is_some_and(|s| s.expires_at() > now);
        if !alive {
            map.remove(&key);
            return None;
        }
        let s = map.get_mut(&key)?;
        s.last_seen = now;
        Some(s.clone())
    }

    pub fn end(&self, token: &str) {
        if let Ok(mut map) = self.sessions.lock() {
            map.remove(&handle(token));
        }
    }
}

/// The session token in a `Cookie` header, if any.
#[must_use]
pub fn token_from_cookies(header: &str) -> Option<&str> {
    header.split(';').filter_map(|c| c.trim().split_once('=')).find(|(k, _)| *k == COOKIE).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn sessions_end_when_idle_and_after_their_absolute_lifetime() {
        let t0 = chrono::Utc.with_ymd_and_hms(2026, 11, 22, 8, 0, 0).unwrap();
        let store = SessionStore::default();
        let (token, s) = store.create(KeyId::from_trusted("kw_1"), "v1".into(), t0);
        assert!(s.csrf_matches(&s.csrf) && !s.csrf_matches("nope"));
        assert!(store.touch(&token, t0 + chrono::Duration::minutes(29)).is_some());
        let mut t = t0 + chrono::Duration::minutes(29);
        while t < t0 + chrono::Duration::hours(12) - chrono::Duration::minutes(20) {
            t += chrono::Duration::minutes(20);
            assert!(store.touch(&token, t).is_some(), "active at {t}");
        }
        assert!(store.touch(&token, t0 + chrono::Duration::hours(12)).is_none(), "absolute lifetime");
        let (idle, _) = store.create(KeyId::from_trusted("kw_2"), "v1".into(), t0);
        assert!(store.touch(&idle, t0 + chrono::Duration::minutes(31)).is_none(), "idle lifetime");
        assert!(store.touch("kwsess_forged", t0).is_none());
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        assert_eq!(token_from_cookies("a=1; keyward_session=kwsess_x; b=2"), Some("kwsess_x"));
        assert_eq!(token_from_cookies("a=1"), None);
    }
}
