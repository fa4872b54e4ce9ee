//! Export files: spooled findings carried by hand out of an air-gapped site.
//!
//! An export file is two newline-terminated lines:
//!
//! 1. a JSON header `{"schema":"setten.export/1","agent":NAME,"hmac":"<hex>"}`;
//! 2. the [`Batch`] JSON, exactly the bytes that were signed.
//!
//! `hmac` is HMAC-SHA256 (RFC 2104) over line 2 without its newline, keyed with the 32
//! raw bytes of SHA-256 of the agent's token. The collector keeps only a hash of the
//! token, so it can check the file without the token, and nobody without it can forge
//! or alter findings on the way. One file holds one batch (at most
//! [`MAX_BATCH_FINDINGS`] findings and [`MAX_BATCH_BYTES`] of JSON, as the collector
//! accepts them); a larger spool is written as `FILE`, `FILE.2`, `FILE.3`, …
//!
//! Files are created exclusively (an existing file is never overwritten), fsynced with
//! their directory, and only then — with `clear` — are the exported findings deleted from
//! the spool.

use super::client::{encode_batch, MAX_BATCH_BYTES};
use super::spool::{Spool, SpoolError};
use super::{printable, Token};
use crate::findings::{Batch, MAX_BATCH_FINDINGS, SCHEMA};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The export file's schema name and version.
pub const EXPORT_SCHEMA: &str = "setten.export/1";
/// The longest header line read back.
pub const MAX_HEADER_BYTES: usize = 4096;

/// Line 1 of an export file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Always [`EXPORT_SCHEMA`].
    pub schema: String,
    /// The agent's name.
    pub agent: String,
    /// HMAC-SHA256 of line 2, lowercase hex.
    pub hmac: String,
}

/// An export failure.
#[derive(Debug, Error)]
pub enum ExportError {
    /// The file is already there.
    #[error("{}: already exists; choose another file (an export never overwrites)", path.display())]
    Exists {
        /// File.
        path: PathBuf,
    },
    /// Writing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The spool failed.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// Encoding a batch failed.
    #[error("encoding findings for {}: {source}", path.display())]
    Encode {
        /// File.
        path: PathBuf,
        /// Cause.
        source: serde_json::Error,
    },
    /// A file read back is not a valid export.
    #[error("{origin}: {what}")]
    Invalid {
        /// File (or other origin).
        origin: String,
        /// What is wrong.
        what: String,
    },
}

/// The HMAC key of an agent: SHA-256 of its whole token.
pub fn key(token: &Token) -> [u8; 32] {
    Sha256::digest(token.expose().as_bytes()).into()
}

fn mac(key: &[u8; 32]) -> Hmac<Sha256> {
    // HMAC takes keys of any length (RFC 2104 §2); a 32-byte key cannot be refused.
    match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts a 32-byte key"),
    }
}

/// HMAC-SHA256 of `data` under `key`.
pub fn sign(key: &[u8; 32], data: &[u8]) -> [u8; 32] {
    let mut m = mac(key);
    m.update(data);
    m.finalize().into_bytes().into()
}

/// An export file's bytes for one encoded batch.
pub fn render(
    agent: &str,
    key: &[u8; 32],
    batch_json: &[u8],
) -> Result<Vec<u8>, serde_json::Error> {
    let header = Header {
        schema: EXPORT_SCHEMA.into(),
        agent: agent.into(),
        hmac: hex::encode(sign(key, batch_json)),
    };
    let mut out = serde_json::to_vec(&header)?;
    out.push(b'\n');
    out.extend_from_slice(batch_json);
    out.push(b'\n');
    Ok(out)
}

