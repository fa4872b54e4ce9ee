//! Verifying a medium against its sealed manifest.
//!
//! Order of work: load the key; find and authenticate the manifest (format, key id and
//! HMAC before any of the body is read); check the root; list the tree and compare it
//! with the manifest by path (missing, added, type and permission changes); then re-read
//! file contents in segments of up to 16 chunks, compare chunk hashes and keep the first
//! bad chunk of each file. What is read depends on the mode: every chunk (`full`), a
//! random share of chunks (`sample`), or the chunks not yet covered in the current pass
//! (`rolling`, which keeps its position across runs so successive mounts cover
//! everything).
//!
//! A run never says "verified" for what it did not read: when the medium goes away
//! (unmounted, pulled out: an error on open or read and the root is no longer the
//! directory it was) or the caller cancels, the run stops as [`Outcome::Interrupted`]
//! after saving its checkpoint, and the next run with the same manifest and mode resumes.

use super::checkpoint::{Bad, Checkpoint};
use super::device::{decide, Concurrency, ConcurrencyChoice, StorageKind};
use super::key::Key;
use super::manifest::{EntryKind, Manifest, RawPath};
use super::read::{
    maybe_medium_gone, open_nofollow, pool_threads, Event, ReadErr, Reader, Throttle, LANES,
};
use super::score::Reason;
use super::seal::{check_key_off_medium, latest_manifest, load_manifest, root_present};
use super::walk::{join, walk, Node};
use super::{
    now_unix, rfc3339, Error, MediumName, Phase, Progress, Result, EXIT_DIFFERENCES,
    EXIT_NOT_VERIFIED, EXIT_VERIFIED, MEDIUM_DIR,
};
use serde::{Deserialize, Serialize};
use setten_sha256x::{update_lanes, Lane};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Chunks per segment, the unit of work and of checkpointing (64 MiB with 4 MiB chunks:
/// at most that much per reader is read again after an interruption).
pub const SEGMENT_CHUNKS: u64 = 16;

/// How often a running verification saves its checkpoint.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(2);

/// A share of chunks for `sample` mode, in (0, 1].
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize)]
pub struct SampleFraction(f64);

impl SampleFraction {
    /// 5 %.
    pub const DEFAULT: SampleFraction = SampleFraction(0.05);

    /// A fraction in (0, 1].
    pub fn new(f: f64) -> Result<SampleFraction> {
        if f > 0.0 && f <= 1.0 {
            Ok(SampleFraction(f))
        } else {
            Err(Error::SampleFraction {
                given: f.to_string(),
            })
        }
    }

    /// The value.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl FromStr for SampleFraction {
    type Err = Error;
    /// `0.05` or `5%`.
    fn from_str(s: &str) -> Result<SampleFraction> {
        let bad = || Error::SampleFraction {
            given: s.chars().take(40).collect(),
        };
        let t = s.trim();
        let v = match t.strip_suffix('%') {
            Some(p) => p.trim().parse::<f64>().map_err(|_| bad())? / 100.0,
            None => t.parse::<f64>().map_err(|_| bad())?,
        };
        SampleFraction::new(v).map_err(|_| bad())
    }
}

/// What to read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum VerifyMode {
    /// Every chunk of every file.
    Full,
    /// A random share of chunks. The same seed picks the same chunks; without one, a
    /// fresh seed is drawn (or the interrupted run's seed is reused).
    Sample {
        /// Share of chunks.
        fraction: SampleFraction,
        /// Seed of the choice.
        seed: Option<u64>,
    },
    /// Continue the current pass where the last run stopped; stop after `max_bytes` read
    /// or `max_duration`, or at the end of the pass.
    Rolling {
        /// Read at most about this much in this run.
        max_bytes: Option<u64>,
        /// Run at most about this long.
        max_duration: Option<Duration>,
    },
}

impl VerifyMode {
    fn name(&self) -> &'static str {
        match self {
            VerifyMode::Full => "full",
            VerifyMode::Sample { .. } => "sample",
            VerifyMode::Rolling { .. } => "rolling",
        }
    }
}

/// What to verify and how.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// The directory to verify (the mount point of the medium).
    pub root: PathBuf,
    /// The manifest. Without it: the newest for `medium` in the state directory, else the
    /// copy on the medium (`<root>/.setten/manifest.json`) — replaced by the state
    /// directory's newest generation of that medium when that is at least as new.
    pub manifest: Option<PathBuf>,
    /// The medium, to pick its newest manifest and to check the manifest is for it.
    pub medium: Option<MediumName>,
    /// The key file.
    pub key_file: PathBuf,
    /// The agent's state directory (manifests, checkpoints).
    pub state_dir: PathBuf,
    /// What to read.
    pub mode: VerifyMode,
    /// How many threads read.
    pub concurrency: Concurrency,
    /// Ignore any checkpoint and start over.
    pub restart: bool,
    /// Read at most this many bytes per second (all threads together).
    pub max_read_rate: Option<u64>,
    /// Set to stop early; the run ends as interrupted, with its checkpoint saved.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl VerifyOptions {
    /// Options with the defaults: key `<state>/backup.key`, full mode, automatic
    /// concurrency, resume from a checkpoint if there is one.
    pub fn new(root: impl Into<PathBuf>, state_dir: impl Into<PathBuf>) -> VerifyOptions {
        let state_dir = state_dir.into();
        VerifyOptions {
            root: root.into(),
            manifest: None,
            medium: None,
            key_file: super::default_key_file(&state_dir),
            state_dir,
            mode: VerifyMode::Full,
            concurrency: Concurrency::Auto,
            restart: false,
            max_read_rate: None,
            cancel: None,
        }
    }
}

/// How a file's content differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Same size, different bytes.
    Content,
    /// Shorter than sealed.
    Truncated,
    /// Longer than sealed.
    Extended,
    /// A symlink pointing elsewhere.
    Target,
}

