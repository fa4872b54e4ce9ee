//! The sealed manifest: a versioned, signed JSON file.
//!
//! ```text
//! {"format":"setten.manifest/1","key_id":"<16 hex>","hmac_sha256":"<64 hex>","body":{…}}
//! ```
//!
//! The HMAC-SHA256 covers `format ‖ 0 ‖ key_id ‖ 0 ‖ body`, where `body` is the exact
//! bytes of the `body` value as they stand in the file, so any edit — even whitespace —
//! breaks it. The signature is checked before the body is parsed: [`open`] looks only at
//! the envelope; [`Manifest::decode`] then parses the authenticated body and checks every
//! field (a manifest signed with a stolen key is still hostile input).
//!
//! The body holds the medium name, the generation number, the creation time, the chunk
//! size, the ransomware score of the source ([`Score`]), whether the generation was
//! sealed despite a suspicious score (`flagged`), totals, and one entry per file,
//! directory, symlink or special file, sorted by raw path bytes, one per line:
//!
//! ```text
//! {"path":"検査/a.pdf","type":"file","mode":"0644","mtime":1767225600,"size":12,"sha256":"…","entropy":612}
//! ```
//!
//! A path (or symlink target) that is not UTF-8 is stored as `path_hex` (`target_hex`)
//! instead. A file larger than one chunk also lists its chunk hashes (`chunks`); for one
//! chunk or less the whole-file hash is the chunk hash. `entropy` is the Shannon entropy
//! of the file's first 64 KiB in hundredths of a bit per byte (files of 4 KiB or more).

use super::key::Key;
use super::score::Score;
use super::{MediumName, MEDIUM_DIR};
use serde::{Deserialize, Serialize};
use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The format this agent writes and reads.
pub const FORMAT: &str = "setten.manifest/1";
/// Largest manifest file read.
pub const MAX_MANIFEST_BYTES: u64 = 2 << 30;
/// Most entries a manifest may hold.
pub const MAX_ENTRIES: usize = 16_000_000;
/// Longest relative path (or symlink target), in bytes (Linux `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest path component, in bytes (Linux `NAME_MAX`).
pub const MAX_NAME_BYTES: usize = 255;
/// Largest file size accepted in a manifest (1 PiB).
pub const MAX_FILE_SIZE: u64 = 1 << 50;
/// Smallest chunk size accepted in a manifest.
pub const MIN_CHUNK_SIZE: u64 = 64 << 10;
/// Largest chunk size accepted in a manifest.
pub const MAX_CHUNK_SIZE: u64 = 64 << 20;
/// Longest free text (tool, root, reason summary) accepted.
pub const MAX_TEXT: usize = 4096;
/// Largest entropy value (8 bits/byte, in hundredths).
pub const MAX_ENTROPY_CB: u16 = 800;

/// Why a manifest (or checkpoint) was not accepted. Every signature problem is its own
/// variant so a caller can tell "edited" from "another key" from "not a manifest".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// Larger than [`MAX_MANIFEST_BYTES`].
    #[error("{size} bytes, more than the {max} accepted")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The cap.
        max: u64,
    },
    /// Not JSON, or not an object with the envelope's fields.
    #[error("not a setten manifest: {detail}")]
    Syntax {
        /// The parser's message, with line and column.
        detail: String,
    },
    /// A format this agent does not read.
    #[error("format {found:?} is not supported (this agent reads {expected})")]
    Format {
        /// The format named in the file.
        found: String,
        /// The format expected.
        expected: &'static str,
    },
    /// Signed with another key than the one given.
    #[error("signed with another key (key id {manifest}; the key given has id {ours})")]
    OtherKey {
        /// Key id in the file.
        manifest: String,
        /// Id of the key given.
        ours: String,
    },
    /// The signature does not match: the file was changed after it was signed.
    #[error("signature does not match: the file was changed after it was signed")]
    Tampered,
    /// An authenticated body with a field that breaks the format's rules.
    #[error("field {field}: {detail}")]
    Field {
        /// The field, e.g. `entries[12].sha256`.
        field: String,
        /// What is wrong.
        detail: String,
    },
}