/// Reads an export file's bytes back: checks the shape, the HMAC under `key` (in constant
/// time) and that the batch is the header's agent's; returns the header and the batch.
/// `origin` names the file in errors.
pub fn verify(bytes: &[u8], key: &[u8; 32], origin: &str) -> Result<(Header, Batch), ExportError> {
    let bad = |what: String| ExportError::Invalid {
        origin: origin.to_owned(),
        what,
    };
    let nl = bytes
        .iter()
        .take(MAX_HEADER_BYTES + 1)
        .position(|b| *b == b'\n')
        .ok_or_else(|| bad("line 1 (the header) is missing or too long".into()))?;
    let header: Header = serde_json::from_slice(&bytes[..nl])
        .map_err(|e| bad(format!("line 1 (the header): {e}")))?;
    if header.schema != EXPORT_SCHEMA {
        return Err(bad(format!(
            "line 1: schema {:?}, expected {EXPORT_SCHEMA:?}",
            printable(&header.schema, 60)
        )));
    }
    let rest = &bytes[nl + 1..];
    let line2 = rest
        .strip_suffix(b"\n")
        .ok_or_else(|| bad("line 2 (the batch) is missing or not newline-terminated".into()))?;
    if line2.contains(&b'\n') {
        return Err(bad("more than two lines".into()));
    }
    let mut tag = [0u8; 32];
    hex::decode_to_slice(&header.hmac, &mut tag)
        .map_err(|_| bad("line 1: hmac is not 64 hex digits".into()))?;
    let mut m = mac(key);
    m.update(line2);
    m.verify_slice(&tag).map_err(|_| {
        bad("the HMAC does not match: the file was altered, or it is not signed with this agent's token".into())
    })?;
    let batch: Batch =
        serde_json::from_slice(line2).map_err(|e| bad(format!("line 2 (the batch): {e}")))?;
    if batch.schema != SCHEMA {
        return Err(bad(format!(
            "line 2: schema {:?}, expected {SCHEMA:?}",
            printable(&batch.schema, 60)
        )));
    }
    if batch.agent != header.agent {
        return Err(bad(format!(
            "line 2 is for agent {:?} but the header says {:?}",
            printable(&batch.agent, 130),
            printable(&header.agent, 130)
        )));
    }
    Ok((header, batch))
}

/// What an export wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exported {
    /// Files written, in order.
    pub files: Vec<PathBuf>,
    /// Findings in them.
    pub findings: u64,
    /// Sequence numbers exported, first and last.
    pub seqs: Option<(u64, u64)>,
    /// Findings deleted from the spool afterwards (with `clear`).
    pub cleared: u64,
}

/// The name of part `n` (from 1): `FILE`, then `FILE.2`, `FILE.3`, …
pub fn part_path(path: &Path, n: usize) -> PathBuf {
    if n <= 1 {
        return path.to_owned();
    }
    let mut s = OsString::from(path.as_os_str());
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Writes everything in `spool` to export files starting at `path`; with `clear`,
/// deletes the exported findings from the spool once every file is on disk. Nothing is
/// written when the spool is empty. On failure, the files already written by this call
/// are removed and the spool is untouched.
pub fn export(
    spool: &mut Spool,
    token: &Token,
    path: &Path,
    clear: bool,
) -> Result<Exported, ExportError> {
    spool.claim(token.agent())?;
    if path.symlink_metadata().is_ok() {
        return Err(ExportError::Exists {
            path: path.to_owned(),
        });
    }
    let key = key(token);
    let mut out = Exported::default();
    let result = write_parts(spool, token.agent(), &key, path, &mut out);
    if let Err(e) = result {
        for f in &out.files {
            let _ = std::fs::remove_file(f);
        }
        return Err(e);
    }
    if let (true, Some((_, last))) = (clear, out.seqs) {
        out.cleared = spool.ack_through(last)?;
    }
    Ok(out)
}

fn write_parts(
    spool: &mut Spool,
    agent: &str,
    key: &[u8; 32],
    path: &Path,
    out: &mut Exported,
) -> Result<(), ExportError> {
    let mut after = 0u64;
    loop {
        let findings = spool.peek_after(after, MAX_BATCH_FINDINGS, MAX_BATCH_BYTES)?;
        if findings.is_empty() {
            break;
        }
        let part = part_path(path, out.files.len() + 1);
        let encode = |source| ExportError::Encode {
            path: part.clone(),
            source,
        };
        let (json, n) = encode_batch(agent, &findings).map_err(encode)?;
        let bytes = render(agent, key, &json).map_err(encode)?;
        write_new(&part, &bytes)?;
        out.files.push(part);
        out.findings += n as u64;
        let (first, last) = (findings[0].seq, findings[n - 1].seq);
        out.seqs = Some((out.seqs.map_or(first, |s| s.0), last));
        after = last;
    }
    if let Some(first) = out.files.first() {
        sync_dir(first)?;
    }
    Ok(())
}

/// Creates `path` (never replacing a file), writes `bytes` and fsyncs it.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    let io = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            ExportError::Exists {
                path: path.to_owned(),
            }
        } else {
            ExportError::Io {
                path: path.to_owned(),
                source,
            }
        }
    };
    let mut f = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?
    };
    let written = f.write_all(bytes).and_then(|_| f.sync_all());
    if let Err(e) = written {
        drop(f);
        let _ = std::fs::remove_file(path);
        return Err(io(e));
    }
    Ok(())
}

