//! What a backup tree is stored on, and how many threads should read it.
//!
//! Parallel reads make a spinning disk seek between files: restic users measured USB
//! disks 6× slower with parallel reads than sequential. So reading is sequential on
//! rotational devices, on network filesystems (a NAS is usually spinning disks) and
//! whenever the device cannot be determined; parallel (one thread per core) on SSDs and
//! memory-backed filesystems. The device is found through the mount of the tree in
//! `/proc/self/mountinfo` (proc(5)) and its `queue/rotational` flag in sysfs.

use serde::Serialize;
use std::num::NonZeroUsize;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Most mountinfo lines read.
pub const MAX_MOUNTS: usize = 100_000;
/// Largest mountinfo text read.
pub const MAX_MOUNTINFO_BYTES: u64 = 16 << 20;

/// How many threads read file contents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Concurrency {
    /// Decide from the storage ([`decide`]).
    #[default]
    Auto,
    /// One reader.
    Sequential,
    /// This many readers.
    Threads(NonZeroUsize),
}

/// The kind of storage a tree is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageKind {
    /// A block device that says it rotates (HDD, most USB disks and RDX cartridges).
    Rotational,
    /// A block device that says it does not (SSD, NVMe, flash).
    NonRotational,
    /// A memory-backed filesystem (tmpfs, ramfs).
    Memory,
    /// A network filesystem (NFS, SMB, …).
    Network,
    /// Could not tell.
    Unknown,
}

/// What [`storage_of`] found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Storage {
    /// The kind.
    pub kind: StorageKind,
    /// The mount's source (e.g. `/dev/sdb1`), lossy.
    pub source: Option<String>,
    /// The filesystem type.
    pub fs_type: Option<String>,
    /// The block device number (major, minor), if any.
    pub block_dev: Option<(u32, u32)>,
    /// The device says it is removable.
    pub removable: Option<bool>,
}

/// How many readers were chosen, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConcurrencyChoice {
    /// Reader threads.
    pub threads: usize,
    /// Why, for the report.
    pub reason: String,
    /// The storage found (for [`Concurrency::Auto`]).
    pub storage: Option<Storage>,
}

/// One line of `/proc/self/mountinfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountEntry {
    /// Device major number (`st_dev`).
    pub major: u32,
    /// Device minor number.
    pub minor: u32,
    /// Root of the mount within its filesystem.
    pub root: Vec<u8>,
    /// Mount point.
    pub mount_point: Vec<u8>,
    /// Filesystem type.
    pub fs_type: String,
    /// Mount source (device path or a name).
    pub source: Vec<u8>,
}

/// Parses mountinfo text (proc(5)): `id parent major:minor root mount-point options
/// [optional…] - fstype source super-options`. Lines that do not parse are skipped;
/// octal escapes (`\040`) in paths are decoded.
pub fn parse_mountinfo(text: &[u8]) -> Vec<MountEntry> {
    text.split(|&b| b == b'\n')
        .take(MAX_MOUNTS)
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &[u8]) -> Option<MountEntry> {
    let mut f = line.split(|&b| b == b' ').filter(|s| !s.is_empty());
    let _id = f.next()?;
    let _parent = f.next()?;
    let dev = std::str::from_utf8(f.next()?).ok()?;
    let (ma, mi) = dev.split_once(':')?;
    let root = unescape(f.next()?);
    let mount_point = unescape(f.next()?);
    let _opts = f.next()?;
    // Optional fields end at a lone "-".
    for x in f.by_ref() {
        if x == b"-" {
            break;
        }
    }
    let fs_type = String::from_utf8_lossy(f.next()?).into_owned();
    let source = unescape(f.next().unwrap_or(b"none"));
    Some(MountEntry {
        major: ma.parse().ok()?,
        minor: mi.parse().ok()?,
        root,
        mount_point,
        fs_type,
        source,
    })
}