impl ManifestError {
    /// The signature failed: edited, or signed with another key.
    pub fn is_signature(&self) -> bool {
        matches!(
            self,
            ManifestError::Tampered | ManifestError::OtherKey { .. }
        )
    }
}

fn field(field: impl Into<String>, detail: impl Into<String>) -> ManifestError {
    ManifestError::Field {
        field: field.into(),
        detail: detail.into(),
    }
}

/// Raw path bytes, relative to the backup root, exactly as the filesystem gave them.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RawPath(pub Vec<u8>);

impl RawPath {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    /// As a `Path` (no conversion: Unix paths are bytes).
    pub fn as_path(&self) -> &Path {
        Path::new(OsStr::from_bytes(&self.0))
    }
    /// UTF-8 text, if it is.
    pub fn as_utf8(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
    /// Hex of the bytes.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }
}

impl fmt::Display for RawPath {
    /// Lossy text (U+FFFD for bytes that are not UTF-8), for people.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Debug for RawPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_utf8() {
            Some(s) => write!(f, "{s:?}"),
            None => write!(f, "hex:{}", self.to_hex()),
        }
    }
}

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// Regular file (the only kind whose content is read).
    File,
    /// Directory.
    Dir,
    /// Symbolic link (recorded with its target, never followed).
    Symlink,
    /// Named pipe.
    Fifo,
    /// Unix socket.
    Socket,
    /// Character device.
    CharDevice,
    /// Block device.
    BlockDevice,
}

impl EntryKind {
    /// The name used in manifests and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
            EntryKind::Symlink => "symlink",
            EntryKind::Fifo => "fifo",
            EntryKind::Socket => "socket",
            EntryKind::CharDevice => "char_device",
            EntryKind::BlockDevice => "block_device",
        }
    }
}

/// One entry of the sealed tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the root.
    pub path: RawPath,
    /// What it is.
    pub kind: EntryKind,
    /// Permission bits (including setuid, setgid, sticky).
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Nanoseconds part of the modification time.
    pub mtime_ns: u32,
    /// Size in bytes (files only; 0 otherwise).
    pub size: u64,
    /// Whole-file SHA-256 (files only).
    pub sha256: Option<[u8; 32]>,
    /// SHA-256 of each chunk (files only; one per chunk, so empty for an empty file and
    /// equal to `[sha256]` for a file of one chunk).
    pub chunks: Vec<[u8; 32]>,
    /// Symlink target.
    pub target: Option<RawPath>,
    /// Entropy of the file's sample, hundredths of a bit per byte.
    pub entropy_cb: Option<u16>,
}

/// Counts over the entries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Totals {
    /// Regular files.
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Other special files.
    pub special: u64,
    /// Bytes in regular files.
    pub bytes: u64,
}

impl Totals {
    /// Totals of a list of entries.
    pub fn of(entries: &[Entry]) -> Totals {
        let mut t = Totals::default();
        for e in entries {
            match e.kind {
                EntryKind::File => {
                    t.files += 1;
                    t.bytes = t.bytes.saturating_add(e.size);
                }
                EntryKind::Dir => t.dirs += 1,
                EntryKind::Symlink => t.symlinks += 1,
                _ => t.special += 1,
            }
        }
        t
    }
}

/// A sealed generation of one medium.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    /// The medium's name.
    pub medium: String,
    /// Generation number, from 1, one more than the previous generation of the medium.
    pub generation: u64,
    /// When it was sealed, seconds since the epoch.
    pub created_unix: i64,
    /// The program that sealed it.
    pub tool: String,
    /// The directory that was sealed (informational).
    pub root: String,
    /// Chunk size in bytes.
    pub chunk_size: u64,
    /// Sealed although the score found it suspicious.
    pub flagged: bool,
    /// Ransomware score of the source at seal time.
    pub score: Score,
    /// Entries, sorted by raw path bytes, no duplicates.
    pub entries: Vec<Entry>,
}

