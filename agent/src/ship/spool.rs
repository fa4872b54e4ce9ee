//! The spool: findings waiting for the collector, in one SQLite file.
//!
//! Every write is one `BEGIN IMMEDIATE` transaction in WAL mode with
//! `synchronous=FULL`, so a finding reported as pushed survives a crash or power loss,
//! and several processes (an `analyze --ship` and a `ship` after an outage) can share a
//! spool. Sequence numbers come from a persisted counter: they increase by one per
//! finding and are never handed out twice, whatever was acknowledged, evicted or
//! quarantined before, so (agent, `seq`) identifies a finding for ever.
//!
//! The spool's size is the sum of the findings' JSON plus [`ROW_OVERHEAD`] per finding.
//! Beyond the cap, the oldest findings are evicted; the count is persisted, logged, and
//! a [`Body::Health`] finding with the total (`spool_evicted`) and the evicted `seq`
//! range is spooled right after, so the collector learns what it will never receive.
//!
//! A spool is bound to the first agent that claims it ([`Spool::claim`]): sequence
//! numbers are per agent, and findings of one agent must never be sent under another
//! agent's name.

use crate::findings::{Body, Finding};
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

/// Default size cap: 256 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;
/// Bytes counted per finding on top of its JSON (sequence number, time, SQLite record
/// and b-tree cell overhead).
pub const ROW_OVERHEAD: u64 = 32;
/// Room kept free by an eviction for the health finding that reports it.
const HEALTH_RESERVE: u64 = 512;
/// The schema this code writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 1;
/// How long to wait for another process holding the spool's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Reasons kept for a quarantined finding, in characters.
const MAX_REASON: usize = 300;

/// A spool failure. Each names the spool file.
#[derive(Debug, Error)]
pub enum SpoolError {
    /// SQLite refused (not a database, disk full, locked too long, …).
    #[error("spool {}: {source}", path.display())]
    Sqlite {
        /// Spool file.
        path: PathBuf,
        /// Cause.
        source: rusqlite::Error,
    },
    /// The directory or file could not be created.
    #[error("spool {}: {source}", path.display())]
    Io {
        /// Spool file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Written by a newer version of the agent.
    #[error("spool {}: schema version {found} was written by a newer setten-agent (this one reads {SCHEMA_VERSION})", path.display())]
    Newer {
        /// Spool file.
        path: PathBuf,
        /// Version found.
        found: i64,
    },
    /// The spool belongs to another agent.
    #[error("spool {} holds findings of agent {have:?}, but the token is for agent {want:?}: use another --spool for this agent", path.display())]
    OtherAgent {
        /// Spool file.
        path: PathBuf,
        /// The agent it belongs to.
        have: String,
        /// The agent of the token.
        want: String,
    },
    /// The file holds values this code never writes.
    #[error("spool {}: {what}", path.display())]
    Corrupt {
        /// Spool file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A finding could not be encoded.
    #[error("spool {}: encoding a finding: {source}", path.display())]
    Encode {
        /// Spool file.
        path: PathBuf,
        /// Cause.
        source: serde_json::Error,
    },
    /// Neither `--spool` nor a home directory to put it in.
    #[error("no place for the spool: give --spool FILE (neither XDG_STATE_HOME nor HOME is set)")]
    NoDefaultPath,
}

/// What a push did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pushed {
    /// Findings pushed (not counting a health finding added for an eviction).
    pub count: usize,
    /// Sequence numbers given to them, first and last.
    pub seqs: Option<(u64, u64)>,
    /// Findings evicted by this push to stay under the cap.
    pub evicted: u64,
    /// The health finding that reports the eviction.
    pub health_seq: Option<u64>,
}

/// The state of a spool.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Findings waiting.
    pub pending: u64,
    /// Their size as counted against the cap.
    pub bytes: u64,
    /// Findings ever evicted to stay under the cap.
    pub evicted: u64,
    /// Findings set aside because they could not be read back.
    pub quarantined: u64,
    /// The oldest waiting finding: its `seq` and when it was spooled (µs).
    pub oldest: Option<(u64, u64)>,
    /// The newest waiting finding's `seq`.
    pub newest: Option<u64>,
    /// The next `seq` to be handed out.
    pub next_seq: u64,
    /// The agent the spool belongs to.
    pub agent: Option<String>,
}

