//! Offline-backup sealing and verification.
//!
//! A backup generation is **sealed** ([`seal`]): the tree is walked without following
//! symlinks, every regular file is hashed with SHA-256 as a whole and per fixed
//! [`CHUNK_SIZE`] chunk, the source is scored for signs of ransomware (see [`score`]),
//! and the result is written as a versioned manifest ([`manifest`]) signed with
//! HMAC-SHA256 under a secret key that never lives on the medium ([`key`]).
//!
//! A medium is **verified** ([`verify`]) against that manifest: the signature is checked
//! before anything else, then the tree is walked and compared by path (not by hash: a
//! renamed file is one missing and one added), and file contents are re-read with plain
//! buffered `read()` — never mmap, since a truncated or pulled medium turns a mapped page
//! into SIGBUS. Reading can cover everything (`full`), a random share of chunks
//! (`sample`) or continue where the last run stopped (`rolling`). Progress is checkpointed
//! atomically, so a run interrupted by the medium being pulled out says "interrupted",
//! never "verified", and the next run resumes.
//!
//! Everything read from the medium and from manifests is hostile: no panics, every
//! length capped, names that are not UTF-8 kept as raw bytes.

mod checkpoint;
pub mod device;
pub mod finding;
pub mod key;
pub mod manifest;
mod read;
pub mod score;
mod seal;
mod verify;
mod walk;
pub mod watch;

pub use device::{Concurrency, ConcurrencyChoice};
pub use key::{keygen, Key, KeyInfo};
pub use manifest::{Manifest, ManifestError, RawPath};
pub use score::{Reason, Score, ScoringRules};
pub use seal::{latest_manifest, seal, SealOptions, SealReport};
pub use verify::{
    verify, Change, Counts, FileFinding, ManifestInfo, Outcome, RollingInfo, SampleFraction,
    Status, VerifyMode, VerifyOptions, VerifyReport,
};

use serde::Serialize;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Size of the chunks a file is hashed in. Fixed by the manifest format: a manifest
/// records its chunk size and verification uses the recorded one.
pub const CHUNK_SIZE: u64 = 4 << 20;

/// Name of the directory at the root of a medium that holds the agent's own files (the
/// manifest copy). It is not part of the sealed tree.
pub const MEDIUM_DIR: &str = ".setten";

/// Environment variable that overrides [`default_state_dir`].
pub const STATE_DIR_ENV: &str = "SETTEN_STATE_DIR";

/// Exit code when everything matched.
pub const EXIT_VERIFIED: i32 = 0;
/// Exit code when differences were found.
pub const EXIT_DIFFERENCES: i32 = 1;
/// Exit code when verification could not be done (bad or missing manifest, bad
/// signature, root unreadable, interrupted).
pub const EXIT_NOT_VERIFIED: i32 = 2;