/// The state of one entry that is not simply ok.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// Content differs. `first_bad_offset` is the start of the first chunk found to
    /// differ (of the chunks read: in `sample` and `rolling` mode not every chunk is).
    Modified {
        /// Offset of the first bad chunk.
        first_bad_offset: u64,
        /// How.
        change: Change,
        /// Size when sealed.
        expected_size: u64,
        /// Size now.
        actual_size: u64,
    },
    /// In the manifest, not on the medium.
    Missing,
    /// On the medium, not in the manifest.
    Added {
        /// Size (files).
        size: u64,
    },
    /// Could not be read; the OS error.
    Unreadable {
        /// The OS error text.
        error: String,
    },
    /// Another kind of entry than sealed (a file that became a directory, …).
    TypeChanged {
        /// What was sealed.
        expected: EntryKind,
    },
    /// Same content, other permission bits.
    ModeChanged,
}

/// One entry that is not simply ok.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileFinding {
    /// Path relative to the root (lossy text for people).
    pub path: String,
    /// Raw path bytes in hex, when the name is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
    /// What it is now (what it was, for missing entries).
    pub kind: EntryKind,
    /// What is wrong.
    #[serde(flatten)]
    pub status: Status,
    /// Permission bits `(sealed, now)`, when they changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<(String, String)>,
    /// The raw path.
    #[serde(skip)]
    pub raw: RawPath,
}

/// Counts of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Entries in the manifest.
    pub entries: u64,
    /// Regular files in the manifest.
    pub files: u64,
    /// Entries with nothing to report.
    pub ok: u64,
    /// Content differs.
    pub modified: u64,
    /// Gone.
    pub missing: u64,
    /// New.
    pub added: u64,
    /// Could not be read.
    pub unreadable: u64,
    /// Another kind of entry.
    pub type_changed: u64,
    /// Permission bits changed (with or without other changes).
    pub mode_changed: u64,
    /// Same content, other mtime (informational, not a difference).
    pub mtime_changed: u64,
    /// Files whose content was read completely in this run or the runs it resumed.
    pub files_content_checked: u64,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Everything the mode asked for was read.
    Complete,
    /// A rolling run stopped at its budget; the next run continues.
    Partial {
        /// Why.
        reason: String,
    },
    /// The medium went away or the run was cancelled: nothing is claimed verified; the
    /// checkpoint was saved and the next run resumes.
    Interrupted {
        /// Why.
        reason: String,
    },
}

/// Which manifest was used.
#[derive(Clone, Debug, Serialize)]
pub struct ManifestInfo {
    /// Its file.
    pub path: PathBuf,
    /// `given`, `state` (the agent's store) or `medium` (the copy on the medium).
    pub source: &'static str,
    /// The medium.
    pub medium: String,
    /// Generation.
    pub generation: u64,
    /// When sealed (RFC 3339).
    pub created: String,
    /// Sealed despite a suspicious score.
    pub flagged: bool,
    /// The score's reasons when flagged.
    pub flag_reasons: Vec<Reason>,
}

/// Rolling-mode coverage.
#[derive(Clone, Debug, Serialize)]
pub struct RollingInfo {
    /// Pass number (from 1).
    pub pass: u64,
    /// Bytes covered in this pass so far.
    pub covered_bytes: u64,
    /// Bytes in a pass.
    pub total_bytes: u64,
    /// This run finished the pass.
    pub pass_completed: bool,
    /// When a pass last completed (RFC 3339).
    pub last_pass_completed: Option<String>,
}

/// What [`verify`] found.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    /// How the run ended.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// 0 everything matched, 1 differences, 2 not verified.
    pub exit_code: i32,
    /// The root verified.
    pub root: PathBuf,
    /// The manifest.
    pub manifest: ManifestInfo,
    /// `full`, `sample` or `rolling`.
    pub mode: &'static str,
    /// Sample share.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_fraction: Option<f64>,
    /// Sample seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_seed: Option<u64>,
    /// Reader threads and why.
    pub concurrency: ConcurrencyChoice,
    /// Counts.
    pub counts: Counts,
    /// Every entry that is not simply ok, in path order, then the added ones.
    pub findings: Vec<FileFinding>,
    /// Bytes this run read.
    pub bytes_read: u64,
    /// Bytes read by earlier runs this one resumed from.
    pub bytes_resumed: u64,
    /// Bytes the mode plans to read in all.
    pub bytes_planned: u64,
    /// The run continued an earlier, interrupted run.
    pub resumed: bool,
    /// The checkpoint that remains for the next run.
    pub checkpoint: Option<PathBuf>,
    /// Why an existing checkpoint was not used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_ignored: Option<String>,
    /// Rolling-mode coverage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolling: Option<RollingInfo>,
    /// Wall time.
    pub elapsed_secs: f64,
}

