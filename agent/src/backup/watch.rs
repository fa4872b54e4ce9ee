//! Media watching for the long-running agent: which configured backup media are
//! connected, for how long, and whether they still hold what was sealed.
//!
//! Mounts are seen by reading `/proc/self/mountinfo` whenever the kernel marks it
//! changed — poll(2) reports `POLLPRI | POLLERR` on the open file after a mount or
//! unmount (proc(5), "/proc/pid/mountinfo") — and at least every 10 s in any case.
//! inotify cannot see mounts (notify's issue #355). A mounted filesystem is matched to a
//! configured medium by filesystem UUID or label — read from `/dev/disk/by-uuid` and
//! `/dev/disk/by-label` where udev keeps them, else from the superblock — or, for a
//! medium configured without either, by the manifest copy the seal left on it
//! (`.setten/manifest.json`).
//!
//! For each medium the watcher records a timeline (`mount`, `unmount` with the time
//! connected), verifies it on mount in its configured mode (a verification in progress
//! is cancelled when the medium goes away: it then reports `failed`, and its checkpoint
//! lets the next mount resume), reports `over_window` once per mount when the medium
//! stays connected longer than its window (a medium left connected is not offline), and
//! `stale` when it has not been verified for `max_days` (at most once a day).
//!
//! Folders where backup software drops finished sets are watched with `notify`: when a
//! folder has been quiet for its `settle` time after a change, its content is sealed as
//! the next generation of its medium — unless the scoring finds it suspicious, which is
//! reported (`seal` with `flagged`) and not sealed.
//!
//! The findings (see [`super::finding`]) go to `emit`; the watcher's own memory of
//! media (last verification, last `stale` report) is in `<state>/media-state.json`.

use super::finding::{self, MediumId};
use super::{MediumName, SealOptions, VerifyMode, VerifyOptions};
use crate::findings::Body;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the watcher waits for a mount change before it looks at windows, results
/// and folders again.
pub const RESCAN: Duration = Duration::from_millis(200);
/// Longest time between two readings of the mount table when poll(2) reports no change
/// (a safety net: the kernel reports every mount and unmount).
const REREAD: Duration = Duration::from_secs(10);
/// Largest mount table read.
const MAX_MOUNTINFO: u64 = 4 << 20;
/// Name of the watcher's state file in the state directory.
pub const STATE_FILE: &str = "media-state.json";
/// How often `stale` may be reported for one medium.
const STALE_EVERY_US: u64 = 86_400_000_000;

/// A configured medium.
#[derive(Clone, Debug, PartialEq)]
pub struct MediumConfig {
    /// Its name (as sealed).
    pub name: MediumName,
    /// Filesystem UUID (as `blkid` prints it; compared without case).
    pub uuid: Option<String>,
    /// Filesystem label.
    pub label: Option<String>,
    /// Where the backup is on the medium, relative to its root ("" for the root).
    pub subdir: PathBuf,
    /// Verification on mount; `None`: only the timeline.
    pub verify: Option<VerifyMode>,
    /// Longest time the medium may stay connected.
    pub window: Option<Duration>,
    /// Report when not verified for longer than this many days.
    pub max_days: Option<f64>,
}

/// A folder where finished backup sets are dropped.
#[derive(Clone, Debug, PartialEq)]
pub struct FolderConfig {
    /// The medium name its generations are sealed under.
    pub name: MediumName,
    /// The folder.
    pub path: PathBuf,
    /// Quiet time after the last change before sealing.
    pub settle: Duration,
}

/// What the watcher watches.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WatchConfig {
    /// Media.
    pub media: Vec<MediumConfig>,
    /// Drop folders.
    pub folders: Vec<FolderConfig>,
    /// The backup key.
    pub key_file: PathBuf,
    /// The agent's state directory (manifests, checkpoints, the watcher's state).
    pub state_dir: PathBuf,
    /// How often the `stale` check runs.
    pub stale_check: Duration,
}