/// Makes a new file's directory entry durable.
fn sync_dir(file: &Path) -> Result<(), ExportError> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| ExportError::Io {
            path: dir.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::Body;
    use crate::ship::spool::DEFAULT_MAX_BYTES;

    fn token() -> Token {
        Token::parse("usb-site.s3cret", "test").unwrap()
    }

    fn mac_body(i: u8) -> Body {
        Body::HostMac {
            ip: std::net::IpAddr::from([10, 1, 0, i]),
            mac: [2, 0, 0, 0, 0, i],
        }
    }

    #[test]
    fn an_export_verifies_and_any_change_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(&dir.path().join("s.db"), DEFAULT_MAX_BYTES).unwrap();
        s.push_at(&[mac_body(1), mac_body(2)], 5).unwrap();
        let file = dir.path().join("out.setten");
        let ex = export(&mut s, &token(), &file, false).unwrap();
        assert_eq!(ex.files, vec![file.clone()]);
        assert_eq!((ex.findings, ex.seqs, ex.cleared), (2, Some((1, 2)), 0));
        let bytes = std::fs::read(&file).unwrap();
        let (h, b) = verify(&bytes, &key(&token()), "out.setten").unwrap();
        assert_eq!(h.agent, "usb-site");
        assert_eq!(b.findings.len(), 2);
        assert_eq!(s.stats().unwrap().pending, 2);

        // The HMAC is over line 2, keyed with SHA-256 of the token.
        let text = String::from_utf8(bytes.clone()).unwrap();
        let line2 = text.lines().nth(1).unwrap();
        let k: [u8; 32] = Sha256::digest(b"usb-site.s3cret").into();
        assert_eq!(h.hmac, hex::encode(sign(&k, line2.as_bytes())));

        let tampered = text.replace("10.1.0.2", "10.1.0.3");
        let e = verify(tampered.as_bytes(), &k, "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("HMAC"), "{e}");
        let other = key(&Token::parse("usb-site.other", "t").unwrap());
        assert!(verify(&bytes, &other, "x").is_err());
        for broken in [&b""[..], b"{}\n", &bytes[..bytes.len() - 1], b"\n\n\n"] {
            assert!(verify(broken, &k, "x").is_err());
        }

        // Never overwrites; --clear empties the spool only after writing.
        let e = export(&mut s, &token(), &file, true).unwrap_err();
        assert!(matches!(e, ExportError::Exists { .. }), "{e}");
        assert_eq!(s.stats().unwrap().pending, 2);
        let file2 = dir.path().join("out2.setten");
        let ex = export(&mut s, &token(), &file2, true).unwrap();
        assert_eq!(ex.cleared, 2);
        assert_eq!(s.stats().unwrap().pending, 0);
        // An empty spool writes nothing.
        let ex = export(&mut s, &token(), &dir.path().join("none"), true).unwrap();
        assert!(ex.files.is_empty());
        assert!(!dir.path().join("none").exists());
    }

    #[test]
    fn a_large_spool_is_split_into_numbered_parts() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(&dir.path().join("s.db"), DEFAULT_MAX_BYTES).unwrap();
        let bodies: Vec<Body> = (0..MAX_BATCH_FINDINGS + 3)
            .map(|i| mac_body((i % 250) as u8))
            .collect();
        s.push_at(&bodies, 1).unwrap();
        let file = dir.path().join("big");
        let ex = export(&mut s, &token(), &file, false).unwrap();
        assert_eq!(ex.files, vec![file.clone(), dir.path().join("big.2")]);
        let k = key(&token());
        let (_, a) = verify(&std::fs::read(&ex.files[0]).unwrap(), &k, "1").unwrap();
        let (_, b) = verify(&std::fs::read(&ex.files[1]).unwrap(), &k, "2").unwrap();
        assert_eq!(a.findings.len(), MAX_BATCH_FINDINGS);
        assert_eq!(b.findings.len(), 3);
        assert_eq!(b.findings[0].seq, MAX_BATCH_FINDINGS as u64 + 1);
    }

    #[test]
    fn a_part_in_the_way_undoes_the_export() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(&dir.path().join("s.db"), DEFAULT_MAX_BYTES).unwrap();
        let bodies: Vec<Body> = (0..MAX_BATCH_FINDINGS + 1).map(|_| mac_body(1)).collect();
        s.push_at(&bodies, 1).unwrap();
        let file = dir.path().join("f");
        std::fs::write(dir.path().join("f.2"), "mine").unwrap();
        let e = export(&mut s, &token(), &file, true).unwrap_err();
        assert!(e.to_string().contains("f.2"), "{e}");
        assert!(!file.exists());
        assert_eq!(std::fs::read(dir.path().join("f.2")).unwrap(), b"mine");
        assert_eq!(s.stats().unwrap().pending, MAX_BATCH_FINDINGS as u64 + 1);
    }
}