impl VerifyReport {
    /// The report for people: a summary, the flag of the generation if any, and one line
    /// per finding (at most `max_lines`, then a count of the rest).
    pub fn to_table(&self, max_lines: usize) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let c = &self.counts;
        let verdict = match &self.outcome {
            Outcome::Interrupted { reason } => format!("INTERRUPTED, not verified: {reason}"),
            Outcome::Partial { reason } if self.differences() => {
                format!("DIFFERENCES so far ({reason})")
            }
            Outcome::Partial { reason } => format!("no differences so far ({reason})"),
            Outcome::Complete if self.differences() => "DIFFERENCES".to_owned(),
            Outcome::Complete => "verified: everything read matches".to_owned(),
        };
        let _ = writeln!(s, "{}: {verdict}", self.root.display());
        let _ = writeln!(
            s,
            "medium {} generation {} sealed {} ({}, {}); mode {}; {}",
            self.manifest.medium,
            self.manifest.generation,
            self.manifest.created,
            self.manifest.source,
            self.manifest.path.display(),
            self.mode,
            self.concurrency.reason
        );
        if self.manifest.flagged {
            let _ = writeln!(
                s,
                "FLAGGED AT SEAL: this generation looked like ransomware:"
            );
            for r in &self.manifest.flag_reasons {
                let _ = writeln!(s, "  - {}", r.summary);
            }
        }
        let _ = writeln!(
            s,
            "{} entries: {} ok, {} modified, {} missing, {} added, {} unreadable, {} type changed, {} mode changed",
            c.entries, c.ok, c.modified, c.missing, c.added, c.unreadable, c.type_changed, c.mode_changed
        );
        let _ = writeln!(
            s,
            "read {} bytes in {:.1} s{}",
            self.bytes_read,
            self.elapsed_secs,
            if self.resumed {
                format!(", resumed after {} bytes read before", self.bytes_resumed)
            } else {
                String::new()
            }
        );
        if let Some(r) = &self.rolling {
            let _ = writeln!(
                s,
                "rolling pass {}: {} of {} bytes covered{}",
                r.pass,
                r.covered_bytes,
                r.total_bytes,
                if r.pass_completed {
                    ", pass completed"
                } else {
                    ""
                }
            );
        }
        for f in self.findings.iter().take(max_lines) {
            let detail = match &f.status {
                Status::Modified {
                    first_bad_offset,
                    change,
                    expected_size,
                    actual_size,
                } => format!(
                    "{change:?} from offset {first_bad_offset} (size {expected_size} → {actual_size})"
                )
                .to_lowercase(),
                Status::Added { size } => format!("{} of {size} bytes", f.kind.as_str()),
                Status::Unreadable { error } => error.clone(),
                Status::TypeChanged { expected } => {
                    format!("{} → {}", expected.as_str(), f.kind.as_str())
                }
                Status::Missing | Status::ModeChanged => String::new(),
            };
            let mode = f
                .mode
                .as_ref()
                .map(|(a, b)| format!(" [mode {a} → {b}]"))
                .unwrap_or_default();
            let status = serde_json::to_value(&f.status)
                .ok()
                .and_then(|v| v["status"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let _ = writeln!(s, "{status:<13} {}  {detail}{mode}", f.path);
        }
        if self.findings.len() > max_lines {
            let _ = writeln!(s, "… and {} more", self.findings.len() - max_lines);
        }
        s
    }

    /// Differences were found.
    pub fn differences(&self) -> bool {
        !self.findings.is_empty()
    }

    fn compute_exit(&self) -> i32 {
        match self.outcome {
            Outcome::Interrupted { .. } => EXIT_NOT_VERIFIED,
            _ if self.differences() => EXIT_DIFFERENCES,
            _ => EXIT_VERIFIED,
        }
    }
}

/// A piece of the plan: chunks `first..first + count` of manifest entry `file`.
#[derive(Clone, Copy, Debug)]
struct Seg {
    file: u32,
    first: u64,
    count: u64,
    bytes: u64,
}

/// SplitMix64, for choosing sample chunks reproducibly from a seed.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn pick(seed: u64, file: u32, chunk: u64) -> f64 {
    let v = mix(seed ^ mix(u64::from(file) ^ mix(chunk)));
    (v >> 11) as f64 / (1u64 << 53) as f64
}

fn chunk_len(size: u64, cs: u64, c: u64) -> u64 {
    cs.min(size.saturating_sub(c * cs))
}

/// The plan for a manifest: every file's chunks (or the sampled ones) in path order,
/// grouped into segments of consecutive chunks.
fn plan(m: &Manifest, sample: Option<(f64, u64)>) -> Vec<Seg> {
    let cs = m.chunk_size;
    let mut segs = Vec::new();
    let mut best: Option<(f64, u32, u64)> = None;
    for (i, e) in m.entries.iter().enumerate() {
        if e.kind != EntryKind::File {
            continue;
        }
        let file = i as u32;
        let n = e.chunks.len() as u64;
        let mut c = 0;
        while c < n {
            let take = |c: u64| match sample {
                None => true,
                Some((f, seed)) => pick(seed, file, c) < f,
            };
            if let Some((_, seed)) = sample {
                let v = pick(seed, file, c);
                if best.is_none_or(|b| v < b.0) {
                    best = Some((v, file, c));
                }
            }
            if !take(c) {
                c += 1;
                continue;
            }
            let first = c;
            let mut bytes = 0;
            while c < n && c - first < SEGMENT_CHUNKS && take(c) {
                bytes += chunk_len(e.size, cs, c);
                c += 1;
            }
            segs.push(Seg {
                file,
                first,
                count: c - first,
                bytes,
            });
        }
    }
    // A sample always reads at least one chunk.
    if let (true, Some((_, file, c))) = (segs.is_empty(), best) {
        let e = &m.entries[file as usize];
        segs.push(Seg {
            file,
            first: c,
            count: 1,
            bytes: chunk_len(e.size, cs, c),
        });
    }
    segs
}

/// What the listing says about a file before its content is read.
#[derive(Clone, Debug)]
enum Pre {
    /// Reported without reading.
    Skip,
    /// Read it; `size_bad` is set when the size differs.
    Check { actual: u64, size_bad: Option<Bad> },
}

/// What an I/O error on a file of the medium means: the medium went away, the file
/// vanished, or the file is unreadable.
fn io_outcome(
    err: std::io::Error,
    path: &RawPath,
    root: &std::path::Path,
    root_id: (u64, u64),
) -> SegOut {
    if maybe_medium_gone(&err) && !root_present(root, root_id) {
        SegOut::Gone(format!("{path}: {err}"))
    } else if err.kind() == std::io::ErrorKind::NotFound {
        SegOut::Vanished
    } else {
        SegOut::Unreadable(err.to_string())
    }
}

/// One segment (a run of chunks of one file) being read and hashed in a lane.
struct SegRun<'m> {
    /// Job number.
    j: usize,
    f: std::fs::File,
    e: &'m super::manifest::Entry,
    cs: u64,
    /// The chunk being read, and one past the segment's last.
    chunk: u64,
    end: u64,
    /// The file position.
    pos: u64,
    /// Bytes of the current chunk, and read so far.
    want: u64,
    got: u64,
    lane: Lane,
    size_change: Option<Bad>,
}

