//! The store: everything the collector has accepted.
//!
//! [`Store`] is what the rest of the collector needs from storage, so a PostgreSQL
//! backend can follow the SQLite one ([`SqliteStore`]) for multi-hospital scale. The
//! trait is synchronous: SQLite is, and the server calls it from blocking threads
//! (`spawn_blocking`), never from the async reactor. A backend built on an async driver
//! blocks on its own runtime inside these calls.
//!
//! Promises every backend keeps:
//! - [`Store::ingest`] stores a batch atomically (all of it or none of it) and durably
//!   before it returns; a finding already held (same agent and sequence number) is kept
//!   as first stored and counted as a duplicate; a revoked agent's batch stores nothing.
//! - Every stored finding has a [`Cursor`], increasing in commit order, so a reader can
//!   ask for "everything after what I have seen" ([`Replay::After`]).

pub mod accounts;
pub mod alerts;
pub mod sqlite;

pub use accounts::{Accounts, SessionRecord, UserRecord, UserRole};
pub use alerts::{DueDelivery, NewTrigger, Raised};
pub use sqlite::SqliteStore;

use crate::token::{AgentName, Role, TokenHash};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Position of a stored finding in commit order (0: before the first).
pub type Cursor = i64;

/// The store could not do what was asked.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory or database could not be opened or created.
    #[error("{path}: cannot open the store: {message}")]
    Open {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The database was written by a newer collector.
    #[error("{path}: the store has schema version {found}; this setten-collector knows up to {known}: use a newer setten-collector")]
    TooNew {
        /// The database.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// The newest this build knows.
        known: i64,
    },
    /// A query failed.
    #[error("store: {0}")]
    Backend(String),
    /// `agent add` with a name already enrolled.
    #[error("an agent named `{0}` is already enrolled; pick another name or revoke it first (names are never reused)")]
    AgentExists(String),
    /// No agent of that name.
    #[error("no agent named `{0}` is enrolled (see `setten-collector agent list`)")]
    NoAgent(String),
    /// A batch reuses one of the agent's sequence numbers for a different finding: two
    /// spools are using the same agent's token. Nothing of the batch is stored.
    #[error("agent `{agent}` sent sequence number {seq} again with a different finding: two spools (two machines, or two --spool files) are using this agent's token; enrol one agent per spool (`setten-collector agent add NAME`). Nothing of this batch was stored; the agent keeps it in its spool")]
    SeqReused {
        /// The agent.
        agent: String,
        /// The sequence number.
        seq: i64,
    },
    /// The agent was revoked while its batch was on its way.
    #[error("agent `{0}` is revoked")]
    Revoked(String),
    /// `user add` with a name already taken.
    #[error("a user named `{0}` already exists (see `setten-collector user list`)")]
    UserExists(String),
    /// No user of that name.
    #[error("no user named `{0}` (see `setten-collector user list`)")]
    NoUser(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Backend(e.to_string())
    }
}

/// An enrolled agent or reader, as listed.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentRecord {
    /// Internal id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Enrolled at, µs since the epoch.
    pub created_us: i64,
    /// Revoked at.
    pub revoked_us: Option<i64>,
    /// Last batch or heartbeat received (collector clock).
    pub last_seen_us: Option<i64>,
    /// Highest sequence number stored.
    pub last_seq: u64,
    /// Findings stored.
    pub findings: u64,
    /// Latest health report (JSON object), if any.
    pub health: Option<serde_json::Value>,
    /// When the agent made that report (agent clock).
    pub health_at_us: Option<i64>,
}

impl AgentRecord {
    /// Whether it has been revoked.
    pub fn is_revoked(&self) -> bool {
        self.revoked_us.is_some()
    }
}

/// One finding to store, already validated.
#[derive(Clone, Debug)]
pub struct NewFinding {
    /// Sequence number (≥ 1).
    pub seq: i64,
    /// When the agent recorded it.
    pub at_us: i64,
    /// `Body::kind()`.
    pub kind: &'static str,
    /// The body, as JSON.
    pub body: String,
}

/// A validated batch of one agent.
#[derive(Clone, Debug)]
pub struct IngestBatch {
    /// The agent's id.
    pub agent_id: i64,
    /// The findings.
    pub findings: Vec<NewFinding>,
    /// The newest health report in the batch: agent time and JSON object.
    pub health: Option<(i64, String)>,
    /// Received at (collector clock).
    pub received_us: i64,
}

/// What [`Store::ingest`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ingested {
    /// Findings newly stored.
    pub stored: u64,
    /// Findings already held.
    pub duplicates: u64,
    /// The agent's highest stored sequence number afterwards.
    pub last_seq: u64,
    /// The highest cursor before this batch (inside the same transaction).
    pub cursor_before: Cursor,
    /// For each newly stored finding: its index in the batch and its cursor.
    pub new: Vec<(usize, Cursor)>,
}

/// Which findings [`Store::replay`] visits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replay {
    /// All of them, by agent name then sequence number.
    All,
    /// Those stored after a cursor, in commit order.
    After(Cursor),
}

/// One finding visited by [`Store::replay`].
#[derive(Clone, Copy, Debug)]
pub struct Replayed<'a> {
    /// Its cursor.
    pub cursor: Cursor,
    /// The agent's name.
    pub agent: &'a str,
    /// Sequence number.
    pub seq: i64,
    /// Kind.
    pub kind: &'a str,
    /// Body JSON.
    pub body: &'a str,
}

/// A stored ledger.
#[derive(Clone, Debug)]
pub struct StoredLedger {
    /// Id (increasing; the highest is the one in force).
    pub id: i64,
    /// The file it came from, as named at import.
    pub source: String,
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// Imported at.
    pub imported_us: i64,
}

