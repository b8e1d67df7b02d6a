//! Browser sessions: signed in with a person's API key (`POST /v1/sessions`),
//! tied to that key so locking, deleting or expiring it ends the session; or
//! signed in to the console with an email and password, tied to the person.
//! Held in memory (a restart signs everyone out) and guarded by a CSRF token.

use keyward_core::clock::Timestamp;
use keyward_core::ids::{KeyId, UserId};
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
        session_end(self.created_at, self.last_seen)
    }

    /// Whether `presented` is this session's CSRF token (constant time).
    #[must_use]
    pub fn csrf_matches(&self, presented: &str) -> bool {
        csrf_equal(&self.csrf, presented)
    }
}

/// When a session ends if it stays idle: the idle or the absolute limit, whichever comes first.
fn session_end(created_at: Timestamp, last_seen: Timestamp) -> Timestamp {
    (last_seen + chrono::Duration::seconds(IDLE_LIFETIME_SECS))
        .min(created_at + chrono::Duration::seconds(ABSOLUTE_LIFETIME_SECS))
}

/// Whether a presented CSRF token is the session's (constant time).
fn csrf_equal(expected: &str, presented: &str) -> bool {
    expected.as_bytes().ct_eq(presented.as_bytes()).into()
}

/// The console's session cookie (a person signed in with a password).
pub const CONSOLE_COOKIE: &str = "keyward_console";
/// Rolling or deleting a key asks for the password again once the session's last
/// password proof is older than this (a constant until orgs get a setting for it).
pub const REAUTH_WINDOW_SECS: i64 = 15 * 60;

/// A person signed in to the console with their email and password.
#[derive(Clone)]
pub struct PersonSession {
    pub user_id: UserId,
    pub csrf: String,
    pub created_at: Timestamp,
    pub last_seen: Timestamp,
    /// When the password was last proved (sign-in or step-up).
    pub authenticated_at: Timestamp,
    /// Signed in with a one-time password: nothing but changing it is allowed.
    pub must_change_password: bool,
}

impl std::fmt::Debug for PersonSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersonSession").field("user_id", &self.user_id).field("csrf", &"***").finish_non_exhaustive()
    }
}

impl PersonSession {
    /// When the session ends if it stays idle.
    #[must_use]
    pub fn expires_at(&self) -> Timestamp {
        session_end(self.created_at, self.last_seen)
    }

    /// Whether `presented` is this session's CSRF token (constant time).
    #[must_use]
    pub fn csrf_matches(&self, presented: &str) -> bool {
        csrf_equal(&self.csrf, presented)
    }

    /// Whether a destructive action must first ask for the password again.
    #[must_use]
    pub fn needs_step_up(&self, now: Timestamp) -> bool {
        now - self.authenticated_at > chrono::Duration::seconds(REAUTH_WINDOW_SECS)
    }
}

/// Live sessions by the SHA-256 of their token, so the map holds no usable token.
#[derive(Default)]
pub struct SessionStore {
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    people: Mutex<HashMap<[u8; 32], PersonSession>>,
    /// New secrets waiting for their one CSV download, by the SHA-256 of the link's token.
    downloads: Mutex<HashMap<[u8; 32], Download>>,
}

/// A secret that may be downloaded once, by the person who created it, for a few minutes.
struct Download {
    user_id: UserId,
    key_id: KeyId,
    secret: keyward_core::secret::Secret,
    until: Timestamp,
}

/// How long a secret's CSV download link works.
pub const DOWNLOAD_LIFETIME_SECS: i64 = 10 * 60;

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

impl SessionStore {
    /// Starts a console session for a person who proved their password now.
    pub fn create_person(&self, user_id: UserId, must_change_password: bool, now: Timestamp) -> String {
        let token = format!("kwcons_{}", random_base62(43));
        let session = PersonSession {
            user_id,
            csrf: random_base62(32),
            created_at: now,
            last_seen: now,
            authenticated_at: now,
            must_change_password,
        };
        if let Ok(mut map) = self.people.lock() {
            map.retain(|_, s| s.expires_at() > now);
            map.insert(handle(&token), session);
        }
        token
    }

