//! The SQLite store: `<data>/setten.db`.
//!
//! WAL with `synchronous=FULL`, so a commit is on disk before [`Store::ingest`] returns
//! and the API answers 2xx (SQLite §"PRAGMA synchronous": in WAL mode NORMAL may lose
//! the last transactions on power loss; FULL does not). One writer connection behind a
//! mutex (SQLite has one writer at a time anyway) and a few reader connections, which WAL
//! lets read while the writer writes.
//!
//! Group commit: a commit costs an fsync (about 4 ms on the reference machine), so one
//! commit per batch caps the whole collector near 250 batches/s and makes 50 agents
//! queue behind each other's fsyncs. Batches that arrive while a commit is under way
//! wait in a queue; the next thread to get the writer takes them all and stores them in
//! one transaction, each batch inside its own savepoint, so every batch is still stored
//! all or nothing, and is on disk before any of their callers return. Checkpoints run on
//! a background thread ([`CHECKPOINT_EVERY`]), not inside a caller's commit.
//!
//! The schema is versioned by `PRAGMA user_version` and migrated at open, in one
//! transaction, from the list in [`MIGRATIONS`]; a database newer than this build is
//! refused rather than guessed at.

use super::{
    AgentRecord, Cursor, IngestBatch, Ingested, Replay, Replayed, Store, StoreError, StoredLedger,
    DB_FILE,
};
use crate::token::{AgentName, Role, TokenHash};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

mod accounts;

/// How long a statement waits for another process's lock (e.g. `agent add` while
/// `serve` ingests) before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Reader connections kept.
pub const READERS: usize = 4;
/// Batches stored in one group commit at most.
pub const MAX_GROUP_BATCHES: usize = 64;
/// Findings stored in one group commit at most (a single larger batch still goes alone).
pub const MAX_GROUP_FINDINGS: usize = 50_000;
/// How often the background thread checkpoints the WAL into the database.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// WAL pages after which a commit checkpoints by itself: a safety net for when the
/// background checkpoints cannot keep up (SQLite's default is 1000).
const AUTOCHECKPOINT_PAGES: i64 = 16_384;
/// Size the WAL file is truncated back to after a checkpoint resets it.
const JOURNAL_SIZE_LIMIT: i64 = 64 << 20;

/// Schema migrations: entry `i` takes the database from version `i` to `i + 1`.
/// Never edit an entry once released; append a new one.
pub const MIGRATIONS: &[&str] = &[
    // 1: agents and findings.
    "CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) STRICT;
    CREATE TABLE agents (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL CHECK (role IN ('agent', 'reader')),
        token_hash TEXT NOT NULL UNIQUE,
        created_us INTEGER NOT NULL,
        revoked_us INTEGER,
        last_seen_us INTEGER,
        last_seq INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE TABLE findings (
        id INTEGER PRIMARY KEY,
        agent_id INTEGER NOT NULL REFERENCES agents (id),
        seq INTEGER NOT NULL CHECK (seq >= 1),
        kind TEXT NOT NULL,
        at_us INTEGER NOT NULL,
        received_us INTEGER NOT NULL,
        body TEXT NOT NULL,
        UNIQUE (agent_id, seq)
    ) STRICT;",
    // 2: agent health, a findings counter per agent, the hospital's ledger.
    "ALTER TABLE agents ADD COLUMN health TEXT;
    ALTER TABLE agents ADD COLUMN health_at_us INTEGER;
    ALTER TABLE agents ADD COLUMN findings INTEGER NOT NULL DEFAULT 0;
    UPDATE agents SET findings = (SELECT count(*) FROM findings f WHERE f.agent_id = agents.id);
    CREATE TABLE ledger (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        bytes BLOB NOT NULL,
        imported_us INTEGER NOT NULL
    ) STRICT;",
    // 3: the alert outbox. Alerts start from the findings stored after this migration:
    // an upgraded collector does not alert on its whole history.
    "CREATE TABLE alert_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        cursor INTEGER NOT NULL
    ) STRICT;
    INSERT INTO alert_state (id, cursor) SELECT 1, coalesce(max(id), 0) FROM findings;
    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL,
        rule TEXT NOT NULL,
        severity TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
        subject TEXT NOT NULL,
        raised_us INTEGER NOT NULL,
        last_trigger_us INTEGER NOT NULL,
        repeats INTEGER NOT NULL DEFAULT 0,
        repeats_before INTEGER NOT NULL DEFAULT 0,
        window_s INTEGER,
        content TEXT NOT NULL,
        acked_us INTEGER,
        acked_by TEXT,
        ack_note TEXT,
        escalated_us INTEGER
    ) STRICT;
    CREATE INDEX alerts_by_key ON alerts (key, id);
    CREATE INDEX alerts_to_escalate ON alerts (severity, escalated_us, acked_us, raised_us);
    CREATE TABLE alert_deliveries (
        id INTEGER PRIMARY KEY,
        alert_id INTEGER NOT NULL REFERENCES alerts (id),
        channel TEXT NOT NULL,
        escalation INTEGER NOT NULL CHECK (escalation IN (0, 1)),
        state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed', 'cancelled')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_us INTEGER NOT NULL,
        last_error TEXT,
        delivered_us INTEGER,
        UNIQUE (alert_id, channel, escalation)
    ) STRICT;
    CREATE INDEX alert_deliveries_due ON alert_deliveries (channel, state, next_us);",
    // 4: web UI accounts (argon2id PHC strings) and their sessions (SHA-256 of the id).
    "CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL CHECK (role IN ('viewer', 'admin')),
        password TEXT NOT NULL,
        created_us INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE ui_sessions (
        id_hash TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        created_us INTEGER NOT NULL,
        last_us INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX ui_sessions_user ON ui_sessions (user_id);",
];