/// The spool file.
pub struct Spool {
    conn: Connection,
    path: PathBuf,
    max_bytes: u64,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("path", &self.path)
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

/// The default spool file: `/var/lib/setten/spool.db` for root, else
/// `$XDG_STATE_HOME/setten/spool.db` or `~/.local/state/setten/spool.db`.
pub fn default_path() -> Result<PathBuf, SpoolError> {
    if running_as_root() {
        return Ok(PathBuf::from("/var/lib/setten/spool.db"));
    }
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = match state {
        Some(p) => p,
        None => match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            Some(h) => PathBuf::from(h).join(".local/state"),
            None => return Err(SpoolError::NoDefaultPath),
        },
    };
    Ok(base.join("setten/spool.db"))
}

/// Whether the process runs as root: `/proc/self` belongs to the process's user.
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn to_u64(v: i64, path: &Path, what: &str) -> Result<u64, SpoolError> {
    u64::try_from(v).map_err(|_| SpoolError::Corrupt {
        path: path.to_owned(),
        what: format!("{what} is negative ({v})"),
    })
}

fn to_i64(v: u64, path: &Path, what: &str) -> Result<i64, SpoolError> {
    i64::try_from(v).map_err(|_| SpoolError::Corrupt {
        path: path.to_owned(),
        what: format!("{what} is out of range ({v})"),
    })
}

/// The persisted counters.
struct State {
    next_seq: u64,
    bytes: u64,
    evicted: u64,
}