/// Decodes the kernel's `\ooo` escapes (space, tab, newline, backslash).
fn unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\' {
            if let Some(d) = s.get(i + 1..i + 4) {
                if d.iter().all(|c| (b'0'..=b'7').contains(c)) {
                    let v = u32::from(d[0] - b'0') * 64
                        + u32::from(d[1] - b'0') * 8
                        + u32::from(d[2] - b'0');
                    if let Ok(b) = u8::try_from(v) {
                        out.push(b);
                        i += 4;
                        continue;
                    }
                }
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// Linux `dev_t` major number (glibc `gnu_dev_major`).
pub fn major(dev: u64) -> u32 {
    (((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff)) as u32
}

/// Linux `dev_t` minor number (glibc `gnu_dev_minor`).
pub fn minor(dev: u64) -> u32 {
    (((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff)) as u32
}

const MEMORY_FS: &[&str] = &["tmpfs", "ramfs"];
const NETWORK_FS: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "9p",
    "ceph",
    "glusterfs",
    "afs",
    "davfs",
    "fuse.sshfs",
    "fuse.glusterfs",
];

/// Finds what `root` is stored on.
pub fn storage_of(root: &Path) -> Storage {
    let unknown = Storage {
        kind: StorageKind::Unknown,
        source: None,
        fs_type: None,
        block_dev: None,
        removable: None,
    };
    let Ok(md) = std::fs::metadata(root) else {
        return unknown;
    };
    let (ma, mi) = (major(md.dev()), minor(md.dev()));
    let text = match read_capped(Path::new("/proc/self/mountinfo")) {
        Some(t) => t,
        None => return unknown,
    };
    let mounts = parse_mountinfo(&text);
    let canon = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let canon = canon.as_os_str().as_bytes();
    let under = |m: &&MountEntry| {
        let p = &m.mount_point;
        canon.starts_with(p)
            && (p == b"/" || canon.len() == p.len() || canon.get(p.len()) == Some(&b'/'))
    };
    // By device number; btrfs subvolumes report another anonymous device in `st_dev`
    // than in mountinfo, so fall back to the mount point the path lies under.
    let m = mounts
        .iter()
        .filter(|m| m.major == ma && m.minor == mi)
        .max_by_key(|m| (under(m), m.mount_point.len()))
        .or_else(|| {
            mounts
                .iter()
                .filter(under)
                .max_by_key(|m| m.mount_point.len())
        });
    let Some(m) = m else { return unknown };
    let mut s = Storage {
        kind: StorageKind::Unknown,
        source: Some(String::from_utf8_lossy(&m.source).into_owned()),
        fs_type: Some(m.fs_type.clone()),
        block_dev: None,
        removable: None,
    };
    if MEMORY_FS.contains(&m.fs_type.as_str()) {
        s.kind = StorageKind::Memory;
        return s;
    }
    if NETWORK_FS.contains(&m.fs_type.as_str()) {
        s.kind = StorageKind::Network;
        return s;
    }
    // btrfs and some others report an anonymous st_dev (major 0): use the source device.
    let dev = if ma != 0 && (m.major, m.minor) == (ma, mi) {
        Some((ma, mi))
    } else if m.source.starts_with(b"/dev/") {
        let p = Path::new(std::ffi::OsStr::from_bytes(&m.source));
        std::fs::metadata(p)
            .ok()
            .map(|d| (major(d.rdev()), minor(d.rdev())))
            .filter(|&(a, _)| a != 0)
    } else {
        None
    };
    let Some((a, b)) = dev else { return s };
    s.block_dev = Some((a, b));
    let base = Path::new("/sys/dev/block").join(format!("{a}:{b}"));
    let base = std::fs::canonicalize(&base).unwrap_or(base);
    // A partition has no queue of its own: its parent directory is the disk.
    let attr = |name: &str| -> Option<String> {
        [base.join(name), base.join("..").join(name)]
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok())
            .map(|t| t.trim().to_owned())
    };
    s.removable = attr("removable").map(|v| v == "1");
    s.kind = match attr("queue/rotational").as_deref() {
        Some("1") => StorageKind::Rotational,
        Some("0") => StorageKind::NonRotational,
        _ => StorageKind::Unknown,
    };
    s
}

fn read_capped(p: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut v = Vec::new();
    std::fs::File::open(p)
        .ok()?
        .take(MAX_MOUNTINFO_BYTES)
        .read_to_end(&mut v)
        .ok()?;
    Some(v)
}

/// Chooses the number of reader threads for a tree.
pub fn decide(c: Concurrency, root: &Path) -> ConcurrencyChoice {
    match c {
        Concurrency::Sequential => ConcurrencyChoice {
            threads: 1,
            reason: "sequential, as asked".into(),
            storage: None,
        },
        Concurrency::Threads(n) => ConcurrencyChoice {
            threads: n.get(),
            reason: format!("{n} threads, as asked"),
            storage: None,
        },
        Concurrency::Auto => {
            let s = storage_of(root);
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let what = match (&s.source, &s.fs_type) {
                (Some(src), Some(fs)) => format!("{src} ({fs})"),
                _ => "the device".into(),
            };
            let (threads, reason) = match s.kind {
                StorageKind::Rotational => (1, format!("sequential: {what} is rotational")),
                StorageKind::Network => (
                    1,
                    format!("sequential: {what} is a network filesystem (a NAS is usually disks)"),
                ),
                StorageKind::Unknown => (
                    1,
                    format!("sequential: cannot tell whether {what} is rotational"),
                ),
                StorageKind::NonRotational => {
                    (cores, format!("{cores} threads: {what} is not rotational"))
                }
                StorageKind::Memory => (cores, format!("{cores} threads: {what} is in memory")),
            };
            ConcurrencyChoice {
                threads,
                reason,
                storage: Some(s),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of proc(5), plus a path with an escaped space and a line with two
    /// optional fields.
    #[test]
    fn mountinfo_lines() {
        let text =
            b"36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
43 27 7:0 / /media/RDX\\040Backup rw,relatime shared:5 master:2 - vfat /dev/loop0 rw\n\
25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw\n\
garbage\n\
1 2 x:y / / rw - ext4 /dev/sda\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 3);
        assert_eq!((m[0].major, m[0].minor), (98, 0));
        assert_eq!(m[0].root, b"/mnt1");
        assert_eq!(m[0].mount_point, b"/mnt2");
        assert_eq!(m[0].fs_type, "ext3");
        assert_eq!(m[0].source, b"/dev/root");
        assert_eq!(m[1].mount_point, b"/media/RDX Backup");
        assert_eq!(m[1].fs_type, "vfat");
        assert_eq!(m[2].fs_type, "tmpfs");
        // Truncated or hostile lines never panic.
        for l in [
            "",
            "1",
            "1 2 3:4",
            "1 2 3:4 / / rw -",
            "1 2 3:4 \\777 / rw - x y",
        ] {
            let _ = parse_mountinfo(l.as_bytes());
        }
        assert_eq!(unescape(b"a\\134b\\"), b"a\\b\\");
    }

    #[test]
    fn dev_numbers() {
        // makedev(8, 17) and makedev(259, 65536) as glibc encodes them: minor bits 0-7 and
        // 20-43, major bits 8-19 and 44-63.
        assert_eq!((major(0x811), minor(0x811)), (8, 17));
        let dev: u64 = (259 << 8) | (0x1_0000 << 12);
        assert_eq!((major(dev), minor(dev)), (259, 65536));
    }

    #[test]
    fn memory_filesystems_read_in_parallel() {
        if let Ok(md) = std::fs::metadata("/dev/shm") {
            let _ = md;
            let s = storage_of(Path::new("/dev/shm"));
            if s.fs_type.as_deref() == Some("tmpfs") {
                assert_eq!(s.kind, StorageKind::Memory);
                let c = decide(Concurrency::Auto, Path::new("/dev/shm"));
                assert_eq!(
                    c.threads,
                    std::thread::available_parallelism().map_or(1, |n| n.get())
                );
            }
        }
        assert_eq!(decide(Concurrency::Sequential, Path::new("/")).threads, 1);
        // A path that does not exist: unknown, so sequential.
        let c = decide(Concurrency::Auto, Path::new("/nonexistent/x"));
        assert_eq!(c.threads, 1);
        assert_eq!(c.storage.unwrap().kind, StorageKind::Unknown);
    }
}
