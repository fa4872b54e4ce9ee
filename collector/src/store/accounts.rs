//! Web UI accounts and sessions, as the store keeps them.
//!
//! A user's password is kept only as an argon2id PHC string (hashed by the caller, see
//! `crate::ui::auth`); a session only as the SHA-256 (hex) of its random id, so a copy of
//! the database gives neither a password nor a usable session. Removing a user removes
//! their sessions (`ON DELETE CASCADE`).

use super::StoreError;
use serde::Serialize;

/// What a web UI user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UserRole {
    /// Reads every page and downloads the report.
    Viewer,
    /// Also acknowledges alerts and manages.
    Admin,
}

impl UserRole {
    /// `viewer` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            UserRole::Viewer => "viewer",
            UserRole::Admin => "admin",
        }
    }

    /// From `viewer` or `admin`.
    pub fn parse(s: &str) -> Option<UserRole> {
        match s {
            "viewer" => Some(UserRole::Viewer),
            "admin" => Some(UserRole::Admin),
            _ => None,
        }
    }
}

/// A web UI user, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    /// Internal id.
    pub id: i64,
    /// Login name.
    pub name: String,
    /// Role.
    pub role: UserRole,
    /// Created at, µs since the epoch.
    pub created_us: i64,
}

/// A web UI session, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    /// SHA-256 (hex) of the session id.
    pub id_hash: String,
    /// Its user.
    pub user: UserRecord,
    /// The synchronizer token every form of this session carries.
    pub csrf: String,
    /// Created (logged in) at, µs.
    pub created_us: i64,
    /// Last request at, µs (updated at most once a minute).
    pub last_us: i64,
}

/// Users and sessions.
pub trait Accounts {
    /// Adds a user with an argon2id PHC string.
    fn add_user(
        &self,
        name: &str,
        role: UserRole,
        phc: &str,
        now_us: i64,
    ) -> Result<UserRecord, StoreError>;

    /// Every user, by name.
    fn users(&self) -> Result<Vec<UserRecord>, StoreError>;

    /// A user and their PHC string.
    fn user_by_name(&self, name: &str) -> Result<Option<(UserRecord, String)>, StoreError>;

    /// Removes a user and their sessions.
    fn remove_user(&self, name: &str) -> Result<UserRecord, StoreError>;

    /// Stores a new session.
    fn create_session(
        &self,
        id_hash: &str,
        user_id: i64,
        csrf: &str,
        now_us: i64,
    ) -> Result<(), StoreError>;

    /// A session and its user.
    fn session(&self, id_hash: &str) -> Result<Option<SessionRecord>, StoreError>;

    /// Records activity on a session.
    fn touch_session(&self, id_hash: &str, now_us: i64) -> Result<(), StoreError>;

    /// Ends a session (nothing if there is none).
    fn delete_session(&self, id_hash: &str) -> Result<(), StoreError>;

    /// Deletes sessions idle since before `idle_before` or created before
    /// `created_before`; returns how many.
    fn purge_sessions(&self, idle_before: i64, created_before: i64) -> Result<u64, StoreError>;
}