impl SegRun<'_> {
    /// Positions at `self.chunk`; `Some` when the segment ends instead (done, or the
    /// file's size changed before this chunk, or the seek failed).
    fn begin_chunk(&mut self, root: &std::path::Path, root_id: (u64, u64)) -> Option<SegOut> {
        use std::io::Seek;
        loop {
            if self.chunk >= self.end {
                return Some(SegOut::Ok(None));
            }
            let off = self.chunk.saturating_mul(self.cs);
            if let Some(b) = self.size_change.filter(|b| off >= b.offset) {
                return Some(SegOut::Ok(Some(b)));
            }
            self.want = chunk_len(self.e.size, self.cs, self.chunk);
            self.got = 0;
            self.lane = Lane::new();
            if self.want == 0 {
                // An empty chunk cannot occur in a valid plan; take it as read.
                self.chunk += 1;
                continue;
            }
            if self.pos != off {
                if let Err(err) = self.f.seek(std::io::SeekFrom::Start(off)) {
                    return Some(io_outcome(err, &self.e.path, root, root_id));
                }
                self.pos = off;
            }
            return None;
        }
    }
}

enum SegOut {
    Ok(Option<Bad>),
    Vanished,
    Unreadable(String),
    Gone(String),
    Stopped,
    OverBudget,
}

fn finding(raw: &RawPath, kind: EntryKind, status: Status) -> FileFinding {
    FileFinding {
        path: raw.to_string(),
        path_hex: raw.as_utf8().is_none().then(|| raw.to_hex()),
        kind,
        status,
        mode: None,
        raw: raw.clone(),
    }
}

fn octal(m: u32) -> String {
    format!("{:04o}", m & 0o7777)
}

/// Finds and authenticates the manifest to verify against.
fn resolve_manifest(
    opts: &VerifyOptions,
    key: &Key,
) -> Result<(Manifest, Vec<u8>, PathBuf, &'static str)> {
    let (m, bytes, path, source) = if let Some(p) = &opts.manifest {
        let (m, b) = load_manifest(p, key)?;
        (m, b, p.clone(), "given")
    } else if let Some(medium) = &opts.medium {
        let Some((_, p)) = latest_manifest(&opts.state_dir, medium) else {
            return Err(Error::NoManifest {
                root: opts.root.clone(),
                looked: vec![super::manifest_dir(&opts.state_dir, medium)],
            });
        };
        let (m, b) = load_manifest(&p, key)?;
        (m, b, p, "state")
    } else {
        let copy = opts.root.join(MEDIUM_DIR).join("manifest.json");
        if std::fs::symlink_metadata(&copy).is_err() {
            std::fs::metadata(&opts.root).map_err(|e| Error::RootUnavailable {
                path: opts.root.clone(),
                source: e,
            })?;
            return Err(Error::NoManifest {
                root: opts.root.clone(),
                looked: vec![copy, opts.state_dir.join("manifests")],
            });
        }
        let (m, b) = load_manifest(&copy, key)?;
        // The agent's own store is authoritative: an older copy on the medium (a
        // rollback) gives way to the newest generation kept for that medium.
        let stored = MediumName::new(&m.medium)
            .ok()
            .and_then(|name| latest_manifest(&opts.state_dir, &name))
            .filter(|(g, _)| *g >= m.generation);
        match stored {
            Some((_, p)) => {
                let (m, b) = load_manifest(&p, key)?;
                (m, b, p, "state")
            }
            None => (m, b, copy, "medium"),
        }
    };
    if let Some(want) = &opts.medium {
        if m.medium != want.as_str() {
            return Err(Error::MediumMismatch {
                path,
                found: m.medium,
                expected: want.to_string(),
            });
        }
    }
    Ok((m, bytes, path, source))
}