impl WatchConfig {
    /// Nothing to watch.
    pub fn is_empty(&self) -> bool {
        self.media.is_empty() && self.folders.is_empty()
    }
}

/// The watcher's memory of one medium, kept across restarts.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct MediumState {
    /// When it was last verified completely without failure (µs since the epoch).
    pub last_verified_us: Option<u64>,
    /// The last verification's result.
    pub last_result: Option<String>,
    /// When it was first configured (the start of "never verified").
    pub first_seen_us: Option<u64>,
    /// When `stale` was last reported.
    pub last_stale_us: Option<u64>,
    /// Last mount and unmount.
    pub last_mount_us: Option<u64>,
    /// Last unmount.
    pub last_unmount_us: Option<u64>,
}

fn load_state(path: &Path) -> BTreeMap<String, MediumState> {
    let Ok(f) = std::fs::File::open(path) else {
        return BTreeMap::new();
    };
    let mut text = Vec::new();
    if f.take(MAX_MOUNTINFO).read_to_end(&mut text).is_err() {
        return BTreeMap::new();
    }
    serde_json::from_slice(&text).unwrap_or_else(|e| {
        tracing::warn!(
            "{}: {e}; media state starts afresh (last verification times are forgotten)",
            path.display()
        );
        BTreeMap::new()
    })
}

fn save_state(path: &Path, s: &BTreeMap<String, MediumState>) {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let write = || -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(s).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, text)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        tracing::warn!("{}: {e}", path.display());
    }
}

/// One mounted filesystem.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Mount {
    dev: (u32, u32),
    mount_point: PathBuf,
    source: PathBuf,
}

fn read_mounts(file: &mut std::fs::File) -> Vec<Mount> {
    let mut text = Vec::new();
    if file.rewind().is_err() || file.take(MAX_MOUNTINFO).read_to_end(&mut text).is_err() {
        return Vec::new();
    }
    super::device::parse_mountinfo(&text)
        .into_iter()
        // Only a filesystem's root: bind mounts of a subdirectory are not the medium.
        .filter(|m| m.root == b"/")
        .map(|m| Mount {
            dev: (m.major, m.minor),
            mount_point: PathBuf::from(std::ffi::OsStr::from_bytes(&m.mount_point)),
            source: PathBuf::from(std::ffi::OsStr::from_bytes(&m.source)),
        })
        .collect()
}

/// Filesystem UUID and label of a block device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FsIds {
    /// UUID as `blkid` shows it.
    pub uuid: Option<String>,
    /// Label.
    pub label: Option<String>,
}

/// The UUID and label of the filesystem on `dev` (major, minor): from udev's
/// `/dev/disk/by-uuid` and `/dev/disk/by-label` links when they point at it, else read
/// from the superblock of `source` (needs read access to the device).
fn fs_ids(dev: (u32, u32), source: &Path) -> FsIds {
    let mut ids = FsIds::default();
    for (dir, slot) in [
        ("/dev/disk/by-uuid", &mut ids.uuid),
        ("/dev/disk/by-label", &mut ids.label),
    ] {
        let Ok(rd) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in rd.flatten().take(4096) {
            if device_number(&e.path()) == Some(dev) {
                *slot = Some(unescape_udev(&e.file_name().to_string_lossy()));
                break;
            }
        }
    }
    if ids.uuid.is_none() && ids.label.is_none() && device_number(source) == Some(dev) {
        if let Ok(mut f) = std::fs::File::open(source) {
            let mut head = vec![0u8; 2048];
            if f.read_exact(&mut head).is_ok() {
                ids = superblock_ids(&head);
            }
        }
    }
    ids
}