#[derive(Deserialize)]
struct FormatOnly {
    format: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvelopeIn<'a> {
    #[allow(dead_code)] // read by `FormatOnly` first; present so unknown fields are refused
    format: String,
    key_id: String,
    hmac_sha256: String,
    #[serde(borrow)]
    body: &'a serde_json::value::RawValue,
}

/// Signs `body` (a JSON value) under `format`, giving the whole file.
pub fn sign(format: &str, body: &[u8], key: &Key) -> Vec<u8> {
    let id = key.id();
    let tag = key.mac(&[format.as_bytes(), b"\0", id.as_bytes(), b"\0", body]);
    let mut out = Vec::with_capacity(body.len() + 200);
    out.extend_from_slice(b"{\"format\":");
    out.extend_from_slice(
        serde_json::to_string(format)
            .unwrap_or_else(|_| "\"\"".into())
            .as_bytes(),
    );
    out.extend_from_slice(b",\"key_id\":\"");
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(b"\",\"hmac_sha256\":\"");
    out.extend_from_slice(hex::encode(tag).as_bytes());
    out.extend_from_slice(b"\",\"body\":");
    out.extend_from_slice(body);
    out.extend_from_slice(b"}\n");
    out
}

/// Checks the envelope of a signed file — size, JSON, format, key id, HMAC, in that
/// order — and returns the authenticated body bytes. Nothing of the body is parsed.
pub fn open<'a>(
    bytes: &'a [u8],
    format: &'static str,
    key: &Key,
) -> Result<&'a [u8], ManifestError> {
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge {
            size: bytes.len() as u64,
            max: MAX_MANIFEST_BYTES,
        });
    }
    let syntax = |e: serde_json::Error| ManifestError::Syntax {
        detail: e.to_string(),
    };
    let f: FormatOnly = serde_json::from_slice(bytes).map_err(syntax)?;
    match f.format {
        Some(serde_json::Value::String(s)) if s == format => {}
        Some(serde_json::Value::String(s)) => {
            return Err(ManifestError::Format {
                found: s.chars().take(100).collect(),
                expected: format,
            })
        }
        _ => {
            return Err(ManifestError::Syntax {
                detail: "no \"format\" string".into(),
            })
        }
    }
    let env: EnvelopeIn<'a> = serde_json::from_slice(bytes).map_err(syntax)?;
    let ours = key.id();
    if env.key_id != ours {
        return Err(ManifestError::OtherKey {
            manifest: env.key_id.chars().take(64).collect(),
            ours,
        });
    }
    let tag = hex32(&env.hmac_sha256).ok_or(ManifestError::Tampered)?;
    let body = env.body.get().as_bytes();
    if !key.check_mac(
        &[format.as_bytes(), b"\0", env.key_id.as_bytes(), b"\0", body],
        &tag,
    ) {
        return Err(ManifestError::Tampered);
    }
    Ok(body)
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BodyWire {
    medium: String,
    generation: u64,
    created: String,
    created_unix: i64,
    tool: String,
    root: String,
    chunk_size: u64,
    flagged: bool,
    score: Score,
    totals: Totals,
    // Must stay last: `encode_body` writes the entries one per line after the rest.
    entries: Vec<EntryWire>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path_hex: Option<String>,
    #[serde(rename = "type")]
    kind: EntryKind,
    mode: String,
    mtime: i64,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    mtime_ns: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chunks: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target_hex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    entropy: Option<u16>,
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

/// `(text, hex)`: the UTF-8 text if the bytes are UTF-8, else their hex.
fn text_or_hex(b: &[u8]) -> (Option<String>, Option<String>) {
    match std::str::from_utf8(b) {
        Ok(s) => (Some(s.to_owned()), None),
        Err(_) => (None, Some(hex::encode(b))),
    }
}

/// Number of chunks of a file of `size` bytes.
pub fn chunk_count(size: u64, chunk_size: u64) -> u64 {
    size.div_ceil(chunk_size.max(1))
}

impl Manifest {
    /// The signed file.
    pub fn encode(&self, key: &Key) -> Vec<u8> {
        sign(FORMAT, &self.encode_body(), key)
    }

    /// The body, one entry per line so a person can page through it.
    pub fn encode_body(&self) -> Vec<u8> {
        let head = BodyWire {
            medium: self.medium.clone(),
            generation: self.generation,
            created: super::rfc3339(self.created_unix),
            created_unix: self.created_unix,
            tool: self.tool.clone(),
            root: self.root.clone(),
            chunk_size: self.chunk_size,
            flagged: self.flagged,
            score: self.score.clone(),
            totals: Totals::of(&self.entries),
            entries: Vec::new(),
        };
        let mut out = serde_json::to_vec(&head).expect("manifest head serialises");
        // `…,"entries":[]}` → `…,"entries":[\n{…},\n{…}\n]}`
        debug_assert!(out.ends_with(b"[]}"));
        out.truncate(out.len() - 2);
        for (i, e) in self.entries.iter().enumerate() {
            out.extend_from_slice(if i == 0 { b"\n" } else { b",\n" });
            serde_json::to_writer(&mut out, &e.to_wire()).expect("entry serialises");
        }
        out.extend_from_slice(b"\n]}");
        out
    }

    /// Authenticates and parses a manifest file.
    pub fn decode(bytes: &[u8], key: &Key) -> Result<Manifest, ManifestError> {
        let body = open(bytes, FORMAT, key)?;
        Manifest::decode_body(body)
    }

    /// Parses and checks an (already authenticated) body.
    pub fn decode_body(body: &[u8]) -> Result<Manifest, ManifestError> {
        let w: BodyWire = serde_json::from_slice(body).map_err(|e| ManifestError::Syntax {
            detail: format!("body: {e}"),
        })?;
        MediumName::check(&w.medium).map_err(|d| field("medium", d))?;
        if w.generation == 0 {
            return Err(field("generation", "must be 1 or more"));
        }
        if !w.chunk_size.is_power_of_two()
            || !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&w.chunk_size)
        {
            return Err(field(
                "chunk_size",
                format!(
                    "{} is not a power of two from 64 KiB to 64 MiB",
                    w.chunk_size
                ),
            ));
        }
        for (name, s) in [
            ("tool", &w.tool),
            ("root", &w.root),
            ("created", &w.created),
        ] {
            if s.len() > MAX_TEXT {
                return Err(field(name, "too long"));
            }
        }
        w.score
            .check()
            .map_err(|(f, d)| field(format!("score.{f}"), d))?;
        if w.entries.len() > MAX_ENTRIES {
            return Err(field("entries", format!("more than {MAX_ENTRIES}")));
        }
        let mut entries = Vec::with_capacity(w.entries.len());
        for (i, ew) in w.entries.into_iter().enumerate() {
            let e = Entry::from_wire(ew, w.chunk_size)
                .map_err(|(f, d)| field(format!("entries[{i}].{f}"), d))?;
            if let Some(prev) = entries.last().map(|p: &Entry| &p.path) {
                if prev >= &e.path {
                    return Err(field(
                        format!("entries[{i}].path"),
                        "entries are not sorted by path or a path repeats",
                    ));
                }
            }
            entries.push(e);
        }
        if Totals::of(&entries) != w.totals {
            return Err(field("totals", "do not match the entries"));
        }
        Ok(Manifest {
            medium: w.medium,
            generation: w.generation,
            created_unix: w.created_unix,
            tool: w.tool,
            root: w.root,
            chunk_size: w.chunk_size,
            flagged: w.flagged,
            score: w.score,
            entries,
        })
    }

    /// Index of the entry with this path.
    pub fn find(&self, path: &[u8]) -> Option<usize> {
        self.entries
            .binary_search_by(|e| e.path.0.as_slice().cmp(path))
            .ok()
    }
}