/// Verifies `opts.root` against its manifest.
///
/// `Err` means verification could not start (key, manifest, signature, root): exit 2.
/// Otherwise the report's [`VerifyReport::exit_code`] says 0 (everything read matched),
/// 1 (differences, listed in `findings`) or 2 (interrupted).
pub fn verify(opts: &VerifyOptions, progress: &mut dyn FnMut(&Progress)) -> Result<VerifyReport> {
    let started = Instant::now();
    let key = Key::load(&opts.key_file)?;
    let (m, mbytes, mpath, msource) = resolve_manifest(opts, &key)?;
    let root = &opts.root;
    let rmd = std::fs::metadata(root).map_err(|e| Error::RootUnavailable {
        path: root.clone(),
        source: e,
    })?;
    check_key_off_medium(&opts.key_file, root)?;
    let root_id = (rmd.dev(), rmd.ino());
    let digest: [u8; 32] = Sha256::digest(&mbytes).into();
    let medium = MediumName::new(&m.medium)?;
    let info = ManifestInfo {
        path: mpath,
        source: msource,
        medium: m.medium.clone(),
        generation: m.generation,
        created: rfc3339(m.created_unix),
        flagged: m.flagged,
        flag_reasons: if m.flagged {
            m.score.reasons.clone()
        } else {
            Vec::new()
        },
    };

    // List and compare by path.
    let mut p = Progress {
        files_total: m.entries.len() as u64,
        ..Progress::default()
    };
    progress(&p);
    let w = walk(root, &mut |n| {
        p.files_done = n;
        progress(&p);
    })?;
    let concurrency = decide(opts.concurrency, root);
    let mut report = VerifyReport {
        outcome: Outcome::Complete,
        exit_code: EXIT_VERIFIED,
        root: root.clone(),
        manifest: info,
        mode: opts.mode.name(),
        sample_fraction: None,
        sample_seed: None,
        concurrency,
        counts: Counts::default(),
        findings: Vec::new(),
        bytes_read: 0,
        bytes_resumed: 0,
        bytes_planned: 0,
        resumed: false,
        checkpoint: None,
        checkpoint_ignored: None,
        rolling: None,
        elapsed_secs: 0.0,
    };
    if !root_present(root, root_id) {
        return Ok(interrupted(
            report,
            "the medium went away while it was being listed",
            started,
        ));
    }
    let now: HashMap<&[u8], &Node> = w.nodes.iter().map(|n| (n.path.as_bytes(), n)).collect();
    let cs = m.chunk_size;
    let mut pre: Vec<Pre> = vec![Pre::Skip; m.entries.len()];
    // Per manifest entry: a finding from the listing, if any.
    let mut listed: Vec<Option<FileFinding>> = vec![None; m.entries.len()];
    let mut mtime_moved = vec![false; m.entries.len()];
    for (i, e) in m.entries.iter().enumerate() {
        report.counts.entries += 1;
        if e.kind == EntryKind::File {
            report.counts.files += 1;
        }
        let Some(n) = now.get(e.path.as_bytes()) else {
            listed[i] = Some(match w.error_covering(e.path.as_bytes()) {
                Some(err) => finding(
                    &e.path,
                    e.kind,
                    Status::Unreadable {
                        error: err.to_string(),
                    },
                ),
                None => finding(&e.path, e.kind, Status::Missing),
            });
            continue;
        };
        if n.kind != e.kind {
            listed[i] = Some(finding(
                &e.path,
                n.kind,
                Status::TypeChanged { expected: e.kind },
            ));
            continue;
        }
        let mut f: Option<FileFinding> = None;
        match e.kind {
            EntryKind::File => {
                let size_bad = (n.size != e.size).then(|| Bad {
                    offset: (n.size.min(e.size) / cs) * cs,
                    change: if n.size < e.size {
                        Change::Truncated
                    } else {
                        Change::Extended
                    },
                });
                pre[i] = Pre::Check {
                    actual: n.size,
                    size_bad,
                };
                if n.mtime != e.mtime || n.mtime_ns != e.mtime_ns {
                    mtime_moved[i] = true;
                }
            }
            EntryKind::Symlink if n.target != e.target => {
                f = Some(finding(
                    &e.path,
                    n.kind,
                    Status::Modified {
                        first_bad_offset: 0,
                        change: Change::Target,
                        expected_size: 0,
                        actual_size: 0,
                    },
                ));
            }
            _ => {}
        }
        if n.mode != e.mode {
            let mut x = f.unwrap_or_else(|| finding(&e.path, n.kind, Status::ModeChanged));
            x.mode = Some((octal(e.mode), octal(n.mode)));
            f = Some(x);
        }
        listed[i] = f;
    }

    // The plan and its checkpoint.
    let (sample, seed_wanted) = match opts.mode {
        VerifyMode::Sample { fraction, seed } => (Some(fraction.get()), seed),
        _ => (None, None),
    };
    let cp_path = opts
        .state_dir
        .join("verify")
        .join(medium.as_str())
        .join(format!(
            "{}.{}.json",
            hex::encode(&digest[..8]),
            opts.mode.name()
        ));
    let mut cp_loaded: Option<Checkpoint> = None;
    if !opts.restart {
        match std::fs::read(&cp_path) {
            Ok(b) => match Checkpoint::decode(&b, &key, &m) {
                Ok(cp) => cp_loaded = Some(cp),
                Err(e) => report.checkpoint_ignored = Some(format!("{}: {e}", cp_path.display())),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => report.checkpoint_ignored = Some(format!("{}: {e}", cp_path.display())),
        }
    }
    let seed = match (seed_wanted, &cp_loaded) {
        (Some(s), _) => s,
        (None, Some(cp)) if sample.is_some() && cp.fraction == sample => cp.seed,
        _ => rand::random(),
    };
    let segs = plan(&m, sample.map(|f| (f, seed)));
    let mut cp = match cp_loaded {
        Some(cp)
            if cp.manifest_sha256 == digest
                && cp.mode == opts.mode.name()
                && cp.fraction == sample
                && cp.seed == if sample.is_some() { seed } else { 0 }
                && cp.segments() == segs.len() as u64 =>
        {
            cp
        }
        Some(_) => {
            report.checkpoint_ignored =
                Some("the checkpoint belongs to another plan (mode, sample or manifest)".into());
            Checkpoint::new(
                digest,
                opts.mode.name(),
                sample,
                if sample.is_some() { seed } else { 0 },
                segs.len() as u64,
            )
        }
        None => Checkpoint::new(
            digest,
            opts.mode.name(),
            sample,
            if sample.is_some() { seed } else { 0 },
            segs.len() as u64,
        ),
    };
    if sample.is_some() {
        report.sample_fraction = sample;
        report.sample_seed = Some(seed);
    }
    report.resumed = cp.done.count() > 0;
    report.bytes_resumed = cp.bytes_done;
    report.bytes_planned = segs.iter().map(|s| s.bytes).sum();

    // Segments still to read: not done, file present and readable, before the point
    // where its size changed.
    let todo: Vec<usize> = (0..segs.len())
        .filter(|&s| !cp.done.get(s as u64))
        .filter(|&s| match &pre[segs[s].file as usize] {
            Pre::Check {
                size_bad: Some(b), ..
            } => segs[s].first * cs < b.offset,
            Pre::Check { size_bad: None, .. } => true,
            Pre::Skip => false,
        })
        .collect();
    let mut remaining: HashMap<u32, usize> = HashMap::new();
    for &s in &todo {
        *remaining.entry(segs[s].file).or_default() += 1;
    }
    let (max_bytes, max_duration) = match opts.mode {
        VerifyMode::Rolling {
            max_bytes,
            max_duration,
        } => (max_bytes, max_duration),
        _ => (None, None),
    };
    let todo_bytes: u64 = todo.iter().map(|&s| segs[s].bytes).sum();
    p = Progress {
        phase: Phase::Reading,
        bytes_done: cp.bytes_done,
        bytes_total: cp.bytes_done + max_bytes.map_or(todo_bytes, |b| b.min(todo_bytes)),
        files_done: 0,
        files_total: remaining.len() as u64,
    };
    progress(&p);

    let stop = AtomicBool::new(false);
    let over_budget = AtomicBool::new(false);
    let counter = AtomicU64::new(0);
    let dispatched = AtomicU64::new(0);
    let throttle = opts.max_read_rate.map(Throttle::new);
    let run_start = Instant::now();
    // Opens segment `j` and places it at its first chunk, or says why it ends already.
    let start = |j: usize| -> Result<SegRun<'_>, SegOut> {
        let seg = segs[todo[j]];
        if let Some(max) = max_bytes {
            if dispatched.fetch_add(seg.bytes, Ordering::Relaxed) >= max {
                over_budget.store(true, Ordering::Relaxed);
                return Err(SegOut::OverBudget);
            }
        }
        if max_duration.is_some_and(|d| run_start.elapsed() >= d) {
            over_budget.store(true, Ordering::Relaxed);
            return Err(SegOut::OverBudget);
        }
        let e = &m.entries[seg.file as usize];
        let path = join(root, e.path.as_bytes());
        let io_fail = |err: std::io::Error| io_outcome(err, &e.path, root, root_id);
        let f = open_nofollow(&path, false).map_err(io_fail)?;
        let actual = match f.metadata() {
            Ok(md) if md.is_file() => md.len(),
            Ok(_) => return Err(SegOut::Unreadable("no longer a regular file".into())),
            Err(err) => return Err(io_fail(err)),
        };
        let size_change = (actual != e.size).then(|| Bad {
            offset: (actual.min(e.size) / cs) * cs,
            change: if actual < e.size {
                Change::Truncated
            } else {
                Change::Extended
            },
        });
        let mut run = SegRun {
            j,
            f,
            e,
            cs,
            chunk: seg.first,
            end: seg.first + seg.count,
            pos: 0,
            want: 0,
            got: 0,
            lane: Lane::new(),
            size_change,
        };
        match run.begin_chunk(root, root_id) {
            Some(out) => Err(out),
            None => Ok(run),
        }
    };
    // A reader thread keeps up to `LANES` segments in progress and hashes the pieces it
    // read from each of them together. Reading several files in turn is parallel reading:
    // where the storage wants one sequential reader (rotational or unknown, or asked
    // for), one segment at a time.
    let parallel_ok = match opts.concurrency {
        Concurrency::Sequential => false,
        Concurrency::Threads(_) => true,
        Concurrency::Auto => {
            report.concurrency.threads > 1
                || report.concurrency.storage.as_ref().is_some_and(|s| {
                    matches!(s.kind, StorageKind::NonRotational | StorageKind::Memory)
                })
        }
    };
    let lanes = if parallel_ok { LANES } else { 1 };
    let body = |r: &mut Reader<'_>,
                next: &mut dyn FnMut() -> Option<usize>,
                emit: &mut dyn FnMut(usize, SegOut)| {
        let mut runs: Vec<SegRun<'_>> = Vec::with_capacity(LANES);
        let mut more = true;
        loop {
            while more && runs.len() < lanes {
                match next() {
                    Some(j) => match start(j) {
                        Ok(run) => runs.push(run),
                        Err(out) => emit(j, out),
                    },
                    None => more = false,
                }
            }
            if runs.is_empty() {
                return;
            }
            // One piece from each segment; a segment that ends here leaves its lane.
            let mut read = [0usize; LANES];
            let mut ended: Vec<(usize, SegOut)> = Vec::new();
            for (i, run) in runs.iter_mut().enumerate() {
                match r.read_lane(&mut run.f, i, run.want - run.got) {
                    Ok(0) => ended.push((
                        i,
                        SegOut::Ok(Some(Bad {
                            offset: run.chunk * cs,
                            change: Change::Truncated,
                        })),
                    )),
                    Ok(n) => read[i] = n,
                    Err(ReadErr::Stopped) => ended.push((i, SegOut::Stopped)),
                    Err(ReadErr::Io(err)) => {
                        let at = run.chunk * cs + run.got;
                        let out = match io_outcome(err, &run.e.path, root, root_id) {
                            SegOut::Unreadable(s) => {
                                SegOut::Unreadable(format!("read at offset {at}: {s}"))
                            }
                            other => other,
                        };
                        ended.push((i, out));
                    }
                }
            }
            {
                let mut lanes: Vec<&mut Lane> = Vec::with_capacity(LANES);
                let mut pieces: Vec<&[u8]> = Vec::with_capacity(LANES);
                for (i, run) in runs.iter_mut().enumerate() {
                    if read[i] > 0 {
                        lanes.push(&mut run.lane);
                        pieces.push(r.lane(i).get(..read[i]).unwrap_or_default());
                    }
                }
                update_lanes(&mut lanes, &pieces);
            }
            for (i, run) in runs.iter_mut().enumerate() {
                if read[i] == 0 {
                    continue;
                }
                run.got += read[i] as u64;
                if run.got < run.want {
                    continue;
                }
                let h = std::mem::take(&mut run.lane).finalize();
                if run.e.chunks.get(run.chunk as usize) != Some(&h) {
                    ended.push((
                        i,
                        SegOut::Ok(Some(Bad {
                            offset: run.chunk * cs,
                            change: Change::Content,
                        })),
                    ));
                    continue;
                }
                run.pos = run.chunk * cs + run.got;
                run.chunk += 1;
                if let Some(out) = run.begin_chunk(root, root_id) {
                    ended.push((i, out));
                }
            }
            // Highest lane first, so the lower indices stay valid.
            ended.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
            for (i, out) in ended {
                let run = runs.remove(i);
                emit(run.j, out);
            }
        }
    };

    let mut gone: Option<String> = None;
    let mut vanished: Vec<bool> = vec![false; m.entries.len()];
    let mut dirty = false;
    let mut last_save = Instant::now();
    let mut save_error: Option<String> = None;
    let cancel = opts.cancel.clone();
    let resumed_bytes = cp.bytes_done;
    pool_threads(
        report.concurrency.threads,
        todo.len(),
        &stop,
        throttle.as_ref(),
        &counter,
        &body,
        &mut |ev| match ev {
            Event::Done(j, out) => {
                let s = todo[j];
                let seg = segs[s];
                let mut finished = true;
                match out {
                    SegOut::Ok(bad) => {
                        cp.done.set(s as u64);
                        cp.bytes_done += seg.bytes;
                        if let Some(b) = bad {
                            let slot = cp.bad.entry(seg.file).or_insert(b);
                            if b.offset < slot.offset {
                                *slot = b;
                            }
                        }
                        dirty = true;
                    }
                    SegOut::Unreadable(e) => {
                        cp.done.set(s as u64);
                        cp.unreadable.entry(seg.file).or_insert(e);
                        dirty = true;
                    }
                    SegOut::Vanished => vanished[seg.file as usize] = true,
                    SegOut::Gone(d) => {
                        gone.get_or_insert(d);
                        stop.store(true, Ordering::Relaxed);
                        finished = false;
                    }
                    SegOut::Stopped | SegOut::OverBudget => finished = false,
                }
                if finished {
                    if let Some(n) = remaining.get_mut(&seg.file) {
                        *n -= 1;
                        if *n == 0 {
                            p.files_done += 1;
                        }
                    }
                }
            }
            Event::Tick => {
                if cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)) {
                    stop.store(true, Ordering::Relaxed);
                }
                p.bytes_done = resumed_bytes + counter.load(Ordering::Relaxed);
                progress(&p);
                if dirty && last_save.elapsed() >= CHECKPOINT_INTERVAL {
                    match cp.save(&cp_path, &key) {
                        Ok(()) => dirty = false,
                        Err(e) => {
                            save_error.get_or_insert(format!("{}: {e}", cp_path.display()));
                        }
                    }
                    last_save = Instant::now();
                }
            }
        },
    );
    report.bytes_read = counter.load(Ordering::Relaxed);

    let mut partly_unread = vec![false; m.entries.len()];
    for (i, seg) in segs.iter().enumerate() {
        if !cp.done.get(i as u64) {
            partly_unread[seg.file as usize] = true;
        }
    }
    // Findings, in manifest order, then the added entries.
    for (i, e) in m.entries.iter().enumerate() {
        let mut f = listed[i].take();
        if let Pre::Check { actual, size_bad } = &pre[i] {
            let idx = i as u32;
            let content = if let Some(err) = cp.unreadable.get(&idx) {
                Some(Status::Unreadable { error: err.clone() })
            } else if vanished[i] {
                Some(Status::Missing)
            } else {
                let bad = match (cp.bad.get(&idx).copied(), *size_bad) {
                    (Some(a), Some(b)) => Some(if a.offset < b.offset { a } else { b }),
                    (a, b) => a.or(b),
                };
                bad.map(|b| Status::Modified {
                    first_bad_offset: b.offset,
                    change: b.change,
                    expected_size: e.size,
                    actual_size: *actual,
                })
            };
            if content.is_none() && !partly_unread[i] && sample.is_none() {
                report.counts.files_content_checked += 1;
            }
            if let Some(st) = content {
                let mode = f.as_ref().and_then(|x| x.mode.clone());
                let mut x = finding(&e.path, e.kind, st);
                x.mode = mode;
                f = Some(x);
            }
        }
        match f {
            Some(x) => {
                let c = &mut report.counts;
                match x.status {
                    Status::Modified { .. } => c.modified += 1,
                    Status::Missing => c.missing += 1,
                    Status::Unreadable { .. } => c.unreadable += 1,
                    Status::TypeChanged { .. } => c.type_changed += 1,
                    Status::ModeChanged | Status::Added { .. } => {}
                }
                if x.mode.is_some() {
                    c.mode_changed += 1;
                }
                report.findings.push(x);
            }
            None => {
                report.counts.ok += 1;
                if mtime_moved[i] {
                    report.counts.mtime_changed += 1;
                }
            }
        }
    }
    for n in &w.nodes {
        if m.find(n.path.as_bytes()).is_none() {
            report.counts.added += 1;
            report
                .findings
                .push(finding(&n.path, n.kind, Status::Added { size: n.size }));
        }
    }
    let all_done = todo.iter().all(|&s| cp.done.get(s as u64));
    let cancelled = cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed));
    let reason = if let Some(g) = gone {
        Some(format!("the medium went away: {g}"))
    } else if !root_present(root, root_id) {
        Some("the medium went away".to_owned())
    } else if cancelled && !all_done {
        Some("cancelled".to_owned())
    } else {
        None
    };
    let save = |cp: &mut Checkpoint, report: &mut VerifyReport| match cp.save(&cp_path, &key) {
        Ok(()) => report.checkpoint = Some(cp_path.clone()),
        Err(e) => {
            report.checkpoint = None;
            report.checkpoint_ignored = Some(format!(
                "could not save the checkpoint {}: {e}",
                cp_path.display()
            ));
        }
    };
    let pass_bytes = report.bytes_planned;
    if let Some(reason) = reason {
        save(&mut cp, &mut report);
        if let Some(e) = save_error {
            report.checkpoint_ignored.get_or_insert(e);
        }
        report.outcome = Outcome::Interrupted { reason };
    } else if matches!(opts.mode, VerifyMode::Rolling { .. }) {
        let covered = cp.bytes_done;
        let prev_completed = cp.last_pass_completed_unix;
        let pass = cp.pass;
        if all_done {
            // This pass's findings are in the report; the next run starts a new pass.
            let mut next = Checkpoint::new(digest, "rolling", None, 0, segs.len() as u64);
            next.pass = cp.pass + 1;
            next.last_pass_completed_unix = Some(now_unix());
            save(&mut next, &mut report);
            report.rolling = Some(RollingInfo {
                pass,
                covered_bytes: covered,
                total_bytes: pass_bytes,
                pass_completed: true,
                last_pass_completed: Some(rfc3339(now_unix())),
            });
        } else {
            save(&mut cp, &mut report);
            report.outcome = Outcome::Partial {
                reason: if over_budget.load(Ordering::Relaxed) {
                    "rolling budget reached; the next run continues".into()
                } else {
                    "stopped before the end of the pass; the next run continues".into()
                },
            };
            report.rolling = Some(RollingInfo {
                pass,
                covered_bytes: covered,
                total_bytes: pass_bytes,
                pass_completed: false,
                last_pass_completed: prev_completed.map(rfc3339),
            });
        }
    } else if all_done {
        match std::fs::remove_file(&cp_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                report.checkpoint_ignored =
                    Some(format!("could not remove {}: {e}", cp_path.display()))
            }
        }
    } else {
        save(&mut cp, &mut report);
        report.outcome = Outcome::Partial {
            reason: "stopped early; the next run continues".into(),
        };
    }

    report.exit_code = report.compute_exit();
    report.elapsed_secs = started.elapsed().as_secs_f64();
    Ok(report)
}

