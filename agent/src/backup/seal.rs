//! Sealing a backup generation: walk, hash, score, sign, store.

use super::device::{decide, Concurrency, ConcurrencyChoice};
use super::key::Key;
use super::manifest::{Entry, EntryKind, Manifest, Totals};
use super::read::{hash_file, maybe_medium_gone, open_nofollow, pool, Event, FileHash, ReadErr};
use super::score::{file_name, Sampled, Score, ScoringRules};
use super::walk::{join, walk};
use super::{
    manifest_dir, now_unix, write_atomic, Error, MediumName, Phase, Progress, Result, CHUNK_SIZE,
    MEDIUM_DIR,
};
use serde::Serialize;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// What to seal and how.
#[derive(Clone, Debug)]
pub struct SealOptions {
    /// The directory to seal (usually the mount point of the medium).
    pub root: PathBuf,
    /// The medium's name.
    pub medium: MediumName,
    /// The key file (default `<state>/backup.key`).
    pub key_file: PathBuf,
    /// The agent's state directory; the manifest is always kept in
    /// `<state>/manifests/<medium>/<generation>.json`.
    pub state_dir: PathBuf,
    /// Also write the manifest here.
    pub manifest_out: Option<PathBuf>,
    /// The previous generation's manifest to score against (default: the newest in the
    /// state directory for this medium).
    pub previous: Option<PathBuf>,
    /// Also write the manifest to `<root>/.setten/manifest.json`.
    pub copy_to_medium: bool,
    /// Seal even when the score finds the source suspicious (the manifest is then
    /// flagged).
    pub force: bool,
    /// How many threads read.
    pub concurrency: Concurrency,
    /// Scoring rules.
    pub rules: ScoringRules,
    /// Set to stop early (the seal then fails; nothing is written).
    pub cancel: Option<Arc<AtomicBool>>,
}

impl SealOptions {
    /// Options with the defaults: key `<state>/backup.key`, no extra copies, automatic
    /// concurrency, built-in rules, no force.
    pub fn new(
        root: impl Into<PathBuf>,
        medium: MediumName,
        state_dir: impl Into<PathBuf>,
    ) -> Self {
        let state_dir = state_dir.into();
        SealOptions {
            root: root.into(),
            medium,
            key_file: super::default_key_file(&state_dir),
            state_dir,
            manifest_out: None,
            previous: None,
            copy_to_medium: false,
            force: false,
            concurrency: Concurrency::Auto,
            rules: ScoringRules::defaults(),
            cancel: None,
        }
    }
}

/// What [`seal`] did.
#[derive(Clone, Debug, Serialize)]
pub struct SealReport {
    /// The manifest in the state directory.
    pub manifest_path: PathBuf,
    /// Other copies written (`manifest_out`, the medium copy).
    pub copies: Vec<PathBuf>,
    /// The medium.
    pub medium: String,
    /// The generation sealed.
    pub generation: u64,
    /// Id of the signing key.
    pub key_id: String,
    /// Counts.
    pub totals: Totals,
    /// The score; `score.reasons` is not empty when the generation is flagged.
    pub score: Score,
    /// Sealed despite a suspicious score.
    pub flagged: bool,
    /// Files whose size or mtime changed while they were read (the manifest holds what
    /// was read); sealing a tree that is still being written is a mistake.
    pub changed_during_seal: Vec<String>,
    /// Reader threads and why.
    pub concurrency: ConcurrencyChoice,
    /// Wall time.
    pub elapsed_secs: f64,
}

/// The newest generation kept for a medium: `(generation, path)`.
pub fn latest_manifest(state_dir: &Path, medium: &MediumName) -> Option<(u64, PathBuf)> {
    let dir = manifest_dir(state_dir, medium);
    std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name();
            let gen: u64 = name.to_str()?.strip_suffix(".json")?.parse().ok()?;
            Some((gen, e.path()))
        })
        .max_by_key(|(g, _)| *g)
}

/// Reads and authenticates a manifest file.
pub(crate) fn load_manifest(path: &Path, key: &Key) -> Result<(Manifest, Vec<u8>)> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, "open manifest", e))?;
    let mut bytes = Vec::new();
    f.take(super::manifest::MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, "read manifest", e))?;
    let m = Manifest::decode(&bytes, key).map_err(|source| Error::Manifest {
        path: path.to_path_buf(),
        source,
    })?;
    Ok((m, bytes))
}