/// Checks a relative path from a manifest: not empty, not absolute, no empty, `.` or `..`
/// components, no NUL, within the length caps, not inside the agent's own directory.
pub fn check_rel_path(p: &[u8]) -> Result<(), &'static str> {
    if p.is_empty() {
        return Err("empty path");
    }
    if p.len() > MAX_PATH_BYTES {
        return Err("path longer than 4096 bytes");
    }
    if p.contains(&0) {
        return Err("NUL byte in path");
    }
    if p[0] == b'/' {
        return Err("absolute path");
    }
    for (i, c) in p.split(|&b| b == b'/').enumerate() {
        if c.is_empty() || c == b"." || c == b".." {
            return Err("empty, '.' or '..' path component");
        }
        if c.len() > MAX_NAME_BYTES {
            return Err("path component longer than 255 bytes");
        }
        if i == 0 && c == MEDIUM_DIR.as_bytes() {
            return Err("path inside the agent's own .setten directory");
        }
    }
    Ok(())
}

fn raw_from(
    text: Option<String>,
    hexed: Option<String>,
    name: &'static str,
) -> Result<Option<Vec<u8>>, (String, String)> {
    match (text, hexed) {
        (Some(_), Some(_)) => Err((name.into(), format!("both {name} and {name}_hex"))),
        (Some(t), None) => Ok(Some(t.into_bytes())),
        (None, Some(h)) => {
            let b = hex::decode(&h).map_err(|e| (format!("{name}_hex"), e.to_string()))?;
            if std::str::from_utf8(&b).is_ok() {
                return Err((
                    format!("{name}_hex"),
                    format!("holds UTF-8 text; it belongs in {name}"),
                ));
            }
            Ok(Some(b))
        }
        (None, None) => Ok(None),
    }
}