impl Spool {
    /// Opens (creating it, mode 0600, in a directory created with mode 0700 when needed)
    /// the spool at `path`, with a cap of `max_bytes` for the pushes of this process.
    pub fn open(path: &Path, max_bytes: u64) -> Result<Spool, SpoolError> {
        let io = |source| SpoolError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io)?;
        }
        {
            // Findings describe the hospital's network: readable by the agent's user
            // only. SQLite gives its -wal and -shm files the database file's mode.
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(io)?;
        }
        let sql = |source| SpoolError::Sqlite {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(sql)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sql)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(sql)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(SpoolError::Corrupt {
                path: path.to_owned(),
                what: format!("SQLite refused WAL mode (journal_mode is {mode})"),
            });
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sql)?;
        let mut spool = Spool {
            conn,
            path: path.to_owned(),
            max_bytes,
        };
        spool.migrate()?;
        Ok(spool)
    }

    /// The spool file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cap this process applies.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> SpoolError + '_ {
        move |source| SpoolError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn migrate(&mut self) -> Result<(), SpoolError> {
        let path = self.path.clone();
        let sql = |source| SpoolError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql)?;
        if version > SCHEMA_VERSION {
            return Err(SpoolError::Newer {
                path: path.clone(),
                found: version,
            });
        }
        if version < 1 {
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS state (
                     id INTEGER PRIMARY KEY CHECK (id = 1),
                     next_seq INTEGER NOT NULL,
                     bytes INTEGER NOT NULL,
                     evicted INTEGER NOT NULL,
                     agent TEXT
                 );
                 INSERT OR IGNORE INTO state (id, next_seq, bytes, evicted, agent)
                     VALUES (1, 1, 0, 0, NULL);
                 CREATE TABLE IF NOT EXISTS findings (
                     seq INTEGER PRIMARY KEY,
                     at_us INTEGER NOT NULL,
                     body BLOB NOT NULL
                 );
                 CREATE TABLE IF NOT EXISTS quarantine (
                     seq INTEGER PRIMARY KEY,
                     at_us INTEGER,
                     body BLOB,
                     reason TEXT NOT NULL
                 );
                 PRAGMA user_version = 1;",
            )
            .map_err(sql)?;
        }
        // A counter behind the stored findings would hand out a used seq: refuse.
        let state = read_state(&tx, &path)?;
        let max: Option<i64> = tx
            .query_row(
                "SELECT max(seq) FROM (SELECT seq FROM findings UNION ALL SELECT seq FROM quarantine)",
                [],
                |r| r.get(0),
            )
            .map_err(sql)?;
        if let Some(max) = max {
            if to_u64(max, &path, "a sequence number")? >= state.next_seq {
                return Err(SpoolError::Corrupt {
                    path: path.clone(),
                    what: format!(
                        "the sequence counter ({}) is not above the stored findings ({max})",
                        state.next_seq
                    ),
                });
            }
        }
        tx.commit().map_err(sql)
    }

    /// Binds the spool to `agent`, or checks that it already belongs to it.
    pub fn claim(&mut self, agent: &str) -> Result<(), SpoolError> {
        let path = self.path.clone();
        let sql = |source| SpoolError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        let have: Option<String> = tx
            .query_row("SELECT agent FROM state WHERE id = 1", [], |r| r.get(0))
            .map_err(sql)?;
        match have {
            Some(h) if h == agent => Ok(()),
            Some(h) => Err(SpoolError::OtherAgent {
                path: path.clone(),
                have: h,
                want: agent.to_owned(),
            }),
            None => {
                tx.execute("UPDATE state SET agent = ?1 WHERE id = 1", [agent])
                    .map_err(sql)?;
                tx.commit().map_err(sql)
            }
        }
    }

    /// Spools `bodies`, stamped now, in one transaction.
    pub fn push(&mut self, bodies: &[Body]) -> Result<Pushed, SpoolError> {
        self.push_at(bodies, super::now_us())
    }

    /// Spools `bodies` stamped `at_us`, in one transaction: either all are stored (and
    /// durable when this returns) or none. Evicts the oldest findings beyond the cap.
    pub fn push_at(&mut self, bodies: &[Body], at_us: u64) -> Result<Pushed, SpoolError> {
        let path = self.path.clone();
        let sql = |source| SpoolError::Sqlite {
            path: path.clone(),
            source,
        };
        let encode = |source| SpoolError::Encode {
            path: path.clone(),
            source,
        };
        let encoded = bodies
            .iter()
            .map(serde_json::to_vec)
            .collect::<Result<Vec<_>, _>>()
            .map_err(encode)?;
        let at = to_i64(at_us, &path, "the time")?;
        let max_bytes = self.max_bytes;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        let mut st = read_state(&tx, &path)?;
        let mut out = Pushed {
            count: encoded.len(),
            ..Pushed::default()
        };
        {
            let mut ins = tx
                .prepare_cached("INSERT INTO findings (seq, at_us, body) VALUES (?1, ?2, ?3)")
                .map_err(sql)?;
            for body in &encoded {
                let seq = st.next_seq;
                ins.execute(params![
                    to_i64(seq, &path, "the sequence counter")?,
                    at,
                    body
                ])
                .map_err(sql)?;
                out.seqs = Some((out.seqs.map_or(seq, |s| s.0), seq));
                st.next_seq = seq.checked_add(1).ok_or_else(|| SpoolError::Corrupt {
                    path: path.clone(),
                    what: "the sequence counter is exhausted".into(),
                })?;
                st.bytes = st.bytes.saturating_add(body.len() as u64 + ROW_OVERHEAD);
            }
        }
        let mut range: Option<(u64, u64)> = None;
        if st.bytes > max_bytes {
            let target = max_bytes.saturating_sub(HEALTH_RESERVE);
            {
                let mut stmt = tx
                    .prepare("SELECT seq, length(body) FROM findings ORDER BY seq")
                    .map_err(sql)?;
                let mut rows = stmt.query([]).map_err(sql)?;
                while st.bytes > target {
                    let Some(row) = rows.next().map_err(sql)? else {
                        break;
                    };
                    let seq = to_u64(row.get(0).map_err(sql)?, &path, "a sequence number")?;
                    let len = row.get::<_, Option<i64>>(1).map_err(sql)?.unwrap_or(0);
                    let len = u64::try_from(len).unwrap_or(0);
                    st.bytes = st.bytes.saturating_sub(len + ROW_OVERHEAD);
                    out.evicted += 1;
                    range = Some((range.map_or(seq, |r| r.0), seq));
                }
            }
            if let Some((_, through)) = range {
                tx.execute(
                    "DELETE FROM findings WHERE seq <= ?1",
                    [to_i64(through, &path, "a sequence number")?],
                )
                .map_err(sql)?;
                st.evicted = st.evicted.saturating_add(out.evicted);
                let health = health_body(st.evicted, out.evicted, range, max_bytes);
                let body = serde_json::to_vec(&health).map_err(encode)?;
                let seq = st.next_seq;
                tx.execute(
                    "INSERT INTO findings (seq, at_us, body) VALUES (?1, ?2, ?3)",
                    params![to_i64(seq, &path, "the sequence counter")?, at, body],
                )
                .map_err(sql)?;
                st.next_seq += 1;
                st.bytes = st.bytes.saturating_add(body.len() as u64 + ROW_OVERHEAD);
                out.health_seq = Some(seq);
            }
        }
        write_state(&tx, &path, &st)?;
        tx.commit().map_err(sql)?;
        if let Some((first, last)) = range {
            tracing::warn!(
                "spool {} is over its cap of {} bytes: evicted the {} oldest findings (seq {first} to {last}), {} evicted in all; the collector is told in a health finding",
                path.display(),
                max_bytes,
                out.evicted,
                st.evicted
            );
        }
        Ok(out)
    }

    /// Up to `max` waiting findings, oldest first.
    pub fn peek(&mut self, max: usize) -> Result<Vec<Finding>, SpoolError> {
        self.peek_after(0, max, usize::MAX)
    }

    /// Up to `max` waiting findings with `seq` above `after`, oldest first, stopping
    /// before the stored JSON would pass `max_bytes` (but always at least one). A
    /// finding that cannot be read back is moved to the quarantine table with the
    /// reason and a warning, so it neither blocks shipping nor disappears.
    pub fn peek_after(
        &mut self,
        after: u64,
        max: usize,
        max_bytes: usize,
    ) -> Result<Vec<Finding>, SpoolError> {
        let path = self.path.clone();
        let sql = |source| SpoolError::Sqlite {
            path: path.clone(),
            source,
        };
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        loop {
            let mut out = Vec::new();
            let mut bad: Vec<(i64, String)> = Vec::new();
            {
                let mut stmt = self
                    .conn
                    .prepare_cached(
                        "SELECT seq, at_us, body FROM findings WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                    )
                    .map_err(sql)?;
                let mut rows = stmt.query(params![after, limit]).map_err(sql)?;
                let mut size = 0usize;
                while let Some(row) = rows.next().map_err(sql)? {
                    let seq: i64 = row.get(0).map_err(sql)?;
                    let read = (|| {
                        let s = u64::try_from(seq)
                            .ok()
                            .filter(|s| *s > 0)
                            .ok_or("the sequence number is not positive")?;
                        let at_us = match row.get_ref(1) {
                            Ok(ValueRef::Integer(t)) => {
                                u64::try_from(t).map_err(|_| "the time is negative")?
                            }
                            _ => return Err("the time is not an integer".to_owned()),
                        };
                        let bytes = match row.get_ref(2) {
                            Ok(ValueRef::Blob(b)) | Ok(ValueRef::Text(b)) => b,
                            _ => return Err("the body is neither text nor a blob".to_owned()),
                        };
                        let body: Body = serde_json::from_slice(bytes)
                            .map_err(|e| format!("the body is not a finding: {e}"))?;
                        Ok((s, at_us, body, bytes.len()))
                    })();
                    match read {
                        Ok((seq, at_us, body, len)) => {
                            if !out.is_empty() && size.saturating_add(len) > max_bytes {
                                break;
                            }
                            size = size.saturating_add(len);
                            out.push(Finding { seq, at_us, body });
                        }
                        Err(reason) => bad.push((seq, reason)),
                    }
                }
            }
            if bad.is_empty() {
                return Ok(out);
            }
            self.quarantine(&bad)?;
        }
    }

    fn quarantine(&mut self, bad: &[(i64, String)]) -> Result<(), SpoolError> {
        let path = self.path.clone();
        let sql = |source| SpoolError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        let mut st = read_state(&tx, &path)?;
        for (seq, reason) in bad {
            let reason = super::printable(reason, MAX_REASON);
            let len: Option<i64> = tx
                .query_row(
                    "SELECT length(body) FROM findings WHERE seq = ?1",
                    [seq],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql)?
                .flatten();
            tx.execute(
                "INSERT OR REPLACE INTO quarantine (seq, at_us, body, reason)
                 SELECT seq, at_us, body, ?2 FROM findings WHERE seq = ?1",
                params![seq, reason],
            )
            .map_err(sql)?;
            tx.execute("DELETE FROM findings WHERE seq = ?1", [seq])
                .map_err(sql)?;
            let len = u64::try_from(len.unwrap_or(0)).unwrap_or(0);
            st.bytes = st.bytes.saturating_sub(len + ROW_OVERHEAD);
            tracing::warn!(
                "spool {}: finding {seq} cannot be read back ({reason}); set aside in the quarantine table",
                path.display()
            );
        }
        write_state(&tx, &path, &st)?;
        tx.commit().map_err(sql)
    }

    /// Deletes every waiting finding with `seq` up to `seq` (the collector has them).
    /// Returns how many were deleted.
    pub fn ack_through(&mut self, seq: u64) -> Result<u64, SpoolError> {
        let path = self.path.clone();
        let sql = |source| SpoolError::Sqlite {
            path: path.clone(),
            source,
        };
        let through = i64::try_from(seq).unwrap_or(i64::MAX);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        let mut st = read_state(&tx, &path)?;
        let (count, len): (i64, i64) = tx
            .query_row(
                "SELECT count(*), coalesce(sum(length(body)), 0) FROM findings WHERE seq <= ?1",
                [through],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(sql)?;
        let count = u64::try_from(count).unwrap_or(0);
        let len = u64::try_from(len).unwrap_or(0);
        tx.execute("DELETE FROM findings WHERE seq <= ?1", [through])
            .map_err(sql)?;
        st.bytes = st
            .bytes
            .saturating_sub(len.saturating_add(count.saturating_mul(ROW_OVERHEAD)));
        write_state(&tx, &path, &st)?;
        tx.commit().map_err(sql)?;
        Ok(count)
    }

    /// Counters and the oldest waiting finding.
    pub fn stats(&self) -> Result<Stats, SpoolError> {
        let path = &self.path;
        let sql = self.sql();
        let (next_seq, bytes, evicted, agent): (i64, i64, i64, Option<String>) = self
            .conn
            .query_row(
                "SELECT next_seq, bytes, evicted, agent FROM state WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .map_err(&sql)?;
        let (pending, newest): (i64, Option<i64>) = self
            .conn
            .query_row("SELECT count(*), max(seq) FROM findings", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(&sql)?;
        let oldest: Option<(i64, i64)> = self
            .conn
            .query_row(
                "SELECT seq, at_us FROM findings ORDER BY seq LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(&sql)?;
        let quarantined: i64 = self
            .conn
            .query_row("SELECT count(*) FROM quarantine", [], |r| r.get(0))
            .map_err(&sql)?;
        Ok(Stats {
            pending: to_u64(pending, path, "the count")?,
            bytes: to_u64(bytes, path, "the byte counter")?,
            evicted: to_u64(evicted, path, "the eviction counter")?,
            quarantined: to_u64(quarantined, path, "the quarantine count")?,
            oldest: match oldest {
                Some((s, t)) => Some((
                    to_u64(s, path, "a sequence number")?,
                    to_u64(t, path, "a time")?,
                )),
                None => None,
            },
            newest: match newest {
                Some(s) => Some(to_u64(s, path, "a sequence number")?),
                None => None,
            },
            next_seq: to_u64(next_seq, path, "the sequence counter")?,
            agent,
        })
    }
}

fn read_state(tx: &Transaction<'_>, path: &Path) -> Result<State, SpoolError> {
    let (n, b, e): (i64, i64, i64) = tx
        .query_row(
            "SELECT next_seq, bytes, evicted FROM state WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(|source| SpoolError::Sqlite {
            path: path.to_owned(),
            source,
        })?
        .ok_or_else(|| SpoolError::Corrupt {
            path: path.to_owned(),
            what: "the state row is missing".into(),
        })?;
    let next_seq = to_u64(n, path, "the sequence counter")?;
    if next_seq == 0 {
        return Err(SpoolError::Corrupt {
            path: path.to_owned(),
            what: "the sequence counter is 0".into(),
        });
    }
    Ok(State {
        next_seq,
        bytes: to_u64(b, path, "the byte counter")?,
        evicted: to_u64(e, path, "the eviction counter")?,
    })
}

fn write_state(tx: &Transaction<'_>, path: &Path, st: &State) -> Result<(), SpoolError> {
    tx.execute(
        "UPDATE state SET next_seq = ?1, bytes = ?2, evicted = ?3 WHERE id = 1",
        params![
            to_i64(st.next_seq, path, "the sequence counter")?,
            to_i64(st.bytes, path, "the byte counter")?,
            to_i64(st.evicted, path, "the eviction counter")?,
        ],
    )
    .map_err(|source| SpoolError::Sqlite {
        path: path.to_owned(),
        source,
    })?;
    Ok(())
}

/// The health finding that reports an eviction. `spool_evicted` is the running total,
/// so the newest health finding tells everything even if an older one was evicted in
/// turn.
fn health_body(total: u64, now: u64, range: Option<(u64, u64)>, max_bytes: u64) -> Body {
    let mut m = Map::new();
    m.insert("spool_evicted".into(), Value::from(total));
    m.insert("spool_evicted_now".into(), Value::from(now));
    if let Some((first, last)) = range {
        m.insert("spool_evicted_first_seq".into(), Value::from(first));
        m.insert("spool_evicted_last_seq".into(), Value::from(last));
    }
    m.insert("spool_max_bytes".into(), Value::from(max_bytes));
    Body::Health(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(i: u8) -> Body {
        Body::HostMac {
            ip: std::net::IpAddr::from([10, 0, 0, i]),
            mac: [0, 1, 2, 3, 4, i],
        }
    }

    fn seqs(f: &[Finding]) -> Vec<u64> {
        f.iter().map(|f| f.seq).collect()
    }

    #[test]
    fn seqs_are_never_reused_across_acks_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/spool.db");
        {
            let mut s = Spool::open(&path, DEFAULT_MAX_BYTES).unwrap();
            let p = s.push_at(&[mac(1), mac(2), mac(3)], 7).unwrap();
            assert_eq!(p.seqs, Some((1, 3)));
            assert_eq!(s.ack_through(3).unwrap(), 3);
            assert_eq!(s.stats().unwrap().pending, 0);
            assert_eq!(s.stats().unwrap().bytes, 0);
        }
        let mut s = Spool::open(&path, DEFAULT_MAX_BYTES).unwrap();
        let p = s.push_at(&[mac(4)], 8).unwrap();
        assert_eq!(p.seqs, Some((4, 4)));
        let got = s.peek(10).unwrap();
        assert_eq!(seqs(&got), vec![4]);
        assert_eq!(got[0].at_us, 8);
        assert_eq!(got[0].body, mac(4));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }

    #[test]
    fn peek_is_oldest_first_and_ack_removes_only_what_was_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(&dir.path().join("s.db"), DEFAULT_MAX_BYTES).unwrap();
        s.push_at(&(1..=5).map(mac).collect::<Vec<_>>(), 1).unwrap();
        assert_eq!(seqs(&s.peek(2).unwrap()), vec![1, 2]);
        assert_eq!(
            seqs(&s.peek_after(2, 10, usize::MAX).unwrap()),
            vec![3, 4, 5]
        );
        // A byte limit stops early but always returns one.
        assert_eq!(seqs(&s.peek_after(0, 10, 1).unwrap()), vec![1]);
        assert_eq!(s.ack_through(2).unwrap(), 2);
        assert_eq!(seqs(&s.peek(10).unwrap()), vec![3, 4, 5]);
        let st = s.stats().unwrap();
        assert_eq!(
            (st.pending, st.oldest, st.newest),
            (3, Some((3, 1)), Some(5))
        );
        let one = serde_json::to_vec(&mac(3)).unwrap().len() as u64 + ROW_OVERHEAD;
        assert_eq!(st.bytes, 3 * one);
    }

    #[test]
    fn the_cap_evicts_oldest_first_counts_it_and_reports_it_in_a_health_finding() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let one = serde_json::to_vec(&mac(101)).unwrap().len() as u64 + ROW_OVERHEAD;
        let cap = 20 * one;
        let mut s = Spool::open(&path, cap).unwrap();
        s.push_at(&(101..=120).map(mac).collect::<Vec<_>>(), 1)
            .unwrap();
        assert_eq!(s.stats().unwrap().evicted, 0);
        let p = s
            .push_at(&(121..=125).map(mac).collect::<Vec<_>>(), 2)
            .unwrap();
        // Five over the cap, and room for the health finding (all bodies have one size).
        assert!((5..20).contains(&p.evicted), "{p:?}");
        assert_eq!(p.seqs, Some((21, 25)));
        assert_eq!(p.health_seq, Some(26));
        let st = s.stats().unwrap();
        assert_eq!(st.evicted, p.evicted);
        assert!(st.bytes <= cap, "{} > {cap}", st.bytes);
        let got = s.peek(100).unwrap();
        // The oldest went, the newest stayed, in order, and the health finding says so.
        assert_eq!(got[0].seq, p.evicted + 1);
        assert_eq!(got.last().unwrap().seq, 26);
        assert!(got.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
        let Body::Health(h) = &got.last().unwrap().body else {
            panic!("{:?}", got.last());
        };
        assert_eq!(h["spool_evicted"], p.evicted);
        assert_eq!(h["spool_evicted_first_seq"], 1);
        assert_eq!(h["spool_evicted_last_seq"], p.evicted);
        drop(s);
        // The counter is persisted and keeps adding up.
        let mut s = Spool::open(&path, cap).unwrap();
        assert_eq!(s.stats().unwrap().evicted, p.evicted);
        let q = s
            .push_at(&(126..=145).map(mac).collect::<Vec<_>>(), 3)
            .unwrap();
        assert!(q.evicted > 0, "{q:?}");
        let got = s.peek(100).unwrap();
        let Body::Health(h) = &got.last().unwrap().body else {
            panic!("{:?}", got.last());
        };
        assert_eq!(h["spool_evicted"], p.evicted + q.evicted);
        assert_eq!(s.stats().unwrap().evicted, p.evicted + q.evicted);
    }

    #[test]
    fn a_spool_belongs_to_one_agent() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(&dir.path().join("s.db"), DEFAULT_MAX_BYTES).unwrap();
        s.claim("mirror-1").unwrap();
        s.claim("mirror-1").unwrap();
        let e = s.claim("backup-2").unwrap_err().to_string();
        assert!(e.contains("mirror-1") && e.contains("backup-2"), "{e}");
        assert_eq!(s.stats().unwrap().agent.as_deref(), Some("mirror-1"));
    }

    #[test]
    fn unreadable_findings_are_quarantined_not_shipped_and_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let mut s = Spool::open(&path, DEFAULT_MAX_BYTES).unwrap();
        s.push_at(&[mac(1), mac(2), mac(3)], 1).unwrap();
        {
            let c = Connection::open(&path).unwrap();
            c.execute("UPDATE findings SET body = x'7b00ff' WHERE seq = 2", [])
                .unwrap();
            c.execute("UPDATE findings SET at_us = -5 WHERE seq = 3", [])
                .unwrap();
        }
        assert_eq!(seqs(&s.peek(10).unwrap()), vec![1]);
        let st = s.stats().unwrap();
        assert_eq!((st.pending, st.quarantined), (1, 2));
        // Quarantined seqs are not handed out again either.
        drop(s);
        let mut s = Spool::open(&path, DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(s.push_at(&[mac(4)], 1).unwrap().seqs, Some((4, 4)));
    }

    #[test]
    fn hostile_files_give_errors_that_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("not-a-db");
        std::fs::write(
            &path,
            b"this is not SQLite, just text that is long enough....",
        )
        .unwrap();
        let e = Spool::open(&path, DEFAULT_MAX_BYTES)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not-a-db"), "{e}");

        let path = dir.path().join("newer.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch("PRAGMA user_version = 9").unwrap();
        }
        let e = Spool::open(&path, DEFAULT_MAX_BYTES)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("newer.db") && e.contains("newer setten-agent"),
            "{e}"
        );

        let path = dir.path().join("rewound.db");
        {
            let mut s = Spool::open(&path, DEFAULT_MAX_BYTES).unwrap();
            s.push_at(&[mac(1), mac(2)], 1).unwrap();
            let c = Connection::open(&path).unwrap();
            c.execute("UPDATE state SET next_seq = 2", []).unwrap();
        }
        let e = Spool::open(&path, DEFAULT_MAX_BYTES)
            .unwrap_err()
            .to_string();
        assert!(e.contains("sequence counter"), "{e}");
    }
}