/// udev escapes characters in link names as `\xHH` (e.g. a space as `\x20`).
fn unescape_udev(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            if let Some(v) = b
                .get(i + 2..i + 4)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn device_number(path: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m = std::fs::metadata(path).ok()?;
    if !m.file_type().is_block_device() {
        return None;
    }
    Some((
        super::device::major(m.rdev()),
        super::device::minor(m.rdev()),
    ))
}

/// UUID and label from the first 2 KiB of a filesystem: ext2/3/4 and FAT12/16/32.
///
/// ext: the superblock starts at byte 1024; magic 0xEF53 (little-endian) at +0x38,
/// `s_uuid` (16 bytes) at +0x68, `s_volume_name` (16 bytes) at +0x78 (Linux
/// Documentation/filesystems/ext4/super.rst).
/// FAT: boot sector signature 0x55 0xAA at 510; `BPB_FATSz16` at 0x16 is 0 on FAT32,
/// whose volume serial is at 0x43 and label (11 bytes) at 0x47; FAT12/16 have them at
/// 0x27 and 0x2B (Microsoft FAT specification, "fatgen103", section 3). `blkid` shows
/// the serial as `XXXX-XXXX`, high half first.
pub fn superblock_ids(head: &[u8]) -> FsIds {
    let get = |at: usize, len: usize| head.get(at..at + len);
    if get(1024 + 0x38, 2) == Some(&[0x53, 0xEF]) {
        let uuid = get(1024 + 0x68, 16).map(|u| {
            let h: String = u.iter().map(|b| format!("{b:02x}")).collect();
            format!(
                "{}-{}-{}-{}-{}",
                &h[0..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..32]
            )
        });
        let label = get(1024 + 0x78, 16).and_then(|l| {
            let end = l.iter().position(|&b| b == 0).unwrap_or(l.len());
            let s = String::from_utf8_lossy(&l[..end]).trim().to_owned();
            (!s.is_empty()).then_some(s)
        });
        return FsIds { uuid, label };
    }
    if get(510, 2) == Some(&[0x55, 0xAA]) {
        let fat32 = get(0x16, 2) == Some(&[0, 0]);
        let (serial_at, label_at, type_at) = if fat32 {
            (0x43, 0x47, 0x52)
        } else {
            (0x27, 0x2B, 0x36)
        };
        // Only a FAT boot sector names its type ("FAT12   ", "FAT16   ", "FAT32   ").
        if get(type_at, 3).is_none_or(|t| t != b"FAT") {
            return FsIds::default();
        }
        let uuid = get(serial_at, 4).map(|s| {
            let v = u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
            format!("{:04X}-{:04X}", v >> 16, v & 0xffff)
        });
        let label = get(label_at, 11).and_then(|l| {
            let s = String::from_utf8_lossy(l).trim_end().to_owned();
            (!s.is_empty() && s != "NO NAME").then_some(s)
        });
        return FsIds { uuid, label };
    }
    FsIds::default()
}

/// Which configured medium a mounted filesystem is, if any.
fn identify(media: &[MediumConfig], m: &Mount, ids: &FsIds) -> Option<usize> {
    let eq = |a: &Option<String>, b: &Option<String>| match (a, b) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        _ => false,
    };
    if let Some(i) = media
        .iter()
        .position(|c| eq(&c.uuid, &ids.uuid) || eq(&c.label, &ids.label))
    {
        return Some(i);
    }
    // Media configured by name only: the manifest copy on the medium says which it is.
    media.iter().position(|c| {
        c.uuid.is_none()
            && c.label.is_none()
            && on_medium_name(&m.mount_point.join(&c.subdir)).as_deref() == Some(c.name.as_str())
    })
}

/// The medium name in the manifest copy at `<root>/.setten/manifest.json`. Only the
/// name is taken from it (verification checks the signature); the file is read bounded.
fn on_medium_name(root: &Path) -> Option<String> {
    let path = root.join(super::MEDIUM_DIR).join("manifest.json");
    let f = std::fs::File::open(path).ok()?;
    let mut text = Vec::new();
    f.take(64 << 20).read_to_end(&mut text).ok()?;
    // The signed envelope (`{"format", "key_id", "hmac_sha256", "body": {"medium", …}}`).
    #[derive(Deserialize)]
    struct Head {
        medium: String,
    }
    #[derive(Deserialize)]
    struct Envelope {
        body: Head,
    }
    serde_json::from_slice::<Envelope>(&text)
        .ok()
        .map(|e| e.body.medium)
}