impl Entry {
    fn to_wire(&self) -> EntryWire {
        let (path, path_hex) = text_or_hex(&self.path.0);
        let (target, target_hex) = match &self.target {
            Some(t) => text_or_hex(&t.0),
            None => (None, None),
        };
        let is_file = self.kind == EntryKind::File;
        EntryWire {
            path,
            path_hex,
            kind: self.kind,
            mode: format!("{:04o}", self.mode & 0o7777),
            mtime: self.mtime,
            mtime_ns: self.mtime_ns,
            size: is_file.then_some(self.size),
            sha256: self.sha256.map(hex::encode),
            chunks: (is_file && self.chunks.len() > 1)
                .then(|| self.chunks.iter().map(hex::encode).collect()),
            target,
            target_hex,
            entropy: self.entropy_cb,
        }
    }

    fn from_wire(w: EntryWire, chunk_size: u64) -> Result<Entry, (String, String)> {
        let err = |f: &str, d: &str| (f.to_owned(), d.to_owned());
        let path = raw_from(w.path, w.path_hex, "path")?.ok_or_else(|| err("path", "missing"))?;
        check_rel_path(&path).map_err(|d| err("path", d))?;
        let mode = (w.mode.len() == 4 && w.mode.bytes().all(|b| (b'0'..=b'7').contains(&b)))
            .then(|| u32::from_str_radix(&w.mode, 8).ok())
            .flatten()
            .ok_or_else(|| err("mode", "not four octal digits"))?;
        if w.mtime_ns >= 1_000_000_000 {
            return Err(err("mtime_ns", "not below 1e9"));
        }
        if w.entropy.is_some_and(|e| e > MAX_ENTROPY_CB) {
            return Err(err("entropy", "above 800 (8 bits per byte)"));
        }
        let target = raw_from(w.target, w.target_hex, "target")?;
        let mut e = Entry {
            path: RawPath(path),
            kind: w.kind,
            mode,
            mtime: w.mtime,
            mtime_ns: w.mtime_ns,
            size: 0,
            sha256: None,
            chunks: Vec::new(),
            target: None,
            entropy_cb: w.entropy,
        };
        if w.kind == EntryKind::File {
            let size = w.size.ok_or_else(|| err("size", "missing for a file"))?;
            if size > MAX_FILE_SIZE {
                return Err(err("size", "larger than 1 PiB"));
            }
            let sha = w
                .sha256
                .as_deref()
                .and_then(hex32)
                .ok_or_else(|| err("sha256", "missing or not 64 hex digits"))?;
            let n = chunk_count(size, chunk_size);
            e.size = size;
            e.sha256 = Some(sha);
            e.chunks = match (n, w.chunks) {
                (0, None) => Vec::new(),
                (1, None) => vec![sha],
                (n, Some(c)) if n > 1 && c.len() as u64 == n => c
                    .iter()
                    .map(|h| hex32(h))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| err("chunks", "a chunk hash is not 64 hex digits"))?,
                _ => {
                    return Err((
                        "chunks".into(),
                        format!(
                            "a file of {size} bytes has {n} chunks; listed only when more than one"
                        ),
                    ))
                }
            };
            if target.is_some() {
                return Err(err("target", "only symlinks have a target"));
            }
        } else {
            if w.size.is_some() || w.sha256.is_some() || w.chunks.is_some() || w.entropy.is_some() {
                return Err(err("type", "only files have size, sha256, chunks, entropy"));
            }
            match (w.kind, target) {
                (EntryKind::Symlink, Some(t)) => {
                    if t.is_empty() || t.len() > MAX_PATH_BYTES || t.contains(&0) {
                        return Err(err("target", "empty, longer than 4096 bytes or with NUL"));
                    }
                    e.target = Some(RawPath(t));
                }
                (EntryKind::Symlink, None) => return Err(err("target", "missing for a symlink")),
                (_, Some(_)) => return Err(err("target", "only symlinks have a target")),
                (_, None) => {}
            }
        }
        Ok(e)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn sample_manifest() -> Manifest {
        let sha = |b: &[u8]| -> [u8; 32] { <sha2::Sha256 as sha2::Digest>::digest(b).into() };
        Manifest {
            medium: "RDX-01".into(),
            generation: 3,
            created_unix: 1_767_225_600,
            tool: "test".into(),
            root: "/mnt/rdx".into(),
            chunk_size: CHUNK,
            flagged: false,
            score: Score::default(),
            entries: vec![
                Entry {
                    path: RawPath(b"a".to_vec()),
                    kind: EntryKind::Dir,
                    mode: 0o755,
                    mtime: 1,
                    mtime_ns: 0,
                    size: 0,
                    sha256: None,
                    chunks: vec![],
                    target: None,
                    entropy_cb: None,
                },
                Entry {
                    path: RawPath(b"a/big.bin".to_vec()),
                    kind: EntryKind::File,
                    mode: 0o644,
                    mtime: 2,
                    mtime_ns: 5,
                    size: CHUNK + 10,
                    // Not the hashes of real content: only the format is under test.
                    sha256: Some([1; 32]),
                    chunks: vec![[2; 32], [3; 32]],
                    target: None,
                    entropy_cb: Some(0),
                },
                Entry {
                    path: RawPath(b"a/caf\xe9".to_vec()),
                    kind: EntryKind::File,
                    mode: 0o4600,
                    mtime: -3,
                    mtime_ns: 0,
                    size: 0,
                    sha256: Some(sha(b"")),
                    chunks: vec![],
                    target: None,
                    entropy_cb: None,
                },
                Entry {
                    path: RawPath(b"link".to_vec()),
                    kind: EntryKind::Symlink,
                    mode: 0o777,
                    mtime: 4,
                    mtime_ns: 0,
                    size: 0,
                    sha256: None,
                    chunks: vec![],
                    target: Some(RawPath(b"../../etc/\xff".to_vec())),
                    entropy_cb: None,
                },
                Entry {
                    path: RawPath("検査.txt".as_bytes().to_vec()),
                    kind: EntryKind::File,
                    mode: 0o644,
                    mtime: 4,
                    mtime_ns: 0,
                    size: 3,
                    sha256: Some(sha(b"abc")),
                    chunks: vec![sha(b"abc")],
                    target: None,
                    entropy_cb: None,
                },
            ],
        }
    }

