//! Web UI accounts, sessions, CSRF protection and login throttling.
//!
//! - Passwords: argon2id with the crate's defaults (m = 19 MiB, t = 2, p = 1, the OWASP
//!   Password Storage Cheat Sheet's first recommendation), kept as PHC strings. At most
//!   [`VERIFY_SLOTS`] verifications run at once, off the reactor, so a flood of logins
//!   cannot take every core. An unknown name is verified against a dummy hash, so timing
//!   does not tell which names exist.
//! - Sessions: 256 random bits from the OS, sent as 64 hex digits in an `HttpOnly;
//!   SameSite=Strict; Path=/` cookie (`Secure` over HTTPS); the store keeps only the
//!   SHA-256. They end after [`IDLE`] without a request or [`ABSOLUTE`] after login,
//!   whichever comes first. Logging in always makes a new id (no fixation).
//! - CSRF (OWASP CSRF Prevention Cheat Sheet): every POST of a logged-in session carries
//!   the session's synchronizer token in the form field `csrf`, and its `Origin` (or,
//!   without one, `Referer`) must be this server. The login form, before any session,
//!   uses a double-submit token (cookie `setten_login` = form field). Failing either is
//!   403 and nothing happens.
//! - Throttling: [`USER_FAILURES`] failed logins for a name, or [`IP_FAILURES`] from an
//!   address, within [`FAIL_WINDOW`] lock that name or address out for [`LOCKOUT`]; a
//!   locked-out attempt is refused without looking at the password.

use crate::store::{SessionRecord, Store, UserRecord, UserRole};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::TryRngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted, in bytes (argon2 takes any length; this bounds the work).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Longest user name.
pub const MAX_USER_NAME: usize = 64;
/// A session ends after this long without a request (µs).
pub const IDLE: i64 = 2 * 3600 * 1_000_000;
/// A session ends this long after login, whatever happens (µs).
pub const ABSOLUTE: i64 = 12 * 3600 * 1_000_000;
/// A session's last activity is written at most this often (µs).
pub const TOUCH_EVERY: i64 = 60 * 1_000_000;
/// Failed logins for one name within [`FAIL_WINDOW`] that lock it out.
pub const USER_FAILURES: u32 = 5;
/// Failed logins from one address within [`FAIL_WINDOW`] that lock it out.
pub const IP_FAILURES: u32 = 20;
/// The window failures are counted in (µs).
pub const FAIL_WINDOW: i64 = 15 * 60 * 1_000_000;
/// How long a lockout lasts (µs).
pub const LOCKOUT: i64 = 5 * 60 * 1_000_000;
/// Names and addresses tracked by the throttle at most.
pub const MAX_TRACKED: usize = 10_000;
/// Password verifications running at once.
pub const VERIFY_SLOTS: usize = 2;

/// A user name that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("user name `{0}` is not valid: use 1 to {MAX_USER_NAME} letters A-Z a-z, digits, `.`, `_` or `-`")]
pub struct BadUserName(String);

/// Checks a user name: `[A-Za-z0-9._-]{1,64}`.
pub fn check_user_name(s: &str) -> Result<(), BadUserName> {
    let ok = !s.is_empty()
        && s.len() <= MAX_USER_NAME
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(BadUserName(
            s.chars()
                .take(MAX_USER_NAME + 1)
                .collect::<String>()
                .escape_debug()
                .to_string(),
        ))
    }
}

/// Why a password is refused.
#[derive(Debug, thiserror::Error)]
pub enum BadPassword {
    /// Too short.
    #[error("the password is too short: use at least {MIN_PASSWORD_CHARS} characters")]
    Short,
    /// Too long.
    #[error("the password is too long: at most {MAX_PASSWORD_BYTES} bytes")]
    Long,
    /// Hashing failed.
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// Checks the length rules and hashes with argon2id into a PHC string.
pub fn hash_password(password: &str) -> Result<String, BadPassword> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(BadPassword::Short);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(BadPassword::Long);
    }
    let mut salt = [0u8; 16];
    rand::rngs::OsRng
        .try_fill_bytes(&mut salt)
        .map_err(|e| BadPassword::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| BadPassword::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| BadPassword::Hash(e.to_string()))
}