    /// The live console session for `token`, marked as seen now.
    pub fn touch_person(&self, token: &str, now: Timestamp) -> Option<PersonSession> {
        let mut map = self.people.lock().ok()?;
        let key = handle(token);
        if map.get(&key).is_none_or(|s| s.expires_at() <= now) {
            map.remove(&key);
            return None;
        }
        let s = map.get_mut(&key)?;
        s.last_seen = now;
        Some(s.clone())
    }

    /// Records a fresh password proof (step-up) for the session.
    pub fn reauthenticated(&self, token: &str, now: Timestamp) {
        if let Ok(mut map) = self.people.lock()
            && let Some(s) = map.get_mut(&handle(token))
        {
            s.authenticated_at = now;
        }
    }

    pub fn end_person(&self, token: &str) {
        if let Ok(mut map) = self.people.lock() {
            map.remove(&handle(token));
        }
    }

    /// Keeps a new secret for one CSV download by `user_id`; returns the link's token.
    pub fn stash_download(
        &self,
        user_id: UserId,
        key_id: KeyId,
        secret: keyward_core::secret::Secret,
        now: Timestamp,
    ) -> String {
        let token = random_base62(32);
        if let Ok(mut map) = self.downloads.lock() {
            map.retain(|_, d| d.until > now);
            let until = now + chrono::Duration::seconds(DOWNLOAD_LIFETIME_SECS);
            map.insert(handle(&token), Download { user_id, key_id, secret, until });
        }
        token
    }

    /// Takes a stashed secret: the first request by its creator gets it, nobody gets it twice.
    pub fn take_download(
        &self,
        token: &str,
        user_id: &UserId,
        now: Timestamp,
    ) -> Option<(KeyId, keyward_core::secret::Secret)> {
        let mut map = self.downloads.lock().ok()?;
        let key = handle(token);
        if !map.get(&key).is_some_and(|d| d.user_id == *user_id && d.until > now) {
            return None;
        }
        map.remove(&key).map(|d| (d.key_id, d.secret))
    }

    /// Ends every console session of a person (password changed, user disabled).
    pub fn end_user(&self, user_id: &UserId) {
        if let Ok(mut map) = self.people.lock() {
            map.retain(|_, s| s.user_id != *user_id);
        }
    }
}

/// The session token in a `Cookie` header, if any.
#[must_use]
pub fn token_from_cookies(header: &str) -> Option<&str> {
    cookie_value(header, COOKIE)
}

/// The value of cookie `name` in a `Cookie` header, if any.
#[must_use]
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').filter_map(|c| c.trim().split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v)
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
    fn person_sessions_time_out_step_up_and_end_with_their_user() {
        let t0 = chrono::Utc.with_ymd_and_hms(2026, 11, 22, 8, 0, 0).unwrap();
        let store = SessionStore::default();
        let alice = UserId::from_trusted("usr_alice");
        let a1 = store.create_person(alice.clone(), false, t0);
        let a2 = store.create_person(alice.clone(), false, t0);
        let b = store.create_person(UserId::from_trusted("usr_bob"), true, t0);
        let s = store.touch_person(&a1, t0 + chrono::Duration::minutes(14)).unwrap();
        assert!(!s.needs_step_up(t0 + chrono::Duration::minutes(15)));
        assert!(s.needs_step_up(t0 + chrono::Duration::minutes(16)));
        store.reauthenticated(&a1, t0 + chrono::Duration::minutes(16));
        let s = store.touch_person(&a1, t0 + chrono::Duration::minutes(20)).unwrap();
        assert!(!s.needs_step_up(t0 + chrono::Duration::minutes(30)));
        assert!(store.touch_person(&a2, t0 + chrono::Duration::minutes(31)).is_none(), "idle lifetime");
        assert!(store.touch_person(&b, t0 + chrono::Duration::minutes(1)).unwrap().must_change_password);
        store.end_user(&alice);
        assert!(store.touch_person(&a1, t0 + chrono::Duration::minutes(21)).is_none(), "ended with its user");
        assert!(store.touch_person(&b, t0 + chrono::Duration::minutes(2)).is_some(), "others untouched");
        store.end_person(&b);
        assert!(store.touch_person(&b, t0 + chrono::Duration::minutes(3)).is_none());
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        assert_eq!(token_from_cookies("a=1; keyward_session=kwsess_x; b=2"), Some("kwsess_x"));
        assert_eq!(token_from_cookies("a=1"), None);
    }
}