    const CHUNK: u64 = super::super::CHUNK_SIZE;

    fn key(b: u8) -> Key {
        Key::from_bytes([b; 32])
    }

    #[test]
    fn roundtrip_and_layout() {
        let m = sample_manifest();
        let file = m.encode(&key(1));
        let text = String::from_utf8(file.clone()).unwrap();
        assert!(text.starts_with("{\"format\":\"setten.manifest/1\",\"key_id\":\""));
        // One entry per line, raw bytes as hex, "検査.txt" as text.
        assert!(
            text.contains("\n{\"path_hex\":\"612f636166e9\",\"type\":\"file\",\"mode\":\"4600\"")
        );
        assert!(text.contains("\"path\":\"検査.txt\""));
        assert!(text.contains("\"target_hex\":\"2e2e2f2e2e2f6574632fff\""));
        assert_eq!(Manifest::decode(&file, &key(1)).unwrap(), m);
        // The body parses with any JSON tool.
        let v: serde_json::Value = serde_json::from_slice(&file).unwrap();
        assert_eq!(v["body"]["totals"]["files"], 3);
        assert_eq!(m.find(b"a/big.bin"), Some(1));
        assert_eq!(m.find(b"a/big"), None);
    }

    #[test]
    fn signature_errors_are_distinct() {
        let m = sample_manifest();
        let file = m.encode(&key(1));
        assert!(matches!(
            Manifest::decode(&file, &key(2)),
            Err(ManifestError::OtherKey { .. })
        ));
        // Any edit of the body, even whitespace.
        let text = String::from_utf8(file.clone()).unwrap();
        for edited in [
            text.replace("\"mode\":\"0644\"", "\"mode\":\"0600\""),
            text.replace(",\n{", ", \n{"),
            text.replace("\"flagged\":false", "\"flagged\":true"),
        ] {
            assert_ne!(edited, text);
            assert_eq!(
                Manifest::decode(edited.as_bytes(), &key(1)),
                Err(ManifestError::Tampered)
            );
        }
        let other_format = text.replacen("setten.manifest/1", "setten.manifest/2", 1);
        assert!(matches!(
            Manifest::decode(other_format.as_bytes(), &key(1)),
            Err(ManifestError::Format { .. })
        ));
        assert!(matches!(
            Manifest::decode(&file[..file.len() / 2], &key(1)),
            Err(ManifestError::Syntax { .. })
        ));
        assert!(matches!(
            Manifest::decode(b"[]", &key(1)),
            Err(ManifestError::Syntax { .. })
        ));
        assert!(matches!(
            Manifest::decode(b"", &key(1)),
            Err(ManifestError::Syntax { .. })
        ));
    }