/// A medium that is mounted now.
struct Connected {
    index: usize,
    id: MediumId,
    mount: Mount,
    since: Instant,
    over_window_reported: bool,
    verify: Option<(JoinHandle<()>, Arc<AtomicBool>)>,
}

enum Event {
    Verified {
        index: usize,
        ok: bool,
        result: String,
        body: Body,
    },
    FolderChanged(usize),
}

fn now_us() -> u64 {
    crate::ship::now_us()
}

/// Runs the watcher until `stop` is set. Returns at once when nothing is configured.
pub fn spawn(
    cfg: WatchConfig,
    emit: Emit,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("setten-media".into())
        .spawn(move || watch(cfg, emit, stop))
}

fn watch(cfg: WatchConfig, emit: Emit, stop: Arc<AtomicBool>) {
    let state_path = cfg.state_dir.join(STATE_FILE);
    let mut state = load_state(&state_path);
    for m in &cfg.media {
        state
            .entry(m.name.as_str().to_owned())
            .or_default()
            .first_seen_us
            .get_or_insert_with(now_us);
    }
    save_state(&state_path, &state);
    let (tx, rx) = channel::<Event>();
    let _folder_watcher = watch_folders(&cfg.folders, tx.clone());
    let mut pending_seal: HashMap<usize, Instant> = HashMap::new();

    let mut mountinfo = match std::fs::File::open("/proc/self/mountinfo") {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!("/proc/self/mountinfo: {e}; backup media cannot be watched");
            None
        }
    };
    let mut connected: HashMap<Mount, Connected> = HashMap::new();
    let mut last_stale_check: Option<Instant> = None;
    let mut first = true;
    let mut changed = true;
    let mut last_read = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if let Some(f) = mountinfo.as_mut() {
            if !cfg.media.is_empty() && (changed || last_read.elapsed() >= REREAD) {
                last_read = Instant::now();
                let mounts = read_mounts(f);
                scan(
                    &cfg,
                    &mounts,
                    &mut connected,
                    &mut state,
                    &state_path,
                    &emit,
                    &tx,
                    first,
                );
                first = false;
            }
        }
        // Windows.
        for c in connected.values_mut() {
            let Some(window) = cfg.media[c.index].window else {
                continue;
            };
            let held = c.since.elapsed();
            if held > window && !c.over_window_reported {
                c.over_window_reported = true;
                tracing::warn!(
                    "backup medium {} has been connected for {:.0} s, longer than its window of {:.0} s: it is not offline",
                    c.id.name,
                    held.as_secs_f64(),
                    window.as_secs_f64()
                );
                emit(vec![finding::over_window(
                    &c.id,
                    now_us(),
                    &c.mount.mount_point.to_string_lossy(),
                    held.as_secs_f64(),
                    window.as_secs_f64(),
                )]);
            }
        }
        // Not verified for too long.
        if last_stale_check.is_none_or(|t| t.elapsed() >= cfg.stale_check) {
            last_stale_check = Some(Instant::now());
            let now = now_us();
            let mut changed = false;
            for m in &cfg.media {
                let Some(max_days) = m.max_days else { continue };
                let s = state.entry(m.name.as_str().to_owned()).or_default();
                let since = s.last_verified_us.or(s.first_seen_us).unwrap_or(now);
                let limit_us = (max_days * 86_400e6) as u64;
                let due = now.saturating_sub(since) > limit_us;
                let quiet = s
                    .last_stale_us
                    .is_some_and(|l| now.saturating_sub(l) < STALE_EVERY_US);
                if due && !quiet {
                    s.last_stale_us = Some(now);
                    changed = true;
                    tracing::warn!(
                        "backup medium {} has not been verified for more than {max_days} days",
                        m.name.as_str()
                    );
                    emit(vec![finding::stale(
                        &MediumId::named(m.name.as_str()),
                        now,
                        s.last_verified_us,
                        max_days,
                    )]);
                }
            }
            if changed {
                save_state(&state_path, &state);
            }
        }
        // Results and folder changes.
        changed = if !cfg.media.is_empty() {
            wait_mount_change(mountinfo.as_ref(), RESCAN)
        } else {
            std::thread::sleep(RESCAN);
            false
        };
        while let Ok(ev) = rx.try_recv() {
            match ev {
                Event::Verified {
                    index,
                    ok,
                    result,
                    body,
                } => {
                    let s = state
                        .entry(cfg.media[index].name.as_str().to_owned())
                        .or_default();
                    if ok {
                        s.last_verified_us = Some(now_us());
                    }
                    s.last_result = Some(result);
                    save_state(&state_path, &state);
                    emit(vec![body]);
                }
                Event::FolderChanged(i) => {
                    pending_seal.insert(i, Instant::now());
                }
            }
        }
        let ready: Vec<usize> = pending_seal
            .iter()
            .filter(|(i, t)| t.elapsed() >= cfg.folders[**i].settle)
            .map(|(i, _)| *i)
            .collect();
        for i in ready {
            pending_seal.remove(&i);
            if let Some(b) = seal_folder(&cfg, &cfg.folders[i], &stop) {
                emit(vec![b]);
            }
        }
        for c in connected.values_mut() {
            if c.verify.as_ref().is_some_and(|(h, _)| h.is_finished()) {
                if let Some((h, _)) = c.verify.take() {
                    let _ = h.join();
                }
            }
        }
    }
    // Stopping: cancel verifications (their checkpoints stay for the next run).
    for c in connected.values_mut() {
        if let Some((h, cancel)) = c.verify.take() {
            cancel.store(true, Ordering::Relaxed);
            let _ = h.join();
        }
    }
    while let Ok(ev) = rx.try_recv() {
        if let Event::Verified { body, .. } = ev {
            emit(vec![body]);
        }
    }
}