/// Refuses a key file inside the backup tree.
pub(crate) fn check_key_off_medium(key_file: &Path, root: &Path) -> Result<()> {
    if let (Ok(k), Ok(r)) = (std::fs::canonicalize(key_file), std::fs::canonicalize(root)) {
        if k.starts_with(&r) {
            return Err(Error::KeyOnMedium {
                key: key_file.to_path_buf(),
                root: root.to_path_buf(),
            });
        }
    }
    Ok(())
}

enum Hashed {
    Done(FileHash, Sampled),
    Failed(std::io::Error),
    Gone(String),
    Stopped,
}

/// Seals `opts.root` as the next generation of `opts.medium`.
///
/// Fails without writing anything when the key is missing or on the medium, the previous
/// generation's manifest does not authenticate, any entry cannot be read, the medium
/// goes away, or the score is suspicious and `force` is not set.
pub fn seal(opts: &SealOptions, progress: &mut dyn FnMut(&Progress)) -> Result<SealReport> {
    let started = Instant::now();
    let key = Key::load(&opts.key_file)?;
    let root = &opts.root;
    let rmd = std::fs::metadata(root).map_err(|e| Error::RootUnavailable {
        path: root.clone(),
        source: e,
    })?;
    check_key_off_medium(&opts.key_file, root)?;

    let latest = latest_manifest(&opts.state_dir, &opts.medium);
    let prev_path = opts
        .previous
        .clone()
        .or_else(|| latest.as_ref().map(|l| l.1.clone()));
    let prev = match &prev_path {
        Some(p) => {
            let (m, _) = load_manifest(p, &key)?;
            if m.medium != opts.medium.as_str() {
                return Err(Error::MediumMismatch {
                    path: p.clone(),
                    found: m.medium,
                    expected: opts.medium.to_string(),
                });
            }
            Some(m)
        }
        None => None,
    };

    let mut p = Progress::default();
    let w = walk(root, &mut |n| {
        p.files_done = n;
        progress(&p);
    })?;
    if !w.errors.is_empty() {
        return Err(Error::SealUnreadable {
            unreadable: w
                .errors
                .iter()
                .take(1000)
                .map(|(p, e)| (p.to_string(), e.to_string()))
                .collect(),
        });
    }

    let files: Vec<usize> = (0..w.nodes.len())
        .filter(|&i| w.nodes[i].kind == EntryKind::File)
        .collect();
    let choice = decide(opts.concurrency, root);
    let stop = AtomicBool::new(false);
    let counter = AtomicU64::new(0);
    let cancel = opts.cancel.clone();
    let rules = &opts.rules;
    let root_id = (rmd.dev(), rmd.ino());
    p = Progress {
        phase: Phase::Reading,
        bytes_done: 0,
        bytes_total: files.iter().map(|&i| w.nodes[i].size).sum(),
        files_done: 0,
        files_total: files.len() as u64,
    };
    progress(&p);

    let work = |r: &mut super::read::Reader<'_>, j: usize| -> Hashed {
        let node = &w.nodes[files[j]];
        let path = join(root, &node.path.0);
        let res = (|| {
            let mut f = open_nofollow(&path, false)?;
            let md = f.metadata()?;
            if !md.is_file() {
                return Err(ReadErr::Io(std::io::Error::other(
                    "no longer a regular file",
                )));
            }
            let mut h = hash_file(r, &mut f, md.len(), CHUNK_SIZE, rules.sample_bytes())?;
            if let Ok(after) = f.metadata() {
                if after.len() != h.size
                    || after.mtime() != md.mtime()
                    || after.mtime_nsec() != md.mtime_nsec()
                {
                    h.changed = true;
                }
            }
            Ok(h)
        })();
        match res {
            Ok(h) => {
                let s = rules.sample(file_name(&node.path.0), &h.sample, h.size);
                Hashed::Done(h, s)
            }
            Err(ReadErr::Stopped) => Hashed::Stopped,
            Err(ReadErr::Io(e)) => {
                if maybe_medium_gone(&e) && !root_present(root, root_id) {
                    Hashed::Gone(format!("{}: {e}", node.path))
                } else {
                    Hashed::Failed(e)
                }
            }
        }
    };
    let mut hashed: Vec<Option<(FileHash, Sampled)>> = (0..files.len()).map(|_| None).collect();
    let mut failed: Vec<(String, String)> = Vec::new();
    let mut gone: Option<String> = None;
    pool(
        choice.threads,
        files.len(),
        &stop,
        None,
        &counter,
        &work,
        &mut |ev| match ev {
            Event::Done(j, h) => {
                p.files_done += 1;
                match h {
                    Hashed::Done(h, s) => hashed[j] = Some((h, s)),
                    Hashed::Failed(e) => {
                        if failed.len() < 1000 {
                            failed.push((w.nodes[files[j]].path.to_string(), e.to_string()));
                        }
                    }
                    Hashed::Gone(d) => {
                        gone.get_or_insert(d);
                        stop.store(true, Ordering::Relaxed);
                    }
                    Hashed::Stopped => {}
                }
            }
            Event::Tick => {
                if cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)) {
                    stop.store(true, Ordering::Relaxed);
                }
                p.bytes_done = counter.load(Ordering::Relaxed);
                progress(&p);
            }
        },
    );
    if let Some(detail) = gone {
        return Err(Error::SealInterrupted {
            root: root.clone(),
            detail,
        });
    }
    if stop.load(Ordering::Relaxed) || !root_present(root, root_id) {
        return Err(Error::SealInterrupted {
            root: root.clone(),
            detail: "cancelled or the root changed".into(),
        });
    }
    if !failed.is_empty() {
        return Err(Error::SealUnreadable { unreadable: failed });
    }

    let mut entries = Vec::with_capacity(w.nodes.len());
    let mut mismatch = Vec::with_capacity(w.nodes.len());
    let mut changed = Vec::new();
    let mut hashed = hashed.into_iter();
    for n in &w.nodes {
        let mut e = Entry {
            path: n.path.clone(),
            kind: n.kind,
            mode: n.mode,
            mtime: n.mtime,
            mtime_ns: n.mtime_ns,
            size: 0,
            sha256: None,
            chunks: Vec::new(),
            target: n.target.clone(),
            entropy_cb: None,
        };
        let mut mis = false;
        if n.kind == EntryKind::File {
            let Some((h, s)) = hashed.next().flatten() else {
                return Err(Error::SealInterrupted {
                    root: root.clone(),
                    detail: format!("{}: not read", n.path),
                });
            };
            if h.changed {
                changed.push(n.path.to_string());
            }
            e.size = h.size;
            e.sha256 = Some(h.sha256);
            e.chunks = h.chunks;
            e.entropy_cb = s.entropy_cb;
            mis = s.mismatch;
        }
        entries.push(e);
        mismatch.push(mis);
    }

    let score = rules.score(&entries, &mismatch, prev.as_ref());
    if score.suspicious() && !opts.force {
        return Err(Error::Suspicious {
            score: Box::new(score),
        });
    }
    let generation = latest
        .map(|l| l.0)
        .max(prev.as_ref().map(|m| m.generation))
        .unwrap_or(0)
        + 1;
    let m = Manifest {
        medium: opts.medium.to_string(),
        generation,
        created_unix: now_unix(),
        tool: format!("setten-agent {}", env!("CARGO_PKG_VERSION")),
        root: root.display().to_string(),
        chunk_size: CHUNK_SIZE,
        flagged: score.suspicious(),
        score,
        entries,
    };
    let bytes = m.encode(&key);
    let path = manifest_dir(&opts.state_dir, &opts.medium).join(format!("{generation}.json"));
    write_atomic(&path, &bytes, true).map_err(|e| Error::io(&path, "write manifest", e))?;
    let mut copies = Vec::new();
    if let Some(out) = &opts.manifest_out {
        write_atomic(out, &bytes, false).map_err(|e| Error::io(out, "write manifest", e))?;
        copies.push(out.clone());
    }
    if opts.copy_to_medium {
        let out = root.join(MEDIUM_DIR).join("manifest.json");
        write_atomic(&out, &bytes, false)
            .map_err(|e| Error::io(&out, "write manifest copy on the medium", e))?;
        copies.push(out);
    }
    Ok(SealReport {
        manifest_path: path,
        copies,
        medium: m.medium.clone(),
        generation,
        key_id: key.id(),
        totals: Totals::of(&m.entries),
        flagged: m.flagged,
        score: m.score,
        changed_during_seal: changed,
        concurrency: choice,
        elapsed_secs: started.elapsed().as_secs_f64(),
    })
}

/// The root is still the directory it was (same device and inode): the medium was not
/// unmounted or replaced.
pub(crate) fn root_present(root: &Path, id: (u64, u64)) -> bool {
    std::fs::metadata(root).is_ok_and(|m| (m.dev(), m.ino()) == id)
        && std::fs::read_dir(root).is_ok()
}