    /// Bodies that are correctly signed but break the format's rules.
    #[test]
    fn hostile_bodies_are_refused_with_the_field() {
        let m = sample_manifest();
        let body = String::from_utf8(m.encode_body()).unwrap();
        let cases: &[(&str, &str, &str)] = &[
            (
                "\"path\":\"検査.txt\"",
                "\"path\":\"../x\"",
                "entries[4].path",
            ),
            (
                "\"path\":\"検査.txt\"",
                "\"path\":\"/etc/passwd\"",
                "entries[4].path",
            ),
            ("\"path\":\"検査.txt\"", "\"path\":\"a\"", "entries[4].path"),
            (
                "\"path\":\"検査.txt\"",
                "\"path\":\".setten/m\"",
                "entries[4].path",
            ),
            (
                "\"path_hex\":\"612f636166e9\"",
                "\"path_hex\":\"612f63\"",
                "entries[2].path_hex",
            ),
            (
                "\"path_hex\":\"612f636166e9\"",
                "\"path_hex\":\"zz\"",
                "entries[2].path_hex",
            ),
            ("\"mode\":\"4600\"", "\"mode\":\"8600\"", "entries[2].mode"),
            ("\"mode\":\"4600\"", "\"mode\":\"46000\"", "entries[2].mode"),
            ("\"size\":3", "\"size\":4194305", "entries[4].chunks"),
            ("\"size\":3", "\"size\":1125899906842625", "entries[4].size"),
            (
                "\"medium\":\"RDX-01\"",
                "\"medium\":\"../../etc\"",
                "medium",
            ),
            ("\"generation\":3", "\"generation\":0", "generation"),
            (
                "\"chunk_size\":4194304",
                "\"chunk_size\":4194303",
                "chunk_size",
            ),
            ("\"entropy\":0", "\"entropy\":801", "entries[1].entropy"),
            (
                "\"type\":\"symlink\"",
                "\"type\":\"dir\"",
                "entries[3].target",
            ),
            ("\"files\":3", "\"files\":4", "totals"),
        ];
        for (from, to, want) in cases {
            assert!(body.contains(from), "{from}");
            let b = body.replacen(from, to, 1);
            match Manifest::decode(&sign(FORMAT, b.as_bytes(), &key(1)), &key(1)) {
                Err(ManifestError::Field { field, .. }) => assert_eq!(&field, want, "{to}"),
                other => panic!("{to}: {other:?}"),
            }
        }
        // Unknown fields anywhere are refused.
        let b = body.replacen("\"mode\":\"0755\"", "\"mode\":\"0755\",\"x\":1", 1);
        assert!(matches!(
            Manifest::decode(&sign(FORMAT, b.as_bytes(), &key(1)), &key(1)),
            Err(ManifestError::Syntax { .. })
        ));
        // Deep nesting stops at serde_json's recursion limit instead of the stack.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(Manifest::decode(&sign(FORMAT, deep.as_bytes(), &key(1)), &key(1)).is_err());
    }