/// The schema version this build writes.
pub fn schema_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// A batch waiting for a group commit, and where its outcome goes.
struct Job {
    batch: IngestBatch,
    outcome: Arc<OnceLock<Result<Ingested, StoreError>>>,
}

/// The SQLite store.
pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    /// Batches waiting for the writer. Each caller waits for its own, so this holds at
    /// most one batch per blocked caller.
    queue: Mutex<Vec<Job>>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    _checkpointer: Checkpointer,
}

/// Checkpoints the WAL every [`CHECKPOINT_EVERY`] until dropped.
struct Checkpointer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    fn start(conn: Connection) -> Result<Checkpointer, std::io::Error> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("setten-checkpoint".into())
            .spawn(move || {
                let (lock, cv) = &*flag;
                let mut stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
                while !*stopped {
                    let (g, _) = cv
                        .wait_timeout(stopped, CHECKPOINT_EVERY)
                        .unwrap_or_else(|e| e.into_inner());
                    stopped = g;
                    if *stopped {
                        break;
                    }
                    // PASSIVE: copies what it can without waiting for readers or the writer.
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::debug!("checkpoint: {e}");
                    }
                }
            })?;
        Ok(Checkpointer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (lock, cv) = &*self.stop;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding the lock rolled its transaction back as it unwound (rusqlite's
    // Transaction drops with a rollback), so the connection is usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

const AGENT_COLUMNS: &str = "id, name, role, created_us, revoked_us, last_seen_us, last_seq, \
                             findings, health, health_at_us";

fn agent_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AgentRecord> {
    let role: String = r.get(2)?;
    let health: Option<String> = r.get(8)?;
    Ok(AgentRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        // The CHECK constraint admits only these two.
        role: Role::parse(&role).unwrap_or(Role::Reader),
        created_us: r.get(3)?,
        revoked_us: r.get(4)?,
        last_seen_us: r.get(5)?,
        last_seq: u64::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
        findings: u64::try_from(r.get::<_, i64>(7)?).unwrap_or(0),
        health: health.and_then(|h| serde_json::from_str(&h).ok()),
        health_at_us: r.get(9)?,
    })
}

fn open_conn(path: &Path) -> Result<Connection, StoreError> {
    let open_err = |e: rusqlite::Error| StoreError::Open {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(open_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(open_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Open {
            path: path.to_owned(),
            message: format!("cannot switch to WAL journaling (got `{mode}`); is the directory on a network filesystem?"),
        });
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(open_err)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(open_err)?;
    Ok(conn)
}

/// Brings a database to [`schema_version`] in one transaction.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = schema_version();
    if found > known {
        return Err(StoreError::TooNew {
            path: path.to_owned(),
            found,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        tx.execute_batch(sql).map_err(|e| StoreError::Open {
            path: path.to_owned(),
            message: format!("migration to schema version {}: {e}", i + 1),
        })?;
    }
    if found < known {
        tx.pragma_update(None, "user_version", known)?;
        tx.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('created_us', ?1)",
            params![crate::now_us().to_string()],
        )?;
    }
    tx.commit()?;
    Ok(())
}

fn create_data_dir(dir: &Path) -> Result<(), StoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        // Token hashes and evidence live here: owner only.
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(|e| StoreError::Open {
        path: dir.to_owned(),
        message: format!("cannot create the data directory: {e}"),
    })
}

impl SqliteStore {
    /// Opens `<data_dir>/setten.db`, creating the directory and database if needed, and
    /// migrates it.
    pub fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        create_data_dir(data_dir)?;
        let path = data_dir.join(DB_FILE);
        let mut writer = open_conn(&path)?;
        migrate(&mut writer, &path)?;
        writer.pragma_update(None, "wal_autocheckpoint", AUTOCHECKPOINT_PAGES)?;
        writer.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)?;
        let checkpointer =
            Checkpointer::start(open_conn(&path)?).map_err(|e| StoreError::Open {
                path: path.clone(),
                message: format!("cannot start the checkpoint thread: {e}"),
            })?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let c = open_conn(&path)?;
            c.pragma_update(None, "query_only", "ON")?;
            readers.push(Mutex::new(c));
        }
        Ok(SqliteStore {
            path,
            writer: Mutex::new(writer),
            queue: Mutex::new(Vec::new()),
            readers,
            next_reader: AtomicUsize::new(0),
            _checkpointer: checkpointer,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn reader(&self) -> MutexGuard<'_, Connection> {
        let n = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        // Prefer an idle reader; otherwise wait for the round-robin one.
        for i in 0..self.readers.len() {
            if let Some(Ok(g)) = self
                .readers
                .get((n + i) % self.readers.len())
                .map(|m| m.try_lock())
            {
                return g;
            }
        }
        lock(&self.readers[n])
    }

    pub(crate) fn writer(&self) -> MutexGuard<'_, Connection> {
        lock(&self.writer)
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Stores a group of batches in one transaction, each in its own savepoint, and gives
/// each job its outcome once the commit is durable (or failed).
fn commit_group(conn: &mut Connection, group: Vec<Job>) {
    let mut outcomes: Vec<Result<Ingested, StoreError>> = Vec::with_capacity(group.len());
    let committed = (|| -> Result<(), StoreError> {
        let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for job in &group {
            let sp = tx.savepoint()?;
            match ingest_one(&sp, &job.batch) {
                Ok(done) => {
                    sp.commit()?;
                    outcomes.push(Ok(done));
                }
                // Dropping the savepoint rolls this batch back; the others stay.
                Err(e) => outcomes.push(Err(e)),
            }
        }
        tx.commit()?;
        Ok(())
    })();
    if let Err(e) = committed {
        // Nothing of the group was committed.
        outcomes = group.iter().map(|_| Err(e.clone())).collect();
    }
    for (job, outcome) in group.iter().zip(outcomes) {
        let _ = job.outcome.set(outcome);
    }
}

/// One batch, inside the group's transaction.
fn ingest_one(tx: &rusqlite::Connection, b: &IngestBatch) -> Result<Ingested, StoreError> {
    // Checked inside the transaction: a revocation committed before it stores nothing.
    let name: Option<(String, Option<i64>)> = tx
        .query_row(
            "SELECT name, revoked_us FROM agents WHERE id = ?1",
            params![b.agent_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let agent_name = match name {
        None => return Err(StoreError::NoAgent(format!("#{}", b.agent_id))),
        Some((name, Some(_))) => return Err(StoreError::Revoked(name)),
        Some((name, None)) => name,
    };
    let cursor_before: Cursor =
        tx.query_row("SELECT coalesce(max(id), 0) FROM findings", [], |r| {
            r.get(0)
        })?;
    let mut out = Ingested {
        cursor_before,
        ..Ingested::default()
    };
    let mut max_seq = 0i64;
    {
        let mut ins = tx.prepare_cached(
            "INSERT OR IGNORE INTO findings (agent_id, seq, kind, at_us, received_us, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for (i, f) in b.findings.iter().enumerate() {
            max_seq = max_seq.max(f.seq);
            let n = ins.execute(params![
                b.agent_id,
                f.seq,
                f.kind,
                f.at_us,
                b.received_us,
                f.body
            ])?;
            if n == 1 {
                out.stored += 1;
                out.new.push((i, tx.last_insert_rowid()));
            } else {
                // A resent finding is the same finding; another one under a number
                // already used means a second spool shares this agent's token, and
                // taking it for a duplicate would lose it.
                let held: String = tx
                    .prepare_cached("SELECT body FROM findings WHERE agent_id = ?1 AND seq = ?2")?
                    .query_row(params![b.agent_id, f.seq], |r| r.get(0))?;
                if held != f.body {
                    return Err(StoreError::SeqReused {
                        agent: agent_name,
                        seq: f.seq,
                    });
                }
                out.duplicates += 1;
            }
        }
    }
    tx.execute(
        "UPDATE agents SET last_seq = max(last_seq, ?2), last_seen_us = ?3,
             findings = findings + ?4 WHERE id = ?1",
        params![b.agent_id, max_seq, b.received_us, to_i64(out.stored)],
    )?;
    if let Some((at_us, health)) = &b.health {
        tx.execute(
            "UPDATE agents SET health = ?2, health_at_us = ?3
             WHERE id = ?1 AND (health_at_us IS NULL OR health_at_us <= ?3)",
            params![b.agent_id, health, at_us],
        )?;
    }
    let last_seq: i64 = tx.query_row(
        "SELECT last_seq FROM agents WHERE id = ?1",
        params![b.agent_id],
        |r| r.get(0),
    )?;
    out.last_seq = u64::try_from(last_seq).unwrap_or(0);
    Ok(out)
}

impl Store for SqliteStore {
    fn ping(&self) -> Result<(), StoreError> {
        let c = self.reader();
        c.query_row("SELECT count(*) FROM agents", [], |r| r.get::<_, i64>(0))?;
        Ok(())
    }

    fn add_agent(
        &self,
        name: &AgentName,
        role: Role,
        token: &TokenHash,
        now_us: i64,
    ) -> Result<AgentRecord, StoreError> {
        let mut c = self.writer();
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists: bool = tx
            .query_row(
                "SELECT 1 FROM agents WHERE name = ?1",
                params![name.as_str()],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if exists {
            return Err(StoreError::AgentExists(name.to_string()));
        }
        tx.execute(
            "INSERT INTO agents (name, role, token_hash, created_us) VALUES (?1, ?2, ?3, ?4)",
            params![name.as_str(), role.as_str(), token.to_hex(), now_us],
        )?;
        let rec = tx.query_row(
            &format!("SELECT {AGENT_COLUMNS} FROM agents WHERE name = ?1"),
            params![name.as_str()],
            agent_row,
        )?;
        tx.commit()?;
        Ok(rec)
    }

    fn revoke_agent(&self, name: &str, now_us: i64) -> Result<AgentRecord, StoreError> {
        let mut c = self.writer();
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE agents SET revoked_us = coalesce(revoked_us, ?2) WHERE name = ?1",
            params![name, now_us],
        )?;
        if n == 0 {
            return Err(StoreError::NoAgent(name.to_owned()));
        }
        let rec = tx.query_row(
            &format!("SELECT {AGENT_COLUMNS} FROM agents WHERE name = ?1"),
            params![name],
            agent_row,
        )?;
        tx.commit()?;
        Ok(rec)
    }

    fn agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        let c = self.reader();
        let mut st =
            c.prepare_cached(&format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY name"))?;
        let rows = st.query_map([], agent_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn agent_by_token(&self, token: &TokenHash) -> Result<Option<AgentRecord>, StoreError> {
        let c = self.reader();
        let mut st = c.prepare_cached(&format!(
            "SELECT {AGENT_COLUMNS} FROM agents WHERE token_hash = ?1"
        ))?;
        Ok(st
            .query_row(params![token.to_hex()], agent_row)
            .optional()?)
    }

    fn agent_by_name(&self, name: &str) -> Result<Option<(AgentRecord, TokenHash)>, StoreError> {
        let c = self.reader();
        let mut st = c.prepare_cached(&format!(
            "SELECT {AGENT_COLUMNS}, token_hash FROM agents WHERE name = ?1"
        ))?;
        let row = st
            .query_row(params![name], |r| {
                Ok((agent_row(r)?, r.get::<_, String>(10)?))
            })
            .optional()?;
        match row {
            None => Ok(None),
            Some((rec, hash)) => match TokenHash::from_hex(&hash) {
                Some(h) => Ok(Some((rec, h))),
                None => Err(StoreError::Backend(format!(
                    "agent `{name}`: stored token hash is not 64 hex digits"
                ))),
            },
        }
    }

    fn ingest(&self, batch: IngestBatch) -> Result<Ingested, StoreError> {
        let outcome = Arc::new(OnceLock::new());
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Job {
                batch,
                outcome: outcome.clone(),
            });
        // Whoever holds the writer stores every queued batch; when this thread gets it,
        // its batch may be done already.
        let mut conn = self.writer();
        loop {
            if let Some(r) = outcome.get() {
                return r.clone();
            }
            let group = {
                let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                if !q.iter().any(|j| Arc::ptr_eq(&j.outcome, &outcome)) {
                    // Taken by a commit that panicked before answering.
                    return Err(StoreError::Backend(
                        "the batch was lost by a failed commit; nothing of it was stored".into(),
                    ));
                }
                let mut n = 0;
                let mut findings = 0;
                for j in q.iter() {
                    if n > 0
                        && (n >= MAX_GROUP_BATCHES
                            || findings + j.batch.findings.len() > MAX_GROUP_FINDINGS)
                    {
                        break;
                    }
                    n += 1;
                    findings += j.batch.findings.len();
                }
                q.drain(..n).collect::<Vec<Job>>()
            };
            commit_group(&mut conn, group);
        }
    }

    fn heartbeat(
        &self,
        agent_id: i64,
        at_us: i64,
        health: &str,
        now_us: i64,
    ) -> Result<(), StoreError> {
        let c = self.writer();
        let n = c.execute(
            "UPDATE agents SET last_seen_us = ?2,
                 health = CASE WHEN health_at_us IS NULL OR health_at_us <= ?3 THEN ?4 ELSE health END,
                 health_at_us = max(coalesce(health_at_us, ?3), ?3)
             WHERE id = ?1 AND revoked_us IS NULL",
            params![agent_id, now_us, at_us, health],
        )?;
        if n == 0 {
            return Err(StoreError::Revoked(format!("#{agent_id}")));
        }
        Ok(())
    }

    fn replay(
        &self,
        which: Replay,
        kinds: &[&str],
        visit: &mut dyn FnMut(Replayed<'_>),
    ) -> Result<Cursor, StoreError> {
        let c = self.reader();
        // One read transaction: the rows and the cursor come from the same snapshot.
        let tx = c.unchecked_transaction()?;
        let max: Cursor = tx.query_row("SELECT coalesce(max(id), 0) FROM findings", [], |r| {
            r.get(0)
        })?;
        let kinds_json = serde_json::to_string(kinds).unwrap_or_else(|_| "[]".into());
        let (sql, after) = match which {
            Replay::All => (
                "SELECT f.id, a.name, f.seq, f.kind, f.body FROM findings f
                 JOIN agents a ON a.id = f.agent_id
                 WHERE f.id <= ?1 AND f.kind IN (SELECT value FROM json_each(?2))
                 ORDER BY a.name, f.seq",
                0,
            ),
            Replay::After(c) => (
                "SELECT f.id, a.name, f.seq, f.kind, f.body FROM findings f
                 JOIN agents a ON a.id = f.agent_id
                 WHERE f.id <= ?1 AND f.kind IN (SELECT value FROM json_each(?2)) AND f.id > ?3
                 ORDER BY f.id",
                c,
            ),
        };
        {
            let mut st = tx.prepare(sql)?;
            let mut rows = match which {
                Replay::All => st.query(params![max, kinds_json])?,
                Replay::After(_) => st.query(params![max, kinds_json, after])?,
            };
            while let Some(r) = rows.next()? {
                let agent: String = r.get(1)?;
                let kind: String = r.get(3)?;
                let body: String = r.get(4)?;
                visit(Replayed {
                    cursor: r.get(0)?,
                    agent: &agent,
                    seq: r.get(2)?,
                    kind: &kind,
                    body: &body,
                });
            }
        }
        tx.finish()?;
        Ok(max)
    }

    fn latest_cursor(&self) -> Result<Cursor, StoreError> {
        let c = self.reader();
        Ok(
            c.query_row("SELECT coalesce(max(id), 0) FROM findings", [], |r| {
                r.get(0)
            })?,
        )
    }

    fn findings_count(&self) -> Result<u64, StoreError> {
        let c = self.reader();
        let n: i64 = c.query_row("SELECT count(*) FROM findings", [], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn put_ledger(&self, source: &str, bytes: &[u8], now_us: i64) -> Result<i64, StoreError> {
        let c = self.writer();
        c.execute(
            "INSERT INTO ledger (source, bytes, imported_us) VALUES (?1, ?2, ?3)",
            params![source, bytes, now_us],
        )?;
        Ok(c.last_insert_rowid())
    }

    fn latest_ledger_id(&self) -> Result<Option<i64>, StoreError> {
        let c = self.reader();
        Ok(c.query_row("SELECT max(id) FROM ledger", [], |r| r.get(0))?)
    }

    fn alert_cursor(&self) -> Result<Cursor, StoreError> {
        super::alerts::alert_cursor(self)
    }

    fn raise_alerts(
        &self,
        triggers: &[super::NewTrigger],
        cursor: Option<Cursor>,
        now_us: i64,
    ) -> Result<Vec<super::Raised>, StoreError> {
        super::alerts::raise_alerts(self, triggers, cursor, now_us)
    }

    fn alerts(
        &self,
        filter: &crate::alerts::AlertFilter,
    ) -> Result<Vec<crate::alerts::Alert>, StoreError> {
        super::alerts::alerts(self, filter)
    }

    fn alert(&self, id: i64) -> Result<Option<crate::alerts::Alert>, StoreError> {
        super::alerts::alert(self, id)
    }

    fn ack_alert(
        &self,
        id: i64,
        by: &str,
        note: Option<&str>,
        now_us: i64,
    ) -> Result<Option<crate::alerts::Alert>, StoreError> {
        super::alerts::ack_alert(self, id, by, note, now_us)
    }

    fn due_deliveries(
        &self,
        channel: &str,
        now_us: i64,
        limit: usize,
    ) -> Result<Vec<super::DueDelivery>, StoreError> {
        super::alerts::due_deliveries(self, channel, now_us, limit)
    }

    fn next_delivery_us(&self, channel: &str) -> Result<Option<i64>, StoreError> {
        super::alerts::next_delivery_us(self, channel)
    }

    fn delivery_done(&self, id: i64, now_us: i64) -> Result<(), StoreError> {
        super::alerts::delivery_done(self, id, now_us)
    }

    fn delivery_failed(
        &self,
        id: i64,
        error: &str,
        next_us: Option<i64>,
    ) -> Result<(), StoreError> {
        super::alerts::delivery_failed(self, id, error, next_us)
    }

    fn delivery_postpone(&self, id: i64, next_us: i64) -> Result<(), StoreError> {
        super::alerts::delivery_postpone(self, id, next_us)
    }

    fn escalate_alerts(
        &self,
        raised_before_us: i64,
        channels: &[String],
        now_us: i64,
    ) -> Result<Vec<i64>, StoreError> {
        super::alerts::escalate_alerts(self, raised_before_us, channels, now_us)
    }

    fn fail_orphan_deliveries(&self, channels: &[String]) -> Result<u64, StoreError> {
        super::alerts::fail_orphan_deliveries(self, channels)
    }

    fn latest_ledger(&self) -> Result<Option<StoredLedger>, StoreError> {
        let c = self.reader();
        Ok(c.query_row(
            "SELECT id, source, bytes, imported_us FROM ledger ORDER BY id DESC LIMIT 1",
            [],
            |r| {
                Ok(StoredLedger {
                    id: r.get(0)?,
                    source: r.get(1)?,
                    bytes: r.get(2)?,
                    imported_us: r.get(3)?,
                })
            },
        )
        .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewFinding;

    fn name(s: &str) -> AgentName {
        AgentName::parse(s).unwrap()
    }

    fn finding(seq: i64) -> NewFinding {
        NewFinding {
            seq,
            at_us: 1,
            kind: "health",
            body: r#"{"kind":"health","data":{}}"#.into(),
        }
    }

    #[test]
    fn a_version_1_database_migrates_and_keeps_its_rows() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(DB_FILE);
        {
            // A database as the first release left it.
            let c = Connection::open(&path).unwrap();
            c.execute_batch(MIGRATIONS[0]).unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
            c.execute(
                "INSERT INTO agents (name, role, token_hash, created_us, last_seq)
                 VALUES ('m1', 'agent', ?1, 5, 2)",
                params!["ab".repeat(32)],
            )
            .unwrap();
            for seq in 1..=2 {
                c.execute(
                    "INSERT INTO findings (agent_id, seq, kind, at_us, received_us, body)
                     VALUES (1, ?1, 'health', 1, 1, '{}')",
                    params![seq],
                )
                .unwrap();
            }
        }
        let s = SqliteStore::open(d.path()).unwrap();
        let v: i64 = s
            .reader()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, schema_version());
        let agents = s.agents().unwrap();
        assert_eq!(agents.len(), 1);
        assert_eq!(agents[0].name, "m1");
        assert_eq!(agents[0].last_seq, 2);
        // The counter added in version 2 is filled from the rows already there.
        assert_eq!(agents[0].findings, 2);
        assert_eq!(s.latest_ledger_id().unwrap(), None);
        assert_eq!(s.findings_count().unwrap(), 2);
        drop(s);
        // Opening again is a no-op.
        let s = SqliteStore::open(d.path()).unwrap();
        assert_eq!(s.findings_count().unwrap(), 2);
    }

    #[test]
    fn a_newer_database_is_refused() {
        let d = tempfile::tempdir().unwrap();
        {
            let c = Connection::open(d.path().join(DB_FILE)).unwrap();
            c.pragma_update(None, "user_version", 99).unwrap();
        }
        let e = SqliteStore::open(d.path()).unwrap_err().to_string();
        assert!(e.contains("schema version 99"), "{e}");
    }

    #[test]
    fn wal_and_full_sync_are_on() {
        let d = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(d.path()).unwrap();
        let c = s.writer();
        let mode: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        let sync: i64 = c.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "FULL");
    }

    #[test]
    fn a_sequence_number_reused_for_another_finding_is_refused_not_dropped() {
        let d = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(d.path()).unwrap();
        let a = s
            .add_agent(&name("m1"), Role::Agent, &TokenHash::of("t"), 1)
            .unwrap();
        let batch = |findings| IngestBatch {
            agent_id: a.id,
            findings,
            health: None,
            received_us: 10,
        };
        s.ingest(batch(vec![finding(1), finding(2)])).unwrap();
        // A second spool under the same token: numbers 2 and 3, and 2 is another finding.
        let mut other = finding(2);
        other.body = r#"{"kind":"backup","data":{"event":"verify","medium":"x"}}"#.into();
        other.kind = "backup";
        let e = s.ingest(batch(vec![finding(3), other])).unwrap_err();
        assert!(
            matches!(&e, StoreError::SeqReused { agent, seq: 2 } if agent == "m1"),
            "{e}"
        );
        assert!(e.to_string().contains("two spools"), "{e}");
        // Nothing of the refused batch was stored, not even number 3.
        assert_eq!(s.findings_count().unwrap(), 2);
        // The same findings again are still plain duplicates.
        let again = s.ingest(batch(vec![finding(1), finding(2)])).unwrap();
        assert_eq!((again.stored, again.duplicates), (0, 2));
    }

    #[test]
    fn ingest_is_idempotent_and_refused_after_revocation() {
        let d = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(d.path()).unwrap();
        let a = s
            .add_agent(&name("m1"), Role::Agent, &TokenHash::of("t"), 1)
            .unwrap();
        let b = IngestBatch {
            agent_id: a.id,
            findings: vec![finding(1), finding(2)],
            health: None,
            received_us: 10,
        };
        let first = s.ingest(b.clone()).unwrap();
        assert_eq!((first.stored, first.duplicates, first.last_seq), (2, 0, 2));
        assert_eq!(first.cursor_before, 0);
        let again = s.ingest(b).unwrap();
        assert_eq!((again.stored, again.duplicates, again.last_seq), (0, 2, 2));
        assert_eq!(again.cursor_before, 2);
        assert!(matches!(
            s.add_agent(&name("m1"), Role::Agent, &TokenHash::of("u"), 1),
            Err(StoreError::AgentExists(_))
        ));
        s.revoke_agent("m1", 20).unwrap();
        let e = s
            .ingest(IngestBatch {
                agent_id: a.id,
                findings: vec![finding(3)],
                health: None,
                received_us: 30,
            })
            .unwrap_err();
        assert!(matches!(e, StoreError::Revoked(_)));
        assert_eq!(s.findings_count().unwrap(), 2);
        let rec = s.agents().unwrap().remove(0);
        assert_eq!(rec.revoked_us, Some(20));
        assert_eq!(rec.findings, 2);
    }

    #[test]
    fn concurrent_batches_share_commits_and_each_stays_whole() {
        let d = tempfile::tempdir().unwrap();
        let s = Arc::new(SqliteStore::open(d.path()).unwrap());
        let ids: Vec<i64> = (0..4)
            .map(|i| {
                s.add_agent(
                    &name(&format!("a{i}")),
                    Role::Agent,
                    &TokenHash::of(&i.to_string()),
                    1,
                )
                .unwrap()
                .id
            })
            .collect();
        let gone = s
            .add_agent(&name("gone"), Role::Agent, &TokenHash::of("gone"), 1)
            .unwrap()
            .id;
        s.revoke_agent("gone", 2).unwrap();
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let s = s.clone();
                let agent = if t == 15 { gone } else { ids[t % 4] };
                std::thread::spawn(move || {
                    let mut outcomes = Vec::new();
                    for k in 0..10i64 {
                        // Threads of one agent overlap in sequence numbers: duplicates.
                        let first = (t as i64 / 4) * 5 + k * 100 + 1;
                        let findings = (first..first + 7).map(finding).collect();
                        outcomes.push(s.ingest(IngestBatch {
                            agent_id: agent,
                            findings,
                            health: None,
                            received_us: 1,
                        }));
                    }
                    outcomes
                })
            })
            .collect();
        let mut stored = 0;
        let mut refused = 0;
        for t in threads {
            for o in t.join().unwrap() {
                match o {
                    Ok(done) => {
                        assert_eq!(done.stored + done.duplicates, 7);
                        // A batch's rows are contiguous right after its cursor.
                        for (k, (i, c)) in done.new.iter().enumerate() {
                            assert_eq!(*c, done.cursor_before + k as i64 + 1, "{i}");
                        }
                        stored += done.stored;
                    }
                    Err(StoreError::Revoked(n)) => {
                        assert_eq!(n, "gone");
                        refused += 1;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }
        assert_eq!(refused, 10);
        assert_eq!(s.findings_count().unwrap(), stored);
        // Per round, batches of 7 at offsets 0, 5, 10, 15 give three agents 22 distinct
        // sequence numbers; the fourth lost its offset-15 thread to `gone`: 17.
        assert_eq!(stored, 10 * (3 * 22 + 17));
        let per_agent: u64 = s.agents().unwrap().iter().map(|a| a.findings).sum();
        assert_eq!(per_agent, stored);
    }

    #[test]
    fn replay_orders_by_agent_then_seq_or_by_cursor() {
        let d = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(d.path()).unwrap();
        let b = s
            .add_agent(&name("b"), Role::Agent, &TokenHash::of("tb"), 1)
            .unwrap();
        let a = s
            .add_agent(&name("a"), Role::Agent, &TokenHash::of("ta"), 1)
            .unwrap();
        for (agent, seq) in [(b.id, 2), (a.id, 1), (b.id, 1)] {
            s.ingest(IngestBatch {
                agent_id: agent,
                findings: vec![finding(seq)],
                health: None,
                received_us: 1,
            })
            .unwrap();
        }
        let mut seen = Vec::new();
        let max = s
            .replay(Replay::All, &["health"], &mut |r| {
                seen.push((r.agent.to_owned(), r.seq))
            })
            .unwrap();
        assert_eq!(max, 3);
        assert_eq!(seen, [("a".into(), 1), ("b".into(), 1), ("b".into(), 2)]);
        let mut after = Vec::new();
        s.replay(Replay::After(1), &["health"], &mut |r| after.push(r.cursor))
            .unwrap();
        assert_eq!(after, [2, 3]);
        let mut none = 0;
        s.replay(Replay::All, &["session"], &mut |_| none += 1)
            .unwrap();
        assert_eq!(none, 0);
    }
}