fn interrupted(mut report: VerifyReport, reason: &str, started: Instant) -> VerifyReport {
    report.outcome = Outcome::Interrupted {
        reason: reason.to_owned(),
    };
    report.exit_code = EXIT_NOT_VERIFIED;
    report.elapsed_secs = started.elapsed().as_secs_f64();
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::manifest::tests::sample_manifest;
    use crate::backup::manifest::Entry;
    use std::path::Path;

    fn file(path: &str, size: u64, cs: u64) -> Entry {
        let n = size.div_ceil(cs) as usize;
        Entry {
            path: RawPath(path.as_bytes().to_vec()),
            kind: EntryKind::File,
            mode: 0o644,
            mtime: 0,
            mtime_ns: 0,
            size,
            sha256: Some([0; 32]),
            chunks: vec![[0; 32]; n],
            target: None,
            entropy_cb: None,
        }
    }

    fn manifest(sizes: &[u64]) -> Manifest {
        let cs = crate::backup::CHUNK_SIZE;
        Manifest {
            entries: sizes
                .iter()
                .enumerate()
                .map(|(i, &s)| file(&format!("f{i:03}"), s, cs))
                .collect(),
            ..sample_manifest()
        }
    }

    #[test]
    fn full_plan_covers_every_chunk_once_in_segments() {
        let cs = crate::backup::CHUNK_SIZE;
        let sizes = [0, 1, cs, cs + 1, 40 * cs + 5];
        let m = manifest(&sizes);
        let segs = plan(&m, None);
        // 0 + 1 + 1 + 1 + 3 segments (41 chunks in 16 + 16 + 9).
        assert_eq!(segs.len(), 6);
        assert!(segs
            .iter()
            .all(|s| s.count >= 1 && s.count <= SEGMENT_CHUNKS));
        let bytes: u64 = segs.iter().map(|s| s.bytes).sum();
        assert_eq!(bytes, sizes.iter().sum::<u64>());
        let last = segs.last().unwrap();
        assert_eq!(
            (last.file, last.first, last.count, last.bytes),
            (4, 32, 9, 8 * cs + 5)
        );
    }

    #[test]
    fn sample_plan_is_reproducible_and_near_its_share() {
        let cs = crate::backup::CHUNK_SIZE;
        let m = manifest(&[1000 * cs, 1000 * cs]);
        let a = plan(&m, Some((0.05, 7)));
        assert_eq!(a.len(), plan(&m, Some((0.05, 7))).len());
        let chunks: u64 = a.iter().map(|s| s.count).sum();
        assert!((60..=140).contains(&chunks), "{chunks} of 2000");
        let b: u64 = plan(&m, Some((0.05, 8))).iter().map(|s| s.count).sum();
        assert_ne!(
            (chunks, a[0].first),
            (b, plan(&m, Some((0.05, 8)))[0].first)
        );
        // A tiny share still reads one chunk.
        let one = manifest(&[10]);
        assert_eq!(plan(&one, Some((1e-9, 1))).len(), 1);
        assert!(plan(&manifest(&[0]), Some((0.5, 1))).is_empty());
    }

    #[test]
    fn sample_fraction_parsing() {
        assert_eq!("5%".parse::<SampleFraction>().unwrap().get(), 0.05);
        assert_eq!(" 0.25 ".parse::<SampleFraction>().unwrap().get(), 0.25);
        assert_eq!("100%".parse::<SampleFraction>().unwrap().get(), 1.0);
        for bad in ["0", "0%", "-1", "1.5", "150%", "NaN", "x", ""] {
            assert!(bad.parse::<SampleFraction>().is_err(), "{bad}");
        }
    }

    #[test]
    fn exit_codes_follow_the_outcome() {
        let mut r = VerifyReport {
            outcome: Outcome::Complete,
            exit_code: 0,
            root: PathBuf::new(),
            manifest: ManifestInfo {
                path: PathBuf::new(),
                source: "given",
                medium: "m".into(),
                generation: 1,
                created: String::new(),
                flagged: false,
                flag_reasons: vec![],
            },
            mode: "full",
            sample_fraction: None,
            sample_seed: None,
            concurrency: decide(Concurrency::Sequential, Path::new("/")),
            counts: Counts::default(),
            findings: vec![],
            bytes_read: 0,
            bytes_resumed: 0,
            bytes_planned: 0,
            resumed: false,
            checkpoint: None,
            checkpoint_ignored: None,
            rolling: None,
            elapsed_secs: 0.0,
        };
        assert_eq!(r.compute_exit(), 0);
        r.findings.push(finding(
            &RawPath(b"a".to_vec()),
            EntryKind::File,
            Status::Missing,
        ));
        assert_eq!(r.compute_exit(), 1);
        r.outcome = Outcome::Interrupted { reason: "x".into() };
        assert_eq!(r.compute_exit(), 2);
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["outcome"], "interrupted");
        assert_eq!(j["findings"][0]["status"], "missing");
        assert_eq!(j["findings"][0]["path"], "a");
    }
}