    fn arb_path() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            proptest::collection::vec(
                any::<u8>().prop_filter("no / or NUL", |b| *b != b'/' && *b != 0),
                1..12,
            )
            .prop_filter("not . or ..", |c| c != b"." && c != b".."),
            1..4,
        )
        .prop_map(|cs| cs.join(&b'/'))
        .prop_filter("not .setten", |p| check_rel_path(p).is_ok())
    }

    proptest! {
        /// Any set of raw paths and sizes survives encode → decode.
        #[test]
        fn any_paths_roundtrip(paths in proptest::collection::btree_set(arb_path(), 0..20), size in 0u64..3 * CHUNK) {
            let n = chunk_count(size, CHUNK) as usize;
            let entries: Vec<Entry> = paths.into_iter().enumerate().map(|(i, p)| Entry {
                path: RawPath(p),
                kind: EntryKind::File,
                mode: (i as u32 * 0o123) & 0o7777,
                mtime: i as i64 - 5,
                mtime_ns: 999_999_999,
                size,
                sha256: Some([i as u8; 32]),
                chunks: if n == 1 { vec![[i as u8; 32]] } else { vec![[9; 32]; n] },
                target: None,
                entropy_cb: None,
            }).collect();
            let m = Manifest { entries, ..sample_manifest() };
            prop_assert_eq!(Manifest::decode(&m.encode(&key(3)), &key(3)).unwrap(), m);
        }
    }
}