/// The agent's state directory: `$SETTEN_STATE_DIR`, else `/var/lib/setten`.
pub fn default_state_dir() -> PathBuf {
    std::env::var_os(STATE_DIR_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/setten"))
}

/// The default key file inside a state directory: `<state>/backup.key`.
pub fn default_key_file(state_dir: &Path) -> PathBuf {
    state_dir.join("backup.key")
}

/// Where the manifests of one medium are kept: `<state>/manifests/<medium>/`.
pub fn manifest_dir(state_dir: &Path, medium: &MediumName) -> PathBuf {
    state_dir.join("manifests").join(medium.as_str())
}

/// The name a medium is known by (its filesystem label or UUID, or a name the hospital
/// chose). It names directories in the state dir, so it is restricted to ASCII letters,
/// digits, `.`, `_` and `-`, 1 to 64 characters, not starting with `.`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct MediumName(String);

/// Longest medium name accepted.
pub const MAX_MEDIUM_NAME: usize = 64;

impl MediumName {
    /// Checks a medium name.
    pub fn new(name: &str) -> Result<MediumName, Error> {
        Self::check(name).map_err(|detail| Error::MediumName {
            name: name.chars().take(80).collect(),
            detail,
        })
    }

    pub(crate) fn check(name: &str) -> Result<MediumName, &'static str> {
        if name.is_empty() {
            return Err("empty");
        }
        if name.len() > MAX_MEDIUM_NAME {
            return Err("longer than 64 characters");
        }
        if name.starts_with('.') {
            return Err("starts with '.'");
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
        {
            return Err("only ASCII letters, digits, '.', '_' and '-' are allowed");
        }
        Ok(MediumName(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MediumName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a long operation is doing, for a progress bar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Listing the tree (bytes are not known yet).
    #[default]
    Walking,
    /// Reading and hashing file contents.
    Reading,
}

/// Progress of [`seal`] or [`verify`], reported to the caller's callback a few times a
/// second from the calling thread.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// Current phase.
    pub phase: Phase,
    /// Bytes read so far in this run (including the part resumed from a checkpoint).
    pub bytes_done: u64,
    /// Bytes this run will have read when done.
    pub bytes_total: u64,
    /// Files (entries) handled so far.
    pub files_done: u64,
    /// Files (entries) to handle.
    pub files_total: u64,
}

/// A progress callback that drives an `indicatif` bar with throughput and ETA.
pub fn progress_bar(bar: indicatif::ProgressBar) -> impl FnMut(&Progress) {
    let style = indicatif::ProgressStyle::with_template(
        "{prefix:>8} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    move |p: &Progress| {
        match p.phase {
            Phase::Walking => bar.set_prefix("listing"),
            Phase::Reading => bar.set_prefix("reading"),
        }
        bar.set_length(p.bytes_total);
        bar.set_position(p.bytes_done);
        bar.set_message(format!("{}/{} files", p.files_done, p.files_total));
    }
}

/// Everything that can stop [`keygen`], [`seal`] or [`verify`]. Every variant names the
/// file, path or field at fault. All of them mean "could not verify" (exit code 2) when
/// they come out of [`verify`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error on a file the operation needs (key, state, manifest output).
    #[error("{}: {op}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `keygen` refuses to overwrite a key.
    #[error("{}: a file already exists there; refusing to overwrite a key", path.display())]
    KeyExists {
        /// The key file.
        path: PathBuf,
    },
    /// A key file that does not hold exactly 32 bytes.
    #[error("{}: a key file holds exactly 32 bytes; this one holds {len}", path.display())]
    KeyLength {
        /// The key file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// A key file readable or writable by group or others, or not a regular file.
    #[error("{}: key file mode is {mode:04o}; it must be a regular file readable only by its owner (chmod 600)", path.display())]
    KeyPermissions {
        /// The key file.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// The key file lies inside the tree being sealed or verified.
    #[error("{}: the key file is inside the backup tree {}; keep the key off the medium", key.display(), root.display())]
    KeyOnMedium {
        /// The key file.
        key: PathBuf,
        /// The backup root.
        root: PathBuf,
    },
    /// A manifest (or checkpoint) that cannot be trusted or read.
    #[error("{}: {source}", path.display())]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: ManifestError,
    },
    /// No manifest was given and none was found.
    #[error("no manifest for {}: none given, none at {}", root.display(), looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" or "))]
    NoManifest {
        /// The backup root.
        root: PathBuf,
        /// Where the agent looked.
        looked: Vec<PathBuf>,
    },
    /// The manifest is for another medium than the one asked for.
    #[error("{}: manifest is for medium {found:?}, not {expected:?}", path.display())]
    MediumMismatch {
        /// The manifest.
        path: PathBuf,
        /// The medium named in it.
        found: String,
        /// The medium asked for.
        expected: String,
    },
    /// The root of the backup tree cannot be read (missing, not mounted, not a directory).
    #[error("{}: backup root cannot be read: {source}", path.display())]
    RootUnavailable {
        /// The root.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A bad medium name.
    #[error("medium name {name:?}: {detail}")]
    MediumName {
        /// The name given.
        name: String,
        /// What is wrong.
        detail: &'static str,
    },
    /// A bad sample fraction.
    #[error("sample fraction {given:?}: expected a number in (0, 1] or a percentage such as 5%")]
    SampleFraction {
        /// What was given.
        given: String,
    },
    /// A scoring rules file that does not load.
    #[error("{file}: {detail}")]
    Rules {
        /// The rules file.
        file: String,
        /// What is wrong, with the line and key where known.
        detail: String,
    },
    /// The tree has more entries than a manifest may hold.
    #[error("{}: more than {max} entries; a manifest holds at most {max}", root.display())]
    TooManyEntries {
        /// The backup root.
        root: PathBuf,
        /// The cap.
        max: usize,
    },
    /// Files that could not be read while sealing: a seal must cover the whole tree.
    #[error("{} entries could not be read while sealing; first: {}: {}", unreadable.len(), unreadable.first().map(|u| u.0.as_str()).unwrap_or(""), unreadable.first().map(|u| u.1.as_str()).unwrap_or(""))]
    SealUnreadable {
        /// Path and error of each (at most 1,000).
        unreadable: Vec<(String, String)>,
    },
    /// The medium went away while sealing.
    #[error("{}: the medium went away while sealing: {detail}", root.display())]
    SealInterrupted {
        /// The backup root.
        root: PathBuf,
        /// What was seen.
        detail: String,
    },
    /// The source looks like it was encrypted by ransomware; sealing it needs `force`.
    #[error("the generation looks suspicious and was not sealed (seal with force to keep it, flagged): {}", score.reasons.iter().map(|r| r.summary.as_str()).collect::<Vec<_>>().join("; "))]
    Suspicious {
        /// The scoring result, with the reasons.
        score: Box<Score>,
    },
}

impl Error {
    /// The exit code a command should end with: always [`EXIT_NOT_VERIFIED`] (2).
    pub fn exit_code(&self) -> i32 {
        EXIT_NOT_VERIFIED
    }

    pub(crate) fn io(path: impl Into<PathBuf>, op: &'static str, source: io::Error) -> Error {
        Error::Io {
            path: path.into(),
            op,
            source,
        }
    }
}

/// Result of this module's operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Seconds since the Unix epoch, now.
pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// RFC 3339 UTC text of a Unix time (proleptic Gregorian; Howard Hinnant's
/// `civil_from_days`).
pub(crate) fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// Writes a file so that a crash leaves either the old content or the new, never a
/// mixture: a temporary file in the same directory, fsync, rename, fsync of the
/// directory. With `no_clobber`, an existing file is never replaced (hard link instead of
/// rename) and [`io::ErrorKind::AlreadyExists`] is returned.
pub(crate) fn write_atomic(path: &Path, data: &[u8], no_clobber: bool) -> io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let mut tmp = tempfile_in(&dir, path)?;
    let res = (|| {
        tmp.1.write_all(data)?;
        tmp.1.sync_all()?;
        if no_clobber {
            std::fs::hard_link(&tmp.0, path)?;
            std::fs::remove_file(&tmp.0)?;
        } else {
            std::fs::rename(&tmp.0, path)?;
        }
        std::fs::File::open(&dir)?.sync_all()
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp.0);
    }
    res
}

/// Creates a fresh temporary file beside `target` (mode 0600).
fn tempfile_in(dir: &Path, target: &Path) -> io::Result<(PathBuf, std::fs::File)> {
    use std::os::unix::fs::OpenOptionsExt;
    let stem = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for _ in 0..16 {
        let p = dir.join(format!(".{stem}.tmp-{:016x}", rand::random::<u64>()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&p)
        {
            Ok(f) => return Ok((p, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free temporary file name",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medium_names() {
        assert!(MediumName::new("RDX-01").is_ok());
        assert!(MediumName::new("3f2a-11c0").is_ok());
        for bad in ["", ".hidden", "a/b", "..", "テープ", &"x".repeat(65)] {
            assert!(MediumName::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        // 2000-02-29 (leap day) 12:34:56 UTC.
        assert_eq!(rfc3339(951_827_696), "2000-02-29T12:34:56Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn atomic_write_no_clobber() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/b.json");
        write_atomic(&p, b"one", true).unwrap();
        let e = write_atomic(&p, b"two", true).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        write_atomic(&p, b"three", false).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"three");
        // No temporary files left behind.
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }
}