/// Waits until the mount table changes or `limit` passes; whether it (may have)
/// changed. The kernel reports a change once per open file (fs/proc_namespace.c,
/// `mounts_poll`), so a reported change is read once, not again on every wake.
fn wait_mount_change(f: Option<&std::fs::File>, limit: Duration) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let Some(f) = f else {
        std::thread::sleep(limit);
        return true;
    };
    let mut fds = [PollFd::new(f, PollFlags::PRI)];
    let t = Timespec {
        tv_sec: i64::try_from(limit.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(limit.subsec_nanos()),
    };
    match poll(&mut fds, Some(&t)) {
        Ok(n) => n > 0,
        Err(_) => {
            std::thread::sleep(limit);
            true
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn scan(
    cfg: &WatchConfig,
    mounts: &[Mount],
    connected: &mut HashMap<Mount, Connected>,
    state: &mut BTreeMap<String, MediumState>,
    state_path: &Path,
    emit: &dyn Fn(Vec<Body>),
    tx: &Sender<Event>,
    first: bool,
) {
    // Gone.
    let gone: Vec<Mount> = connected
        .keys()
        .filter(|m| !mounts.contains(m))
        .cloned()
        .collect();
    for m in gone {
        let Some(mut c) = connected.remove(&m) else {
            continue;
        };
        if let Some((h, cancel)) = c.verify.take() {
            cancel.store(true, Ordering::Relaxed);
            let _ = h.join();
        }
        let held = c.since.elapsed().as_secs_f64();
        tracing::info!(
            "backup medium {} unmounted from {} after {held:.0} s",
            c.id.name,
            m.mount_point.display()
        );
        let now = now_us();
        state.entry(c.id.name.clone()).or_default().last_unmount_us = Some(now);
        save_state(state_path, state);
        emit(vec![finding::mount_event(
            false,
            &c.id,
            now,
            &m.mount_point.to_string_lossy(),
            &m.source.to_string_lossy(),
            Some(held),
            cfg.media[c.index].window.map(|w| w.as_secs_f64()),
        )]);
    }
    // New.
    for m in mounts {
        if connected.contains_key(m) {
            continue;
        }
        // Pseudo filesystems have no device of their own (major 0).
        let ids = if m.dev.0 == 0 {
            FsIds::default()
        } else {
            fs_ids(m.dev, &m.source)
        };
        let Some(index) = identify(&cfg.media, m, &ids) else {
            continue;
        };
        let mc = &cfg.media[index];
        let id = MediumId {
            name: mc.name.as_str().to_owned(),
            fs_uuid: ids.uuid.clone(),
            fs_label: ids.label.clone(),
        };
        tracing::info!(
            "backup medium {} mounted on {}{}",
            id.name,
            m.mount_point.display(),
            if first { " (already at start)" } else { "" }
        );
        let now = now_us();
        state.entry(id.name.clone()).or_default().last_mount_us = Some(now);
        save_state(state_path, state);
        emit(vec![finding::mount_event(
            true,
            &id,
            now,
            &m.mount_point.to_string_lossy(),
            &m.source.to_string_lossy(),
            None,
            mc.window.map(|w| w.as_secs_f64()),
        )]);
        let verify = mc.verify.map(|mode| {
            let cancel = Arc::new(AtomicBool::new(false));
            let mut o = VerifyOptions::new(m.mount_point.join(&mc.subdir), &cfg.state_dir);
            o.medium = Some(mc.name.clone());
            o.key_file = cfg.key_file.clone();
            o.mode = mode;
            o.cancel = Some(cancel.clone());
            let tx = tx.clone();
            let vid = id.clone();
            let h = std::thread::Builder::new()
                .name("setten-verify".into())
                .spawn(move || {
                    let mode_name = match o.mode {
                        VerifyMode::Full => "full",
                        VerifyMode::Sample { .. } => "sample",
                        VerifyMode::Rolling { .. } => "rolling",
                    };
                    let (ok, result, body) = match super::verify(&o, &mut |_| {}) {
                        Ok(r) => {
                            let body = finding::verify(&vid, now_us(), &r);
                            let result = match &body {
                                Body::Backup(m) => m
                                    .get("result")
                                    .and_then(|v| v.as_str())
                                    .unwrap_or("failed")
                                    .to_owned(),
                                _ => "failed".to_owned(),
                            };
                            tracing::info!(
                                "backup medium {}: verification {result} ({} files, {} bytes read)",
                                vid.name,
                                r.counts.files,
                                r.bytes_read
                            );
                            (result == "ok", result, body)
                        }
                        Err(e) => {
                            tracing::warn!("backup medium {}: not verified: {e}", vid.name);
                            (
                                false,
                                "failed".to_owned(),
                                finding::verify_failed(&vid, now_us(), mode_name, &e.to_string()),
                            )
                        }
                    };
                    let _ = tx.send(Event::Verified {
                        index,
                        ok,
                        result,
                        body,
                    });
                });
            h.ok().map(|h| (h, cancel))
        });
        connected.insert(
            m.clone(),
            Connected {
                index,
                id,
                mount: m.clone(),
                since: Instant::now(),
                over_window_reported: false,
                verify: verify.flatten(),
            },
        );
    }
}

fn watch_folders(
    folders: &[FolderConfig],
    tx: Sender<Event>,
) -> Option<notify::RecommendedWatcher> {
    use notify::{RecursiveMode, Watcher};
    if folders.is_empty() {
        return None;
    }
    let paths: Vec<PathBuf> = folders.iter().map(|f| f.path.clone()).collect();
    let watched = paths.clone();
    let mut w = match notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(ev) = res else { return };
        if ev.kind.is_access() {
            return;
        }
        for p in &ev.paths {
            if let Some(i) = watched.iter().position(|f| p.starts_with(f)) {
                let _ = tx.send(Event::FolderChanged(i));
            }
        }
    }) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!("backup folders cannot be watched: {e}");
            return None;
        }
    };
    for p in &paths {
        if let Err(e) = w.watch(p, RecursiveMode::Recursive) {
            tracing::warn!("backup folder {}: {e}", p.display());
        }
    }
    Some(w)
}