/// What the collector needs from storage (web UI accounts and sessions: [`Accounts`]).
pub trait Store: Accounts + Send + Sync + 'static {
    /// Whether the store answers.
    fn ping(&self) -> Result<(), StoreError>;

    /// Enrols a name with the hash of its token.
    fn add_agent(
        &self,
        name: &AgentName,
        role: Role,
        token: &TokenHash,
        now_us: i64,
    ) -> Result<AgentRecord, StoreError>;

    /// Revokes a name (its token is refused from now on). Revoking twice keeps the first
    /// time.
    fn revoke_agent(&self, name: &str, now_us: i64) -> Result<AgentRecord, StoreError>;

    /// Every enrolled name, by name.
    fn agents(&self) -> Result<Vec<AgentRecord>, StoreError>;

    /// The holder of a token.
    fn agent_by_token(&self, token: &TokenHash) -> Result<Option<AgentRecord>, StoreError>;

    /// An agent and its token hash (the export-file key).
    fn agent_by_name(&self, name: &str) -> Result<Option<(AgentRecord, TokenHash)>, StoreError>;

    /// Stores a batch atomically and durably (see the module doc).
    fn ingest(&self, batch: IngestBatch) -> Result<Ingested, StoreError>;

    /// Records a heartbeat: last seen now, and the health report.
    fn heartbeat(
        &self,
        agent_id: i64,
        at_us: i64,
        health: &str,
        now_us: i64,
    ) -> Result<(), StoreError>;

    /// Visits stored findings of the given kinds, from one consistent snapshot, and
    /// returns the highest cursor of that snapshot (of any kind).
    fn replay(
        &self,
        which: Replay,
        kinds: &[&str],
        visit: &mut dyn FnMut(Replayed<'_>),
    ) -> Result<Cursor, StoreError>;

    /// The highest cursor stored.
    fn latest_cursor(&self) -> Result<Cursor, StoreError>;

    /// How many findings are stored.
    fn findings_count(&self) -> Result<u64, StoreError>;

    /// Stores a ledger file; it becomes the one in force. Returns its id.
    fn put_ledger(&self, source: &str, bytes: &[u8], now_us: i64) -> Result<i64, StoreError>;

    /// The id of the ledger in force.
    fn latest_ledger_id(&self) -> Result<Option<i64>, StoreError>;

    /// The ledger in force.
    fn latest_ledger(&self) -> Result<Option<StoredLedger>, StoreError>;

    // --- Alerts: the outbox (see `crate::alerts` for the discipline) ----------------

    /// The cursor up to which findings have been evaluated for alerts.
    fn alert_cursor(&self) -> Result<Cursor, StoreError>;

    /// In one transaction: for each trigger, either raises a new alert with a pending
    /// delivery per channel, or counts it as a repeat of the key's latest alert (inside
    /// its window, or for good when the trigger has no window); then moves the alert
    /// cursor to `cursor` (if given and higher). Returns what became of each trigger.
    fn raise_alerts(
        &self,
        triggers: &[NewTrigger],
        cursor: Option<Cursor>,
        now_us: i64,
    ) -> Result<Vec<Raised>, StoreError>;

    /// Alerts matching a filter, newest first, with their deliveries.
    fn alerts(
        &self,
        filter: &crate::alerts::AlertFilter,
    ) -> Result<Vec<crate::alerts::Alert>, StoreError>;

    /// One alert with its deliveries.
    fn alert(&self, id: i64) -> Result<Option<crate::alerts::Alert>, StoreError>;

    /// Acknowledges an alert (the first acknowledgement is kept); `None` if there is no
    /// such alert.
    fn ack_alert(
        &self,
        id: i64,
        by: &str,
        note: Option<&str>,
        now_us: i64,
    ) -> Result<Option<crate::alerts::Alert>, StoreError>;

    /// Pending deliveries of a channel due at `now_us`, oldest first.
    fn due_deliveries(
        &self,
        channel: &str,
        now_us: i64,
        limit: usize,
    ) -> Result<Vec<DueDelivery>, StoreError>;

    /// The earliest next attempt of a channel's pending deliveries.
    fn next_delivery_us(&self, channel: &str) -> Result<Option<i64>, StoreError>;

    /// Marks a delivery done (if still pending).
    fn delivery_done(&self, id: i64, now_us: i64) -> Result<(), StoreError>;

    /// Records a failed attempt: retry at `next_us`, or give up (`None`).
    fn delivery_failed(&self, id: i64, error: &str, next_us: Option<i64>)
        -> Result<(), StoreError>;

    /// Moves a pending delivery's next attempt without counting an attempt (quiet hours).
    fn delivery_postpone(&self, id: i64, next_us: i64) -> Result<(), StoreError>;

    /// In one transaction: critical alerts raised at or before `raised_before_us`, not
    /// acknowledged and not escalated yet, get a pending escalation delivery per channel
    /// and are marked escalated. Returns their ids.
    fn escalate_alerts(
        &self,
        raised_before_us: i64,
        channels: &[String],
        now_us: i64,
    ) -> Result<Vec<i64>, StoreError>;

    /// Gives up pending deliveries to channels no longer configured. Returns how many.
    fn fail_orphan_deliveries(&self, channels: &[String]) -> Result<u64, StoreError>;
}

/// The database file in a data directory.
pub const DB_FILE: &str = "setten.db";

/// Opens (creating and migrating if needed) the SQLite store in `data_dir`.
pub fn open_store(data_dir: &Path) -> Result<Arc<SqliteStore>, StoreError> {
    SqliteStore::open(data_dir).map(Arc::new)
}