/// Whether `password` matches a PHC string (false for an unreadable one).
pub fn verify_password(phc: &str, password: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

/// Adds a user (the `user add` command).
pub fn add_user(
    store: &dyn Store,
    name: &str,
    role: UserRole,
    password: &str,
) -> Result<UserRecord, AccountError> {
    check_user_name(name)?;
    let phc = hash_password(password)?;
    Ok(store.add_user(name, role, &phc, crate::now_us())?)
}

/// A user could not be added.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The name.
    #[error(transparent)]
    Name(#[from] BadUserName),
    /// The password.
    #[error(transparent)]
    Password(#[from] BadPassword),
    /// The store.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// 32 random bytes as 64 hex digits.
pub fn random_token() -> Result<String, String> {
    let mut b = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut b)
        .map_err(|e| e.to_string())?;
    Ok(hex::encode(b))
}

/// What the store keeps of a session id.
pub fn session_hash(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

/// Equality that takes the same time wherever the first difference is.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a stored session is still valid at `now`.
pub fn session_alive(s: &SessionRecord, now: i64) -> bool {
    now.saturating_sub(s.last_us) <= IDLE && now.saturating_sub(s.created_us) <= ABSOLUTE
}

#[derive(Clone, Copy, Debug, Default)]
struct Failures {
    count: u32,
    window_start: i64,
    locked_until: i64,
}

/// Failed logins by name and by address.
#[derive(Debug, Default)]
pub struct Throttle {
    map: Mutex<HashMap<ThrottleKey, Failures>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum ThrottleKey {
    User(String),
    Ip(IpAddr),
}

impl Throttle {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ThrottleKey, Failures>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When a login for `user` from `ip` may be tried again, if it is locked out now.
    pub fn locked_until(&self, user: &str, ip: IpAddr, now: i64) -> Option<i64> {
        let m = self.lock();
        [ThrottleKey::User(user.to_owned()), ThrottleKey::Ip(ip)]
            .iter()
            .filter_map(|k| m.get(k))
            .map(|f| f.locked_until)
            .filter(|&t| t > now)
            .max()
    }

    /// Counts a failed login.
    pub fn failed(&self, user: &str, ip: IpAddr, now: i64) {
        let mut m = self.lock();
        if m.len() + 2 > MAX_TRACKED {
            m.retain(|_, f| f.locked_until > now || now - f.window_start <= FAIL_WINDOW);
            if m.len() + 2 > MAX_TRACKED {
                // Still full under a spray of names: forget the oldest windows.
                let mut starts: Vec<i64> = m.values().map(|f| f.window_start).collect();
                starts.sort_unstable();
                let cut = starts.get(starts.len() / 2).copied().unwrap_or(i64::MAX);
                m.retain(|_, f| f.locked_until > now || f.window_start > cut);
            }
        }
        for (key, limit) in [
            (ThrottleKey::User(user.to_owned()), USER_FAILURES),
            (ThrottleKey::Ip(ip), IP_FAILURES),
        ] {
            let f = m.entry(key).or_default();
            if now - f.window_start > FAIL_WINDOW {
                f.count = 0;
                f.window_start = now;
            }
            f.count += 1;
            if f.count >= limit {
                f.locked_until = now + LOCKOUT;
                f.count = 0;
                f.window_start = now;
            }
        }
    }

    /// Forgets a name's failures after a successful login.
    pub fn succeeded(&self, user: &str) {
        self.lock().remove(&ThrottleKey::User(user.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_to_argon2id_and_verify() {
        assert!(matches!(hash_password("short"), Err(BadPassword::Short)));
        // Twelve characters, counted as characters (Japanese passphrases are fine).
        let phc = hash_password("病院の接続点を守る合言葉").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password(&phc, "病院の接続点を守る合言葉"));
        assert!(!verify_password(&phc, "病院の接続点を守る合言葁"));
        assert!(!verify_password("not a phc", "whatever"));
        let again = hash_password("病院の接続点を守る合言葉").unwrap();
        assert_ne!(phc, again, "salted");
        assert!(matches!(
            hash_password(&"x".repeat(MAX_PASSWORD_BYTES + 1)),
            Err(BadPassword::Long)
        ));
    }

    #[test]
    fn user_names_are_checked() {
        for ok in ["sato", "it.admin", "a_b-c", &"x".repeat(64)] {
            check_user_name(ok).unwrap();
        }
        for bad in ["", "a b", "<script>", "佐藤", &"x".repeat(65)] {
            assert!(check_user_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn throttle_locks_a_name_after_five_failures_and_an_address_after_twenty() {
        let t = Throttle::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let now = 1_000_000_000;
        for i in 0..4 {
            t.failed("sato", ip, now + i);
            assert_eq!(t.locked_until("sato", ip, now + i), None);
        }
        t.failed("sato", ip, now + 4);
        assert_eq!(t.locked_until("sato", ip, now + 5), Some(now + 4 + LOCKOUT));
        // Another name from the same address is not locked yet…
        assert_eq!(t.locked_until("abe", ip, now + 5), None);
        // …and the lockout ends.
        assert_eq!(t.locked_until("sato", ip, now + 4 + LOCKOUT + 1), None);
        // Twenty failures across names lock the address.
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        for i in 0..20 {
            t.failed(&format!("u{i}"), other, now + i);
        }
        assert!(t.locked_until("fresh", other, now + 30).is_some());
        // A success forgets the name's failures.
        t.failed("ito", ip, now);
        t.succeeded("ito");
        assert!(t.lock().get(&ThrottleKey::User("ito".into())).is_none());
    }

    #[test]
    fn throttle_memory_is_bounded() {
        let t = Throttle::default();
        let now = 1_000_000_000;
        for i in 0..(MAX_TRACKED as u32 + 500) {
            let ip = IpAddr::from(i.to_be_bytes());
            t.failed(&format!("n{i}"), ip, now + i64::from(i));
        }
        assert!(t.lock().len() <= MAX_TRACKED);
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "a"));
    }
}