/// Seals a settled drop folder; the finding to report.
fn seal_folder(cfg: &WatchConfig, f: &FolderConfig, stop: &Arc<AtomicBool>) -> Option<Body> {
    let mut o = SealOptions::new(&f.path, f.name.clone(), &cfg.state_dir);
    o.key_file = cfg.key_file.clone();
    o.cancel = Some(stop.clone());
    let id = MediumId::named(f.name.as_str());
    match super::seal(&o, &mut |_| {}) {
        Ok(r) => {
            tracing::info!(
                "backup folder {}: sealed generation {} of {} ({} files)",
                f.path.display(),
                r.generation,
                f.name.as_str(),
                r.totals.files
            );
            Some(finding::seal(&id, now_us(), &r, false))
        }
        Err(super::Error::Suspicious { score }) => {
            let reasons: Vec<String> = score.reasons.iter().map(|r| r.summary.clone()).collect();
            tracing::warn!(
                "backup folder {}: the new set looks suspicious and was not sealed: {}",
                f.path.display(),
                reasons.join("; ")
            );
            Some(finding::seal_refused(&id, now_us(), &reasons))
        }
        Err(e) => {
            tracing::warn!("backup folder {}: not sealed: {e}", f.path.display());
            None
        }
    }
}

/// Where the watcher's findings go.
pub type Emit = Box<dyn Fn(Vec<Body>) + Send>;

