//! What the command line does besides serving: enrolment, the hospital's ledger, and
//! export files. Each works on the store directly, so it may run while `serve` runs
//! (SQLite locks; `serve` sees the change on its next request).

use crate::export;
use crate::ingest::{self, IngestError};
use crate::store::{AgentRecord, Ingested, Store, StoreError};
use crate::token::{self, AgentName, BadName, RandomError, Role, TokenHash};
use setten_agent::inventory::ledger::{Ledger, LedgerError, MAX_LEDGER_BYTES};
use std::io::Read;
use std::path::Path;

/// An administrative command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A bad agent name.
    #[error(transparent)]
    Name(#[from] BadName),
    /// No randomness.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The ledger cannot be used at all.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Every row of the ledger is bad.
    #[error("{file}: no row of the ledger could be read ({} rows with errors); nothing was imported", rows.len())]
    LedgerUnusable {
        /// The file.
        file: String,
        /// Each row's error, "FILE:ROW: column `c`: message".
        rows: Vec<String>,
    },
    /// An export file was refused.
    #[error("{file}: {message}")]
    Import {
        /// The file.
        file: String,
        /// Why.
        message: String,
    },
}

/// Enrols `name`; returns the token, which is not kept anywhere.
pub fn add_agent(
    store: &dyn Store,
    name: &str,
    role: Role,
) -> Result<(AgentRecord, String), AdminError> {
    let name = AgentName::parse(name)?;
    let tok = token::new_token(&name)?;
    let rec = store.add_agent(&name, role, &TokenHash::of(&tok), crate::now_us())?;
    Ok((rec, tok))
}

/// Revokes `name`.
pub fn revoke_agent(store: &dyn Store, name: &str) -> Result<AgentRecord, AdminError> {
    Ok(store.revoke_agent(name, crate::now_us())?)
}

/// The agent list as a table for a terminal.
pub fn agent_table(agents: &[AgentRecord]) -> String {
    let t = |us: Option<i64>| crate::time::render(us).unwrap_or_else(|| "-".into());
    let mut rows: Vec<[String; 7]> = vec![[
        "NAME".into(),
        "ROLE".into(),
        "CREATED".into(),
        "REVOKED".into(),
        "LAST SEEN".into(),
        "LAST SEQ".into(),
        "FINDINGS".into(),
    ]];
    for a in agents {
        rows.push([
            a.name.clone(),
            a.role.as_str().into(),
            t(Some(a.created_us)),
            t(a.revoked_us),
            t(a.last_seen_us),
            a.last_seq.to_string(),
            a.findings.to_string(),
        ]);
    }
    let mut widths = [0usize; 7];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let cells: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// A ledger stored by [`import_ledger`].
#[derive(Debug)]
pub struct LedgerImported {
    /// Its id in the store.
    pub id: i64,
    /// The parsed ledger (entries, row errors, ignored columns).
    pub ledger: Ledger,
}

fn read_capped(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
    let f = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    // One byte past the cap tells "too big" without trusting the file's length.
    f.take(cap + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Reads and stores the hospital's ledger; it is in force from the next request.
/// Rows that cannot be read are left out (they are in `ledger.errors`); a file that
/// cannot be read at all, or whose every row is bad, stores nothing.
pub fn import_ledger(store: &dyn Store, path: &Path) -> Result<LedgerImported, AdminError> {
    let file = path.display().to_string();
    let bytes = read_capped(path, MAX_LEDGER_BYTES).map_err(|source| LedgerError::Read {
        file: file.clone(),
        source,
    })?;
    let ledger = Ledger::parse(&file, &bytes)?;
    if ledger.entries.is_empty() && !ledger.errors.is_empty() {
        let rows = ledger
            .errors
            .iter()
            .map(|e| e.display(&ledger.source).to_string())
            .collect();
        return Err(AdminError::LedgerUnusable { file, rows });
    }
    let id = store.put_ledger(&file, &bytes, crate::now_us())?;
    Ok(LedgerImported { id, ledger })
}

/// What [`import_file`] stored.
#[derive(Debug)]
pub struct FileImported {
    /// The agent.
    pub agent: String,
    /// Findings in the file.
    pub findings: usize,
    /// The store's answer.
    pub ingested: Ingested,
}

/// Checks an export file's signature and stores its findings, exactly as the API would.
pub fn import_file(store: &dyn Store, path: &Path) -> Result<FileImported, AdminError> {
    let file = path.display().to_string();
    let refuse = |message: String| AdminError::Import {
        file: file.clone(),
        message,
    };
    let bytes = read_capped(path, export::MAX_EXPORT_BYTES)
        .map_err(|e| refuse(format!("cannot read: {e}")))?;
    if bytes.len() as u64 > export::MAX_EXPORT_BYTES {
        return Err(refuse(format!(
            "larger than {} bytes; is this an export file?",
            export::MAX_EXPORT_BYTES
        )));
    }
    let (header, line2) = export::split(&bytes).map_err(|e| refuse(e.0))?;
    let name = header.agent.as_str();
    let shown: String = name
        .chars()
        .take(64)
        .collect::<String>()
        .escape_debug()
        .to_string();
    let (agent, key) = store.agent_by_name(name)?.ok_or_else(|| {
        refuse(format!(
            "agent `{shown}` is not enrolled in this collector (see `setten-collector agent list`)"
        ))
    })?;
    if let Some(at) = agent.revoked_us {
        return Err(refuse(format!(
            "agent `{shown}` was revoked at {}; its files are refused",
            crate::time::render(Some(at)).unwrap_or_default()
        )));
    }
    if agent.role != Role::Agent {
        return Err(refuse(format!(
            "`{shown}` is enrolled as a reader, which does not send findings"
        )));
    }
    if !export::verify(&key.0, line2, &header.hmac) {
        return Err(refuse(format!(
            "signature does not match: the file was changed or not made by agent {shown}"
        )));
    }
    let (batch, ingested) =
        ingest::ingest(store, &agent, line2, crate::now_us()).map_err(|e| match e {
            IngestError::Store(s) => AdminError::Store(s),
            IngestError::Invalid { message, .. } => refuse(format!("line 2: {message}")),
            IngestError::WrongAgent { message } => refuse(format!("line 2: {message}")),
        })?;
    Ok(FileImported {
        agent: agent.name,
        findings: batch.findings.len(),
        ingested,
    })
}