/// Receives findings on a channel, for callers that collect them (tests, tools).
pub fn collecting() -> (Emit, Receiver<Body>) {
    let (tx, rx) = channel();
    let tx = std::sync::Mutex::new(tx);
    (
        Box::new(move |bodies: Vec<Body>| {
            if let Ok(tx) = tx.lock() {
                for b in bodies {
                    let _ = tx.send(b);
                }
            }
        }),
        rx,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext4_superblock_gives_uuid_and_label() {
        let mut head = vec![0u8; 2048];
        head[1024 + 0x38] = 0x53;
        head[1024 + 0x39] = 0xEF;
        for (i, b) in (0x10u8..0x20).enumerate() {
            head[1024 + 0x68 + i] = b;
        }
        head[1024 + 0x78..1024 + 0x78 + 6].copy_from_slice(b"RDX-01");
        let ids = superblock_ids(&head);
        assert_eq!(
            ids.uuid.as_deref(),
            Some("10111213-1415-1617-1819-1a1b1c1d1e1f")
        );
        assert_eq!(ids.label.as_deref(), Some("RDX-01"));
    }

    #[test]
    fn fat32_boot_sector_gives_serial_and_label() {
        let mut head = vec![0u8; 2048];
        head[510] = 0x55;
        head[511] = 0xAA;
        head[0x43..0x47].copy_from_slice(&0x1234_ABCDu32.to_le_bytes());
        head[0x47..0x52].copy_from_slice(b"BACKUP     ");
        head[0x52..0x5A].copy_from_slice(b"FAT32   ");
        let ids = superblock_ids(&head);
        assert_eq!(ids.uuid.as_deref(), Some("1234-ABCD"));
        assert_eq!(ids.label.as_deref(), Some("BACKUP"));
        head[0x47..0x52].copy_from_slice(b"NO NAME    ");
        assert_eq!(superblock_ids(&head).label, None);
    }

    #[test]
    fn other_data_has_no_ids() {
        assert_eq!(superblock_ids(&[0u8; 2048]), FsIds::default());
        assert_eq!(superblock_ids(&[0xffu8; 100]), FsIds::default());
        // A boot signature without a FAT type is not FAT (an MBR, for instance).
        let mut mbr = vec![0u8; 2048];
        mbr[510] = 0x55;
        mbr[511] = 0xAA;
        assert_eq!(superblock_ids(&mbr), FsIds::default());
    }

    #[test]
    fn udev_escapes_are_undone() {
        assert_eq!(unescape_udev(r"My\x20Disk"), "My Disk");
        assert_eq!(unescape_udev(r"bad\x2"), r"bad\x2");
    }
}
